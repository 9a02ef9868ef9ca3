//! `firedrill run` and `firedrill recover`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::select::{EXIT_HARNESS, EXIT_MATCH, EXIT_MISMATCH, matches, only_run};
use crate::fixtures::Paths;
use crate::report;
use crate::runner::{self, ScenarioResult, Session, Verdict};

pub struct RunArgs {
    pub filters: Vec<String>,
    pub target: crate::runner::Target,
    pub report: Option<PathBuf>,
    pub repeat: u32,
    pub suites: Option<PathBuf>,
    pub snapshots: Option<PathBuf>,
    pub keep: bool,
    /// How many suites run at once, each on an environment of its own.
    pub jobs: usize,
}

pub async fn run(paths: Paths, args: RunArgs) -> ExitCode {
    let suites_dir = args.suites.clone().unwrap_or_else(|| paths.suites.clone());
    let suites = match crate::suite::load_dir(&suites_dir, &paths.fixtures) {
        Ok(s) => s,
        Err(e) => {
            report::terminal::error(&e.to_string());
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    let selected: Vec<(usize, Vec<usize>)> = suites
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                i,
                s.spec
                    .scenarios
                    .iter()
                    .enumerate()
                    .filter(|(_, sc)| matches(&format!("{}::{}", s.id(), sc.id.value), &args.filters))
                    .map(|(j, _)| j)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, scs)| !scs.is_empty())
        // Every suite (no filter) means every suite the backend can build: the others are
        // named and left out. Named by a filter, such a suite is not runnable (exit 2).
        .filter(|(i, _)| {
            let (crate::runner::Target::New(backend), true) = (&args.target, args.filters.is_empty()) else { return true };
            let Ok(topology) = crate::topology::Topology::load(&paths.fixtures, &suites[*i].spec.topology.value) else { return true };
            match crate::env::Env::can_build(*backend, &topology) {
                Ok(()) => true,
                Err(e) => {
                    report::terminal::note(&format!("firedrill: suite {} left out: {e} (name it to run it anyway)", suites[*i].id()));
                    false
                }
            }
        })
        .collect();
    if selected.is_empty() {
        report::terminal::error(&format!("no scenario matches {:?} in {}", args.filters, suites_dir.display()));
        return ExitCode::from(EXIT_HARNESS);
    }
    let snapshots = args.snapshots.clone().unwrap_or_else(|| paths.snapshots.clone());
    let snapshots = std::path::absolute(&snapshots).unwrap_or(snapshots);
    let emit = report::terminal::emitter();
    let firedrill = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("firedrill"));
    let mut rounds: Vec<Vec<ScenarioResult>> = Vec::new();
    for round in 1..=args.repeat {
        if args.repeat > 1 {
            report::terminal::note(&format!("firedrill: round {round} of {}", args.repeat));
        }
        // Suites on environments of their own run side by side, `jobs` at a time; on one
        // existing environment they take turns.
        let jobs = match args.target {
            crate::runner::Target::New(_) => args.jobs.max(1),
            crate::runner::Target::Attached(_) | crate::runner::Target::Contexts(_) => 1,
        };
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(jobs));
        let per_suite = selected.iter().map(|(i, scs)| {
            let (suite, paths, args, emit, firedrill, snapshots, slots) = (&suites[*i], &paths, &args, emit.clone(), &firedrill, &snapshots, slots.clone());
            async move {
                let _slot = slots.acquire().await.expect("never closed");
                run_suite(paths, args, suite, scs, emit, firedrill, snapshots).await
            }
        });
        let mut results: Vec<ScenarioResult> = futures::future::join_all(per_suite).await.into_iter().flatten().collect();
        for r in &mut results {
            r.round = round;
        }
        rounds.push(results);
        if runner::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            report::terminal::note("firedrill: interrupted; not starting anything else");
            break;
        }
    }
    report::terminal::finish();
    let all: Vec<ScenarioResult> = rounds.iter().flatten().cloned().collect();
    let stability = (args.repeat > 1).then(|| report::stability::Stability::of(&rounds));
    if let Some(dir) = &args.report {
        match report::write_all(dir, &all, stability.as_ref()) {
            Ok(()) => report::terminal::note(&format!("firedrill: report written to {}", dir.join("report.md").display())),
            Err(e) => report::terminal::error(&format!("writing the report to {}: {e}", dir.display())),
        }
    }
    match report::append_job_summary(&all, stability.as_ref()) {
        Ok(Some(p)) => report::terminal::note(&format!("firedrill: job summary appended to {}", p.display())),
        Ok(None) => {}
        Err(e) => report::terminal::error(&format!("appending the job summary (GITHUB_STEP_SUMMARY): {e}")),
    }
    if let Some(s) = &stability {
        println!("\nfiredrill: {}", s.summary());
        for c in &s.changed {
            println!("  {c}");
        }
    }
    exit_code(&all)
}

