//! `firedrill record REPORT_DIR…`: keep each scenario of live runs as a recording under
//! `recordings/BACKEND/` (see `crate::recording`), the evidence `make test` judges every
//! scenario's verdict from. A scenario is recorded only when its live run matched its
//! document and judging the recording again, against the suites and snapshots of this
//! checkout, reaches the same verdict; of a repeated run, the last round that matched (the
//! others are named: a recording pins the verdict logic, `--repeat`'s stability report
//! says how stable the system was). Each file is written whole (a temporary file renamed
//! into place) or not at all.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::check::{self, Recorded};
use super::select::{EXIT_HARNESS, EXIT_MATCH};
use crate::fixtures::Paths;

pub struct RecordArgs {
    pub reports: Vec<PathBuf>,
    /// Default: the repository's `recordings/`.
    pub into: Option<PathBuf>,
}

pub fn record(paths: Paths, args: RecordArgs) -> ExitCode {
    let into = args.into.clone().unwrap_or_else(|| paths.recordings.clone());
    let suites = match check::load_suites(&paths, None, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    let (mut written, mut refused) = (0, 0);
    for report in &args.reports {
        let recorded = match check::load_recorded(report) {
            Ok(r) if r.iter().all(|r| matches!(r.source, check::Source::Report)) => r,
            Ok(_) => {
                eprintln!("error: {}: that is a recording; record from a live run's report directory (`firedrill run --report DIR`)", report.display());
                return ExitCode::from(EXIT_HARNESS);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_HARNESS);
            }
        };
        for r in rounds_to_record(&recorded) {
            match one(r, report, &suites, &paths.snapshots, &into) {
                Ok(file) => {
                    written += 1;
                    println!("recorded {} [{}] (round {}) in {}", r.name(), r.backend.map(|b| b.name()).unwrap_or("?"), r.round.max(1), file.display());
                }
                Err(why) => {
                    refused += 1;
                    println!("not recorded: {} (round {}) of {}: {why}", r.name(), r.round.max(1), report.display());
                }
            }
        }
    }
    println!("firedrill record: {written} scenario(s) recorded, {refused} not");
    if refused > 0 || written == 0 { ExitCode::from(EXIT_HARNESS) } else { ExitCode::from(EXIT_MATCH) }
}

/// Of each scenario, the last round the report holds that matched its document, else its
/// last round (which `one` then refuses, saying why). Rounds passed over are named.
fn rounds_to_record(recorded: &[Recorded]) -> Vec<&Recorded> {
    let matched = |r: &Recorded| r.verdict.verdict == "match";
    let mut out: Vec<&Recorded> = Vec::new();
    for r in recorded {
        match out.iter_mut().find(|x| x.suite == r.suite && x.scenario == r.scenario && x.backend == r.backend) {
            Some(slot) if (matched(r), r.round) >= (matched(slot), slot.round) => *slot = r,
            Some(_) => {}
            None => out.push(r),
        }
    }
    for r in recorded {
        if out.iter().any(|x| x.suite == r.suite && x.scenario == r.scenario && x.backend == r.backend && x.round != r.round && matched(x) && !matched(r)) {
            println!("passed over: {} round {}: {}", r.name(), r.round.max(1), r.verdict.verdict);
        }
    }
    out
}

fn one(r: &Recorded, report: &Path, suites: &[crate::suite::Suite], snapshots: &Path, into: &Path) -> Result<PathBuf, String> {
    let recording = r.to_recording(&report.display().to_string())?;
    // What make test will do with it: judged again, it must reach the live run's verdict.
    let replay: Recorded = (PathBuf::new(), recording.clone()).into();
    match check::rejudge(&replay, suites, snapshots)? {
        Some(result) if result.verdict.tag() == r.verdict.verdict => {}
        Some(result) => {
            return Err(format!(
                "judged again against this checkout's suites and snapshots it is `{}`, not the live run's `{}`: the suite or snapshot changed since the run; run it again",
                result.verdict.tag(),
                r.verdict.verdict
            ));
        }
        None => return Err("it cannot be judged again".into()),
    }
    let file = crate::recording::file(into, recording.body.backend, &r.suite, &r.scenario);
    let dir = file.parent().expect("a recording's file has a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, recording.to_json().as_bytes()).map_err(|e| format!("{}: {e}", file.display()))?;
    // A file of the repository, readable by everyone (a temporary file is made 0600).
    tmp.as_file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(|e| format!("{}: {e}", file.display()))?;
    tmp.as_file().sync_all().map_err(|e| format!("{}: {e}", file.display()))?;
    tmp.persist(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(file)
}
