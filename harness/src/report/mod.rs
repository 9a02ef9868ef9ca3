//! Reporters: they consume run events and results, and never decide a verdict.

pub mod junit;
pub mod markdown;
pub mod terminal;

use std::path::Path;
use std::time::Duration;

use crate::runner::ScenarioResult;

/// Write `report.md`, `junit.xml` and `results.json` into `dir`.
pub fn write_all(dir: &Path, results: &[ScenarioResult]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.md"), markdown::render(results))?;
    std::fs::write(dir.join("junit.xml"), junit::render(results))?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(results).expect("results serialise"))?;
    Ok(())
}

/// `12.3 s`, `0.4 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