/// The selected scenarios of one suite, on one environment.
async fn run_suite(
    paths: &Paths,
    args: &RunArgs,
    suite: &crate::suite::Suite,
    scs: &[usize],
    emit: runner::Emit,
    firedrill: &std::path::Path,
    snapshots: &std::path::Path,
) -> Vec<ScenarioResult> {
    let mut results = Vec::new();
    if runner::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        return results;
    }
    let session = match Session::open(paths, args.target.clone(), suite, firedrill, emit, args.keep).await {
        Ok(s) => s,
        Err(e) => {
            report::terminal::error(&format!("suite {}: {e}", suite.id()));
            let verdict = match e {
                crate::runner::RunError::NotRunnable(reason) => Verdict::NotRunnable { reason },
                e => Verdict::HarnessError { error: format!("environment: {e}") },
            };
            return scs.iter().map(|j| without_environment(suite, &suite.spec.scenarios[*j], verdict.clone())).collect();
        }
    };
    for j in scs {
        if runner::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        let r = session.run_scenario(suite, &suite.spec.scenarios[*j], snapshots).await;
        report::terminal::suspend(|| report::terminal::print_result(&r));
        results.push(r);
    }
    if let Err(e) = session.close().await {
        report::terminal::error(&format!("suite {}: {e}", suite.id()));
    }
    results
}

/// A scenario whose suite got no environment: not runnable on the backend, or set-up failed.
fn without_environment(suite: &crate::suite::Suite, sc: &crate::suite::ScenarioSpec, verdict: Verdict) -> ScenarioResult {
    let mut r = ScenarioResult::without_table(suite, sc, verdict);
    r.deviations.clear();
    r
}

/// 2 if the harness failed anywhere, else 1 if a table differs, else 0.
pub fn exit_code(results: &[ScenarioResult]) -> ExitCode {
    if results.iter().any(|r| matches!(r.verdict, Verdict::HarnessError { .. } | Verdict::NotRunnable { .. })) {
        ExitCode::from(EXIT_HARNESS)
    } else if results.iter().any(|r| matches!(r.verdict, Verdict::Mismatch { .. })) {
        ExitCode::from(EXIT_MISMATCH)
    } else {
        ExitCode::from(EXIT_MATCH)
    }
}

pub async fn recover(paths: Paths, run_dir: Option<PathBuf>) -> ExitCode {
    let dir = match only_run(run_dir) {
        Ok(Some(d)) => d,
        Ok(None) => {
            println!("recover: no run; nothing to recover");
            return ExitCode::from(EXIT_MATCH);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    // A killed harness leaves the extra API servers it started on kind (the local backend's
    // daemon stops its own).
    if crate::backend::kind::is_run(&dir) {
        for s in crate::backend::kind::apiserver::stop_all(&dir) {
            println!("recover: stopped an extra API server left running ({s})");
        }
    }
    let journal = crate::journal::Journal::at(&dir);
    let pending = match journal.pending() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}", crate::error::chain(&e));
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    if pending.is_empty() {
        println!("recover: {}: nothing to revert", dir.display());
        return ExitCode::from(EXIT_MATCH);
    }
    let attached = if crate::backend::existing::is_run(&dir) {
        attach_existing(&paths, &dir).await
    } else if crate::backend::kind::is_run(&dir) {
        attach_kind(&paths, &dir).await
    } else {
        attach_local(&paths, &dir, &pending[0]).await
    };
    let env = match attached {
        Ok(env) => env,
        Err(code) => return code,
    };
    match runner::revert_journal(&env, &journal, None, &report::terminal::emitter()).await {
        Ok(done) => {
            for d in &done {
                println!("recover: reverted: {d}");
            }
            ExitCode::from(EXIT_MATCH)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_HARNESS)
        }
    }
}

/// The environment of the kind run in `dir`, whose containers must all still exist.
async fn attach_existing(paths: &Paths, dir: &std::path::Path) -> Result<crate::env::Env, ExitCode> {
    let run = crate::backend::existing::ExistingRun::attach(dir).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_HARNESS)
    })?;
    crate::env::Env::from_existing(paths, run).await.map_err(|e| {
        eprintln!("error: attaching to {}: {e}", dir.display());
        ExitCode::from(EXIT_HARNESS)
    })
}

async fn attach_kind(paths: &Paths, dir: &std::path::Path) -> Result<crate::env::Env, ExitCode> {
    let run = crate::backend::kind::KindRun::attach(dir).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_HARNESS)
    })?;
    if !run.alive() {
        eprintln!("error: a node container of {} is gone: there is nothing left to revert in place; run `firedrill down {}`", dir.display(), dir.display());
        return Err(ExitCode::from(EXIT_HARNESS));
    }
    crate::env::Env::from_kind(paths, run).await.map_err(|e| {
        eprintln!("error: attaching to {}: {e}", dir.display());
        ExitCode::from(EXIT_HARNESS)
    })
}

/// The environment of the local run in `dir`, whose daemon must still run.
async fn attach_local(paths: &Paths, dir: &std::path::Path, e: &crate::journal::Entry) -> Result<crate::env::Env, ExitCode> {
    let run = match crate::backend::local::LocalRun::attach(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(EXIT_HARNESS));
        }
    };
    if !run.alive() {
        eprintln!(
            "error: {} is no longer running (its daemon is gone, so are its clusters): the fault from {} (journal #{}: {}) has nothing left to revert in place; run `firedrill down {}` to remove what remains",
            dir.display(),
            e.scenario,
            e.seq,
            e.undo.describe(),
            dir.display()
        );
        return Err(ExitCode::from(EXIT_HARNESS));
    }
    crate::env::Env::from_local(paths, run).await.map_err(|e| {
        eprintln!("error: attaching to {}: {e}", dir.display());
        ExitCode::from(EXIT_HARNESS)
    })
}
