//! Every scenario's verdict, without a cluster: each recording under `recordings/` (a
//! scenario of a live run, kept by `firedrill record`) is judged again by `firedrill check`
//! against this checkout's suites and snapshots, and must reach the verdict its live run
//! reached. One trial per recording, named `BACKEND/suite::scenario`; listing reads only
//! file names.
//!
//! Beside them:
//! - `every_scenario_has_a_local_recording`: a scenario added to a suite without being run
//!   live and recorded fails here, naming it;
//! - `a_changed_verdict_says_re_record`: a recording judged against a snapshot whose cell
//!   was changed is a difference that names the scenario to record again, never a pass;
//! - `record_keeps_what_check_judges`: a report written by `check --report` from a
//!   recording, recorded again by `firedrill record`, gives back the same attempts,
//!   timeline and claims; a report whose verdict is a difference is not recorded.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};

use firedrill::fixtures::Paths;
use libtest_mimic::{Arguments, Failed, Trial};

fn paths() -> Paths {
    Paths::at(Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("harness/ is in the workspace"))
}

fn check(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firedrill")).arg("check").args(args).env("FIREDRILL_ROOT", paths().root).output().expect("firedrill runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `local/identity::lb-down` for `recordings/local/identity__lb-down.json`.
fn trial_name(file: &Path) -> String {
    let backend = file.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = file.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{backend}/{}", stem.replacen("__", "::", 1))
}

fn replay(file: PathBuf) -> Result<(), Failed> {
    let out = check(&[file.as_os_str()]);
    let said = text(&out);
    if out.status.code() == Some(0) && said.contains("(as recorded)") {
        return Ok(());
    }
    Err(format!("firedrill check {} exited {:?}:\n{said}", file.display(), out.status.code()).into())
}

fn every_scenario_has_a_local_recording(files: &[PathBuf]) -> Result<(), Failed> {
    let p = paths();
    let suites = firedrill::suite::load_dir(&p.suites, &p.fixtures).map_err(|e| e.to_string())?;
    let missing: Vec<String> = suites
        .iter()
        .flat_map(|s| s.spec.scenarios.iter().map(move |sc| (s.id(), sc.id.value.as_str())))
        .filter(|(suite, sc)| !files.contains(&firedrill::recording::file(&p.recordings, firedrill::backend::BackendKind::Local, suite, sc)))
        .map(|(suite, sc)| format!("{suite}::{sc}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "no recording on the local backend of: {}\nrun them live (`firedrill run FILTER --report DIR`, or `make drill`) and `firedrill record DIR`",
        missing.join(", ")
    )
    .into())
}

/// A copy of the repository's snapshots in `dir` where the first impact cell of
/// `suite::scenario`'s table is another level.
fn snapshots_with_a_changed_cell(dir: &Path, suite: &str, scenario: &str) -> Result<(), Failed> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for f in std::fs::read_dir(paths().snapshots).map_err(|e| e.to_string())? {
        let f = f.map_err(|e| e.to_string())?.path();
        std::fs::copy(&f, dir.join(f.file_name().expect("a file"))).map_err(|e| e.to_string())?;
    }
    let snap = firedrill::snapshot::file(dir, suite, scenario);
    let before = std::fs::read_to_string(&snap).map_err(|e| format!("{}: {e}", snap.display()))?;
    let changed = ["| ✅ |", "| ❌ |", "| ⚠️ |"]
        .iter()
        .zip(["| ❌ |", "| ✅ |", "| ✅ |"])
        .find(|(from, _)| before.contains(*from))
        .map(|(from, to)| before.replacen(from, to, 1))
        .ok_or_else(|| format!("{}: no impact cell to change", snap.display()))?;
    std::fs::write(&snap, changed).map_err(|e| e.to_string().into())
}

