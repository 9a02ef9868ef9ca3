//! Reporters: they consume run events and results, and never decide a verdict.

pub mod html;
pub mod junit;
pub mod markdown;
pub mod stability;
pub mod terminal;
pub mod timeline;

use std::path::Path;
use std::time::Duration;

use crate::runner::{OperationResult, ScenarioResult};

/// Write `report.md`, `report.html`, `junit.xml` and `results.json` into `dir`; with
/// `stability` (a repeated run), also `stability.json`, and its section ends both reports.
pub fn write_all(dir: &Path, results: &[ScenarioResult], stability: Option<&stability::Stability>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut md = markdown::render(results);
    if let Some(s) = stability {
        md.push('\n');
        md.push_str(&s.render_markdown());
        std::fs::write(dir.join("stability.json"), serde_json::to_string_pretty(s).expect("stability serialises"))?;
    }
    std::fs::write(dir.join("report.md"), md)?;
    std::fs::write(dir.join("report.html"), html::render(results, stability))?;
    std::fs::write(dir.join("junit.xml"), junit::render(results))?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(results).expect("results serialise"))?;
    Ok(())
}

/// Append the job summary to the file `GITHUB_STEP_SUMMARY` names, when it names one.
pub fn append_job_summary(results: &[ScenarioResult], stability: Option<&stability::Stability>) -> std::io::Result<Option<std::path::PathBuf>> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()).map(std::path::PathBuf::from) else { return Ok(None) };
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    f.write_all(markdown::job_summary(results, stability).as_bytes())?;
    Ok(Some(path))
}

/// `suite::scenario`, with the round when the results hold more than one.
pub fn label(r: &ScenarioResult, results: &[ScenarioResult]) -> String {
    format!("{}{}", r.name(), round_suffix(r, results))
}

/// ` (round N)` when the results hold more than one round, else nothing.
pub fn round_suffix(r: &ScenarioResult, results: &[ScenarioResult]) -> String {
    if results.iter().any(|x| x.round > 1) { format!(" (round {})", r.round) } else { String::new() }
}

/// The reasons failed attempts gave in the fault window, then after the revert.
pub fn failures_seen(o: &OperationResult) -> String {
    if let Some(why) = &o.not_observed {
        return why.clone();
    }
    let mut f = reasons(&o.failures);
    if !o.recovery_failures.is_empty() {
        f.push_str(&format!("; after revert: {}", reasons(&o.recovery_failures)));
    }
    f
}

/// `reason (×count); …`
pub fn reasons(counted: &[(String, usize)]) -> String {
    counted.iter().map(|(why, n)| format!("{why} (×{n})")).collect::<Vec<_>>().join("; ")
}

/// Recovery with its resolution, and whether the MTTR judges it: `2.4 s ±0.3 s`,
/// `never affected`, `not recovered`; `(not judged: why)` for an excluded operation.
pub fn recovery_cell(o: &OperationResult) -> String {
    if o.not_observed.is_some() {
        return "—".into();
    }
    let mut s = match (o.recovery, o.resolution) {
        _ if o.never_affected => "never affected".to_string(),
        (Some(t), Some(res)) => format!("{} ±{}", secs(t), secs(res)),
        (Some(t), None) => secs(t),
        (None, _) => "not recovered".into(),
    };
    if let Some(why) = &o.mttr_excluded {
        s.push_str(&format!(" (not judged against the MTTR: {why})"));
    }
    s
}

/// For a match with rows not observed: in how many rows observed, how many not (else empty).
pub fn observed_rows(r: &ScenarioResult) -> String {
    match r.operations.iter().filter(|o| o.not_observed.is_some()).count() {
        0 => String::new(),
        n => format!(" in the {} rows observed ({n} of {} not observable on this backend)", r.operations.len() - n, r.operations.len()),
    }
}

/// When the operation first failed after the fault was in effect.
pub fn first_failure_cell(o: &OperationResult) -> String {
    o.first_failure.map(secs).unwrap_or_else(|| "—".into())
}

/// `prepare 0.1 s, steady state 0.3 s, …` and the total.
pub fn phases(r: &ScenarioResult) -> String {
    r.phases.iter().map(|(p, d)| format!("{p} {}", secs(*d))).collect::<Vec<_>>().join(", ")
}

/// `12.3 s`, `0.4 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
