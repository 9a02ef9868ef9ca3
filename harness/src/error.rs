//! The library's error types. Each message names what was being done; the cause is in
//! `#[source]`, not repeated in the message.

use std::path::PathBuf;

/// A suite file that cannot be used. Nothing is started when loading fails.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot read suite file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML, not of the suite format, or refers to something that
    /// does not exist. `line` and `column` are 1-based.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid { path: PathBuf, line: u64, column: u64, message: String },
    #[error("no suite files in {0}")]
    NoSuites(PathBuf),
    #[error("{count} suite files are invalid:\n{list}")]
    Several { count: usize, list: String },
}

/// A fixture file (topology, component, image map, versions) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read fixture {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl FixtureError {
    pub fn parse(path: &std::path::Path, e: &serde_saphyr::Error) -> Self {
        let message = match e.location() {
            Some(l) => format!("{}:{}: {}", l.line(), l.column(), crate::suite::error_message(e)),
            None => crate::suite::error_message(e),
        };
        FixtureError::Invalid { path: path.to_path_buf(), message }
    }
}
