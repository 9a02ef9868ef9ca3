//! Command-line interface. Exit codes: 0 every table matches, 1 a table differs,
//! 2 the harness failed (bad input, setup error, a fault that could not be reverted).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::fixtures::Paths;

/// Exit code when every table matched.
pub const EXIT_MATCH: u8 = 0;
/// Exit code when at least one observed table differs from its snapshot.
pub const EXIT_MISMATCH: u8 = 1;
/// Exit code when the harness itself failed.
pub const EXIT_HARNESS: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "firedrill", version, about = "Check failure-domain documents against real clusters")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List suites and their scenarios (touches no cluster).
    List {
        /// Only scenarios whose `suite::scenario` name contains one of these.
        filters: Vec<String>,
    },
    /// Print the JSON Schema of suite files.
    Schema,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = Paths::discover();
    match cli.command {
        Command::List { filters } => list(&paths, &filters),
        Command::Schema => {
            print!("{}", crate::suite::schema::json());
            ExitCode::from(EXIT_MATCH)
        }
    }
}

/// `true` when `name` contains any of `filters`, or there are none.
pub fn matches(name: &str, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

fn list(paths: &Paths, filters: &[String]) -> ExitCode {
    let suites = match crate::suite::load_dir(&paths.suites, &paths.fixtures) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    let mut shown = 0;
    for suite in &suites {
        let names: Vec<String> = suite.trial_names().filter(|n| matches(n, filters)).collect();
        if names.is_empty() {
            continue;
        }
        println!("{} — {} ({})", suite.id(), suite.spec.title, relative(paths, &suite.file).display());
        for (name, sc) in names.iter().zip(suite.spec.scenarios.iter().filter(|s| matches(&format!("{}::{}", suite.id(), s.id.value), filters))) {
            println!("  {name}  {}", sc.title);
            shown += 1;
        }
    }
    if shown == 0 {
        eprintln!("error: no scenario matches {filters:?}");
        return ExitCode::from(EXIT_HARNESS);
    }
    ExitCode::from(EXIT_MATCH)
}

/// `path` relative to the repository root when it is inside it.
pub fn relative(paths: &Paths, path: &std::path::Path) -> PathBuf {
    path.strip_prefix(&paths.root).map(PathBuf::from).unwrap_or_else(|_| path.to_path_buf())
}
