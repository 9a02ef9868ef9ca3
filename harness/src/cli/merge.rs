//! `firedrill merge`: the report directories of runs that each ran part of a drill (the
//! nightly workflow's jobs, one suite each) as one report: one `results.json` holding every
//! part's scenarios as they recorded them, one `report.html`, `report.md` and `junit.xml`,
//! the job summary, and the stability over rounds where the parts ran more than one.
//!
//! Nothing is judged anew: each scenario's result is rebuilt from its part's `results.json`
//! by the code `firedrill check` uses, and the merge refuses a scenario whose verdict, so
//! rebuilt, is not the one its part recorded (parts made from other suites or snapshots),
//! and a scenario two parts both ran in the same round.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::check::{self, Recorded};
use super::select::EXIT_HARNESS;
use crate::fixtures::Paths;
use crate::runner::ScenarioResult;

pub struct MergeArgs {
    pub parts: Vec<PathBuf>,
    pub report: PathBuf,
    pub suites: Option<PathBuf>,
    pub snapshots: Option<PathBuf>,
}

pub fn merge(paths: Paths, args: MergeArgs) -> ExitCode {
    match run(&paths, &args) {
        Ok(results) => {
            for r in &results {
                println!("=> {}: {}", crate::report::label(r, &results), crate::report::markdown::verdict_word(&r.verdict));
            }
            println!("merged {} scenarios of {} report directories into {}", results.len(), args.parts.len(), args.report.display());
            super::run::exit_code(&results)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_HARNESS)
        }
    }
}

fn run(paths: &Paths, args: &MergeArgs) -> Result<Vec<ScenarioResult>, String> {
    let out = &args.report;
    for part in &args.parts {
        if !part.join("results.json").is_file() {
            return Err(format!("{}: no results.json (expected a report directory of `firedrill run --report`)", part.display()));
        }
        if out.canonicalize().ok().is_some_and(|o| part.canonicalize().ok() == Some(o)) {
            return Err(format!("--report {}: that is a part's own report directory; name another", out.display()));
        }
    }
    let suites = check::load_suites(paths, args.suites.as_deref(), None)?;
    let snapshots = args.snapshots.clone().unwrap_or_else(|| paths.snapshots.clone());
    let mut seen: BTreeMap<(String, String, u32), &Path> = BTreeMap::new();
    let mut raw: Vec<serde_json::Value> = Vec::new();
    let mut results = Vec::new();
    for part in &args.parts {
        let file = part.join("results.json");
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let values: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let recorded = check::load_recorded(part)?;
        if recorded.is_empty() {
            return Err(format!("{}: records no scenario", file.display()));
        }
        for r in &recorded {
            let key = (r.suite.clone(), r.scenario.clone(), r.round.max(1));
            if let Some(other) = seen.insert(key, part) {
                return Err(format!(
                    "{}::{} (round {}) is in both {} and {}: each scenario of a round belongs to one part",
                    r.suite,
                    r.scenario,
                    r.round.max(1),
                    other.display(),
                    part.display()
                ));
            }
            results.push(rebuilt(r, part, &suites, &snapshots)?);
        }
        raw.extend(values);
    }
    results.sort_by_key(|r| r.round);
    raw.sort_by_key(|v| v.get("round").and_then(|r| r.as_u64()).unwrap_or(1));
    // Rounds the parts ran (a part made from recordings holds one round, the one kept).
    let rounds: std::collections::BTreeSet<u32> = results.iter().map(|r| r.round).collect();
    let stability = (rounds.len() > 1).then(|| {
        let by_round: Vec<Vec<ScenarioResult>> = rounds.iter().map(|n| results.iter().filter(|r| r.round == *n).cloned().collect()).collect();
        crate::report::stability::Stability::of(&by_round)
    });
    crate::report::write_all(out, &results, stability.as_ref()).map_err(|e| format!("writing the reports into {}: {e}", out.display()))?;
    // The evidence as each part recorded it, rather than as rebuilt.
    let path = out.join("results.json");
    crate::files::write_atomic(&path, serde_json::to_string_pretty(&raw).expect("results serialise").as_bytes(), 0o644)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(s) = &stability {
        println!("{}", s.summary());
    }
    crate::report::append_job_summary(&results, stability.as_ref()).map_err(|e| format!("writing the job summary: {e}"))?;
    Ok(results)
}

/// A part's scenario as a result for the merged report, with the verdict its part recorded.
fn rebuilt(r: &Recorded, part: &Path, suites: &[crate::suite::Suite], snapshots: &Path) -> Result<ScenarioResult, String> {
    let name = format!("{}::{} in {}", r.suite, r.scenario, part.display());
    let result = match check::rejudge(r, suites, snapshots).map_err(|e| format!("{name}: {e}"))? {
        Some(result) => result,
        None => check::as_recorded(r, suites).ok_or_else(|| format!("{name}: no such scenario in the suites merged against"))?,
    };
    if result.verdict.tag() != r.verdict.verdict {
        return Err(format!(
            "{name}: recorded `{}`, but its evidence gives `{}` with these suites and snapshots: merge report directories of the commit that ran them",
            r.verdict.verdict,
            result.verdict.tag()
        ));
    }
    Ok(result)
}
