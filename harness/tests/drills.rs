//! One trial per scenario of every suite in `suites/`, named `suite::scenario`:
//! `cargo test identity` runs the identity drill. Listing touches no cluster.
//!
//! A suite's selected scenarios run one after the other on an environment of its own,
//! brought up for them and torn down after them; different suites run side by side
//! (`FIREDRILL_JOBS` at a time; by default one per 4 cores, as `firedrill run` does). Each trial reports its
//! scenario's result as it arrives. The backend comes from `FIREDRILL_BACKEND` (default
//! `local`). A report of the run is written to `target/drill-report/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use firedrill::backend::BackendKind;
use firedrill::fixtures::Paths;
use firedrill::runner::{ScenarioResult, Session, Verdict};
use firedrill::suite::Suite;
use libtest_mimic::{Arguments, Failed, Trial};

/// What a trial waits for: its scenario's result and how many kube-apiservers ran after it
/// (the topology's, at most, and counted), or why its suite could not run it.
type Outcome = Result<(ScenarioResult, Option<(usize, usize, usize)>), String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("harness/ is in the workspace").to_path_buf()
}

/// The trials libtest-mimic will run, by the same rules it applies (filter, `--exact`,
/// `--skip`), so that only those scenarios are started in the background.
fn selected(args: &Arguments, name: &str) -> bool {
    let hit = |f: &str| if args.exact { name == f } else { name.contains(f) };
    if args.skip.iter().any(|s| if args.exact { name == s } else { name.contains(s.as_str()) }) {
        return false;
    }
    args.filter.as_deref().is_none_or(hit) && !args.ignored
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let paths = Paths::at(root());
    let suites: &'static [Suite] = match firedrill::suite::load_dir(&paths.suites, &paths.fixtures) {
        Ok(s) => Box::leak(s.into_boxed_slice()),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let backend = match BackendKind::from_env() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let jobs: usize = std::env::var("FIREDRILL_JOBS").ok().and_then(|j| j.parse().ok()).unwrap_or_else(firedrill::cli::default_jobs).max(1);

    let mut trials = Vec::new();
    let mut waiting: BTreeMap<String, mpsc::Receiver<Outcome>> = BTreeMap::new();
    let mut work: Vec<(&'static Suite, Vec<(&'static firedrill::suite::ScenarioSpec, mpsc::Sender<Outcome>)>)> = Vec::new();
    for suite in suites {
        let mut mine = Vec::new();
        for sc in &suite.spec.scenarios {
            let name = format!("{}::{}", suite.id(), sc.id.value);
            if !args.list && selected(&args, &name) {
                let (tx, rx) = mpsc::channel();
                waiting.insert(name.clone(), rx);
                mine.push((sc, tx));
            }
        }
        if !mine.is_empty() {
            work.push((suite, mine));
        }
    }
    let waiting = Arc::new(Mutex::new(waiting));
    for suite in suites {
        for sc in &suite.spec.scenarios {
            let name = format!("{}::{}", suite.id(), sc.id.value);
            let waiting = waiting.clone();
            trials.push(Trial::test(name.clone(), move || judge(&name, &waiting)));
        }
    }
    if trials.is_empty() {
        eprintln!("error: the suites in {} define no scenario", paths.suites.display());
        return ExitCode::from(2);
    }

    let results: Arc<Mutex<Vec<ScenarioResult>>> = Default::default();
    let background = std::thread::spawn({
        let (paths, results) = (paths.clone(), results.clone());
        move || run_all(&paths, backend, work, jobs, &results)
    });
    let mut args = args;
    args.test_threads = Some(1);
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = background.join();
    let mut results = std::mem::take(&mut *results.lock().expect("results"));
    results.sort_by_key(|r| {
        (r.suite.clone(), suites.iter().find(|s| s.id() == r.suite).and_then(|s| s.spec.scenarios.iter().position(|x| x.id.value == r.scenario)))
    });
    if !results.is_empty() {
        let dir = root().join("target/drill-report");
        if let Err(e) = firedrill::report::write_all(&dir, &results, None) {
            eprintln!("warning: writing {}: {e}", dir.display());
        }
    }
    conclusion.exit_code()
}

