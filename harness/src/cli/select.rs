//! What every command shares: exit codes, scenario selection, the local run meant.

use std::path::PathBuf;

use crate::fixtures::Paths;

/// Exit code when every table matched.
pub const EXIT_MATCH: u8 = 0;
/// Exit code when at least one observed table differs from its snapshot.
pub const EXIT_MISMATCH: u8 = 1;
/// Exit code when the harness itself failed.
pub const EXIT_HARNESS: u8 = 2;

/// The only local run, or an error listing them.
pub fn only_run(run_dir: Option<PathBuf>) -> Result<Option<PathBuf>, String> {
    if let Some(d) = run_dir {
        return Ok(Some(d));
    }
    let mut runs = crate::backend::local::state::all_runs();
    runs.extend(crate::backend::kind::all_runs());
    runs.extend(crate::backend::existing::all_runs());
    match runs.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => Err(format!("{} runs exist; name one:\n{}", many.len(), many.iter().map(|d| format!("  {}", d.display())).collect::<Vec<_>>().join("\n"))),
    }
}

/// `true` when `name` contains any of `filters`, or there are none.
pub fn matches(name: &str, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// `path` relative to the repository root when it is inside it.
pub fn relative(paths: &Paths, path: &std::path::Path) -> PathBuf {
    path.strip_prefix(&paths.root).map(PathBuf::from).unwrap_or_else(|_| path.to_path_buf())
}