/// A documented cell of the recording's snapshot turned into another level: `check` must
/// call it a difference and say to record the scenario again.
fn a_changed_verdict_says_re_record(file: PathBuf) -> Result<(), Failed> {
    let recording = firedrill::recording::Recording::read(&file).map_err(|e| e.to_string())?;
    let (suite, scenario) = (&recording.body.suite, &recording.body.scenario);
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    snapshots_with_a_changed_cell(work.path(), suite, scenario)?;
    let out = check(&[file.as_os_str(), "--snapshots".as_ref(), work.path().as_os_str()]);
    let said = text(&out);
    let advice = format!("re-record {suite}::{scenario}");
    if out.status.code() == Some(1) && said.contains("DIFFERS from the document") && said.contains(&advice) {
        return Ok(());
    }
    Err(format!("with a changed cell, firedrill check exited {:?} and did not say `{advice}`:\n{said}", out.status.code()).into())
}

fn firedrill(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firedrill")).args(args).env("FIREDRILL_ROOT", paths().root).output().expect("firedrill runs")
}

fn record_keeps_what_check_judges(file: PathBuf) -> Result<(), Failed> {
    let original = firedrill::recording::Recording::read(&file).map_err(|e| e.to_string())?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let report = work.path().join("report");
    let out = check(&[file.as_os_str(), "--report".as_ref(), report.as_os_str()]);
    if out.status.code() != Some(0) {
        return Err(format!("check --report: {}", text(&out)).into());
    }
    let into = work.path().join("recordings");
    let out = firedrill(&["record".as_ref(), report.as_os_str(), "--into".as_ref(), into.as_os_str()]);
    if out.status.code() != Some(0) {
        return Err(format!("record: {}", text(&out)).into());
    }
    let b = &original.body;
    let again = firedrill::recording::Recording::read(&firedrill::recording::file(&into, b.backend, &b.suite, &b.scenario)).map_err(|e| e.to_string())?;
    let a = &again.body;
    if (&a.operations, &a.timeline, &a.claims, &a.verdict, &a.reverted) != (&b.operations, &b.timeline, &b.claims, &b.verdict, &b.reverted) {
        return Err(format!("recorded again from check's report, {} is not what it was", b.name()).into());
    }
    // A difference is evidence of a changed suite or system, never a recording to keep.
    let snapshots = work.path().join("snapshots");
    snapshots_with_a_changed_cell(&snapshots, &b.suite, &b.scenario)?;
    let differs = work.path().join("differs");
    let out = check(&[file.as_os_str(), "--snapshots".as_ref(), snapshots.as_os_str(), "--report".as_ref(), differs.as_os_str()]);
    if out.status.code() != Some(1) {
        return Err(format!("check with a changed snapshot: {}", text(&out)).into());
    }
    let refused = work.path().join("refused");
    let out = firedrill(&["record".as_ref(), differs.as_os_str(), "--into".as_ref(), refused.as_os_str()]);
    let said = text(&out);
    if out.status.code() != Some(2) || !said.contains("the live run's verdict is `mismatch`") || refused.exists() {
        return Err(format!("record of a difference exited {:?} (files written: {}):\n{said}", out.status.code(), refused.exists()).into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let dir = paths().recordings;
    let files = match firedrill::recording::files(&dir) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("error: {}: no recording (BACKEND/SUITE__SCENARIO.json); `firedrill record` writes them from a live run", dir.display());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let mut trials: Vec<Trial> = files
        .iter()
        .map(|f| {
            let f = f.clone();
            Trial::test(trial_name(&f), move || replay(f))
        })
        .collect();
    let all = files.clone();
    trials.push(Trial::test("every_scenario_has_a_local_recording", move || every_scenario_has_a_local_recording(&all)));
    // A local recording: the local backend observes every row, so any cell it changes counts.
    let local = files.iter().find(|f| f.parent().and_then(Path::file_name).is_some_and(|d| d == "local")).cloned();
    let (a, b) = (local.clone(), local);
    trials.push(Trial::test("a_changed_verdict_says_re_record", move || a_changed_verdict_says_re_record(a.ok_or("no local recording")?)));
    trials.push(Trial::test("record_keeps_what_check_judges", move || record_keeps_what_check_judges(b.ok_or("no local recording")?)));
    libtest_mimic::run(&args, trials).exit_code()
}
