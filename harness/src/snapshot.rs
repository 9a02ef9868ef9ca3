//! The one way impact tables meet the snapshot directory: an explicit name per scenario
//! (`<suite>__<scenario>`), insta's file format, and review with `cargo insta review`.
//!
//! firedrill never writes a snapshot. When an observed table differs, outside CI it leaves
//! the observation next to the snapshot as `<name>.snap.new` for `cargo insta review`, where
//! a person decides — and a snapshot of a seed document may only change together with the
//! suite file (a recorded deviation), which `tests/suites.rs` checks.

use std::path::{Path, PathBuf};

/// The snapshot name of a scenario.
pub fn name(suite: &str, scenario: &str) -> String {
    format!("{suite}__{scenario}")
}

/// The snapshot file of a scenario.
pub fn file(snapshots: &Path, suite: &str, scenario: &str) -> PathBuf {
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

/// Whether to leave `.snap.new` files: not in CI, and not when insta is told not to.
fn leave_pending() -> bool {
    std::env::var_os("CI").is_none() && std::env::var("INSTA_UPDATE").map(|v| v != "no").unwrap_or(true)
}

/// The snapshot's text with every line that starts with one of `unobserved` replaced by
/// the line of `rendered` that starts with the same prefix: the lines of operations the
/// backend could not observe are left out of the comparison, and only those.
fn mask(snapshot: &str, rendered: &str, unobserved: &[String]) -> String {
    snapshot
        .lines()
        .map(|line| unobserved.iter().find(|p| line.starts_with(p.as_str())).and_then(|p| rendered.lines().find(|r| r.starts_with(p.as_str()))).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compare `rendered` with the scenario's snapshot. A difference is returned as a diff;
/// with `may_leave_pending` it is also left for review (outside CI, unless insta is told
/// not to). A missing snapshot is a difference. Lines starting with one of `unobserved`
/// (the rows of operations the backend could not observe) are not compared, and a table
/// with such rows is never left for review: it is not a whole observation.
pub fn check(snapshots: &Path, suite: &str, scenario: &str, rendered: &str, may_leave_pending: bool, unobserved: &[String]) -> Result<(), String> {
    let path = file(snapshots, suite, scenario);
    let expected = read(snapshots, suite, scenario).map(|s| if unobserved.is_empty() { s } else { mask(&s, rendered, unobserved) });
    if expected.as_deref() == Some(rendered) {
        return Ok(());
    }
    let mut message = match &expected {
        None => format!("no snapshot {}; write it from the document", path.display()),
        Some(want) => {
            let diff = similar::TextDiff::from_lines(want.as_str(), rendered);
            format!(
                "observed table differs from {} (- documented, + observed):\n{}",
                path.display(),
                diff.unified_diff().context_radius(2).header("documented", "observed")
            )
        }
    };
    if may_leave_pending && unobserved.is_empty() && leave_pending() {
        let pending = path.with_extension("snap.new");
        let text = format!("---\nsource: firedrill run of {suite}::{scenario} (observed)\n---\n{rendered}\n");
        if std::fs::write(&pending, text).is_ok() {
            message.push_str(&format!("\nobservation left for review in {} (`make review`)", pending.display()));
        }
    }
    Err(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_tables_match_and_different_ones_give_a_diff() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s__x.snap"), "---\nsource: t\n---\n| a | ✅ |\n").unwrap();
        assert_eq!(read(dir.path(), "s", "x").as_deref(), Some("| a | ✅ |"));
        assert!(check(dir.path(), "s", "x", "| a | ✅ |", false, &[]).is_ok());
        let err = check(dir.path(), "s", "x", "| a | ❌ |", false, &[]).unwrap_err();
        assert!(err.contains("-| a | ✅ |") && err.contains("+| a | ❌ |"), "{err}");
        assert!(check(dir.path(), "s", "missing", "t", false, &[]).unwrap_err().contains("no snapshot"));
    }

    #[test]
    fn only_the_lines_of_operations_not_observed_are_left_out_of_the_comparison() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s__x.snap"), "---\nsource: t\n---\n| a | ✅ |\n| b | ❌ |\nFailover: b works again within 5s of the fault — holds\n")
            .unwrap();
        let b = vec!["| b | ".to_string(), "Failover: b works again within".to_string()];
        let seen = "| a | ✅ |\n| b | — | not observed |\nFailover: b works again within 5s of the fault — not observed";
        assert!(check(dir.path(), "s", "x", seen, true, &b).is_ok());
        // Row a is still compared; and without the mask, b's line differs.
        let err = check(dir.path(), "s", "x", &seen.replace("| a | ✅ |", "| a | ❌ |"), true, &b).unwrap_err();
        assert!(err.contains("+| a | ❌ |") && !err.contains("-| b |") && !err.contains("-Failover"), "{err}");
        assert!(!dir.path().join("s__x.snap.new").exists(), "a partial observation is never left for review");
        assert!(check(dir.path(), "s", "x", seen, false, &[]).is_err());
    }
}
