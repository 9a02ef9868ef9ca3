//! The one way impact tables meet `snapshots/`: an explicit name per scenario
//! (`<suite>__<scenario>`), the repository's snapshot directory, insta's file format.
//! CI never writes snapshots (insta's CI detection); people review with `make review`.

use std::path::Path;

/// The snapshot name of a scenario.
pub fn name(suite: &str, scenario: &str) -> String {
    format!("{suite}__{scenario}")
}

/// The snapshot file of a scenario.
pub fn file(snapshots: &Path, suite: &str, scenario: &str) -> std::path::PathBuf {
    snapshots.join(format!("{}.snap", name(suite, scenario)))
}

/// The body of a snapshot file (insta's header stripped), if it exists.
pub fn read(snapshots: &Path, suite: &str, scenario: &str) -> Option<String> {
    let text = std::fs::read_to_string(file(snapshots, suite, scenario)).ok()?;
    let body = match text.strip_prefix("---\n").and_then(|rest| rest.split_once("\n---\n")) {
        Some((_, body)) => body,
        None => &text,
    };
    Some(body.trim_end_matches('\n').to_string())
}

/// Compare `rendered` with the scenario's snapshot through insta. On a difference insta
/// prints the diff and, outside CI, leaves a `.snap.new` for `cargo insta review`.
/// Returns the difference as a value.
pub fn check(snapshots: &Path, suite: &str, scenario: &str, rendered: &str) -> Result<(), String> {
    let name = name(suite, scenario);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshots);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(snapshots.join(format!("{name}.snap")));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_snapshot!(name.as_str(), rendered));
    }));
    result.map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("observed table differs from snapshots/{name}.snap{}", if msg.is_empty() { String::new() } else { format!(": {msg}") })
    })
}