/// Every selected scenario, suites side by side (`jobs` at a time), each suite's in order.
fn run_all(
    paths: &Paths,
    backend: BackendKind,
    work: Vec<(&'static Suite, Vec<(&'static firedrill::suite::ScenarioSpec, mpsc::Sender<Outcome>)>)>,
    jobs: usize,
    results: &Arc<Mutex<Vec<ScenarioResult>>>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(async {
        let slots = Arc::new(tokio::sync::Semaphore::new(jobs));
        let per_suite = work.into_iter().map(|(suite, scenarios)| {
            let (slots, results) = (slots.clone(), results.clone());
            async move {
                let _slot = slots.acquire().await.expect("never closed");
                run_suite(paths, backend, suite, scenarios, &results).await
            }
        });
        futures::future::join_all(per_suite).await;
    });
}

async fn run_suite(
    paths: &Paths,
    backend: BackendKind,
    suite: &'static Suite,
    scenarios: Vec<(&'static firedrill::suite::ScenarioSpec, mpsc::Sender<Outcome>)>,
    results: &Arc<Mutex<Vec<ScenarioResult>>>,
) {
    let firedrill = PathBuf::from(env!("CARGO_BIN_EXE_firedrill"));
    let emit = firedrill::report::terminal::emitter();
    let session = match Session::open(paths, firedrill::runner::Target::New(backend), suite, &firedrill, emit, false).await {
        Ok(s) => s,
        Err(e) => {
            for (_, tx) in scenarios {
                let _ = tx.send(Err(format!("environment of suite {}: {e}", suite.id())));
            }
            return;
        }
    };
    let last = scenarios.len();
    for (i, (sc, tx)) in scenarios.into_iter().enumerate() {
        let result = session.run_scenario(suite, sc, &paths.snapshots).await;
        firedrill::report::terminal::print_result(&result);
        // Sampling goes on into the next scenario, with the cold-start probe's attempts (an
        // API server each); after the last one it stops, and then no probe may have left
        // an API server behind: as many kube-apiservers as the topology has.
        if i + 1 == last
            && let Err(e) = session.stop_sampling().await
        {
            results.lock().expect("results").push(result);
            let _ = tx.send(Err(format!("stopping the sampling of suite {}: {e}", suite.id())));
            continue;
        }
        let in_flight = if i + 1 == last { 0 } else { cold_start_attempts(suite) };
        let apiservers = session.env.local().map(|run| {
            let want: usize = run.info.clusters.iter().map(|c| c.apiserver_nodes.len()).sum();
            let have = firedrill::backend::local::process::cgroup_pids(&run.info.cgroup)
                .iter()
                .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e.file_name().is_some_and(|n| n == "kube-apiserver")))
                .count();
            (want, want + in_flight, have)
        });
        results.lock().expect("results").push(result.clone());
        let _ = tx.send(Ok((result, apiservers)));
    }
    if let Err(e) = session.close().await {
        eprintln!("warning: {e}");
    }
}

/// How many cold-start attempts (an API server each) the suite's probes may have in flight.
fn cold_start_attempts(suite: &Suite) -> usize {
    suite.spec.operations.iter().filter(|op| matches!(op.probe, firedrill::probe::ProbeSpec::ApiserverColdStart { .. })).map(|op| op.concurrency as usize).sum()
}

fn judge(name: &str, waiting: &Mutex<BTreeMap<String, mpsc::Receiver<Outcome>>>) -> Result<(), Failed> {
    let rx = waiting.lock().expect("waiting").remove(name).ok_or_else(|| format!("{name} was not started"))?;
    let (result, apiservers) = rx.recv().map_err(|_| format!("{name}: its suite stopped before running it"))??;
    if let Some((want, at_most, have)) = apiservers
        && !(want..=at_most).contains(&have)
    {
        return Err(format!(
            "{have} kube-apiserver processes run after the scenario; the topology has {want}, and the cold-start attempts still sampling may add {}",
            at_most - want
        )
        .into());
    }
    match result.verdict {
        Verdict::Match => Ok(()),
        Verdict::Mismatch { diff } => Err(diff.into()),
        Verdict::HarnessError { error } => Err(format!("harness error: {error}").into()),
        Verdict::NotRunnable { reason } => Err(format!("not runnable on this backend: {reason}").into()),
    }
}
