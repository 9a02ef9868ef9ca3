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
            Some(l) => format!("{}:{}: {}", l.line(), l.column(), crate::error::yaml_message(e)),
            None => crate::error::yaml_message(e),
        };
        FixtureError::Invalid { path: path.to_path_buf(), message }
    }
}

/// An error and its causes on one line (reqwest's Display names only the outermost).
/// Every layer uses it, so it lives here, below them all.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// A Kubernetes API error in one short line: the status code and message, not the dump.
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("HTTP {}: {}", s.code, s.message),
        other => chain(other),
    }
}

/// serde-saphyr's message without its `error: line L column C:` prefix and snippet: the
/// location is reported separately, as file:line:column.
pub fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let mut text = text.to_string();
    if let Some(rest) = text.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains(" column ")
    {
        text = rest[idx + 2..].to_string();
    }
    // Advice meant for programs calling serde-saphyr, not for people writing suites.
    if let Some(idx) = text.find(", set DuplicateKeyPolicy in Options") {
        text.truncate(idx);
    }
    if let Some(idx) = text.rfind(" at line ")
        && text[idx..].contains(", column ")
    {
        text.truncate(idx);
    }
    text
}
