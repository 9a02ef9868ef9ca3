//! One trial per scenario of every suite in `suites/`, named `suite::scenario`:
//! `cargo test identity` runs the identity drill. Listing touches no cluster.
//!
//! Trials run one at a time (faults interfere). A suite's environment is brought up by its
//! first selected trial and torn down when the next suite starts or the run ends. The
//! backend comes from `FIREDRILL_BACKEND` (default `local`). A report of the run is
//! written to `target/drill-report/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};

use firedrill::backend::BackendKind;
use firedrill::fixtures::Paths;
use firedrill::runner::{ScenarioResult, Session, Verdict};
use firedrill::suite::Suite;
use libtest_mimic::{Arguments, Failed, Trial};

/// The environment of the suite being run, or why it could not be brought up.
enum Current {
    Up(Session),
    Failed(String),
}

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
static CURRENT: Mutex<Option<(String, Current)>> = Mutex::new(None);
static RESULTS: Mutex<Vec<ScenarioResult>> = Mutex::new(Vec::new());

fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("harness/ is in the workspace").to_path_buf()
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
    let mut trials = Vec::new();
    for suite in suites {
        for sc in &suite.spec.scenarios {
            let paths = paths.clone();
            trials.push(Trial::test(format!("{}::{}", suite.id(), sc.id.value), move || run(&paths, backend, suite, sc)));
        }
    }
    if trials.is_empty() {
        eprintln!("error: the suites in {} define no scenario", paths.suites.display());
        return ExitCode::from(2);
    }
    let mut args = args;
    args.test_threads = Some(1);
    let conclusion = libtest_mimic::run(&args, trials);
    close_current();
    let results = std::mem::take(&mut *RESULTS.lock().expect("results"));
    if !results.is_empty() {
        let dir = root().join("target/drill-report");
        if let Err(e) = firedrill::report::write_all(&dir, &results, None) {
            eprintln!("warning: writing {}: {e}", dir.display());
        }
    }
    conclusion.exit_code()
}

fn close_current() {
    if let Some((_, Current::Up(s))) = CURRENT.lock().expect("current session").take()
        && let Err(e) = runtime().block_on(s.close())
    {
        eprintln!("warning: {e}");
    }
}

fn run(paths: &Paths, backend: BackendKind, suite: &'static Suite, sc: &'static firedrill::suite::ScenarioSpec) -> Result<(), Failed> {
    let same = CURRENT.lock().expect("current session").as_ref().is_some_and(|(id, _)| id == suite.id());
    if !same {
        close_current();
        let firedrill = PathBuf::from(env!("CARGO_BIN_EXE_firedrill"));
        let emit = firedrill::report::terminal::emitter();
        let opened = runtime().block_on(Session::open(paths, firedrill::runner::Target::New(backend), suite, &firedrill, emit, false));
        let current = match opened {
            Ok(s) => Current::Up(s),
            Err(e) => Current::Failed(e.to_string()),
        };
        *CURRENT.lock().expect("current session") = Some((suite.id().to_string(), current));
    }
    let guard = CURRENT.lock().expect("current session");
    let session = match &guard.as_ref().expect("set above").1 {
        Current::Up(s) => s,
        Current::Failed(e) => return Err(format!("environment of suite {}: {e}", suite.id()).into()),
    };
    let result = runtime().block_on(session.run_scenario(suite, sc, &paths.snapshots));
    drop(guard);
    firedrill::report::terminal::print_result(&result);
    let verdict = result.verdict.clone();
    RESULTS.lock().expect("results").push(result);
    match verdict {
        Verdict::Match => Ok(()),
        Verdict::Mismatch { diff } => Err(diff.into()),
        Verdict::HarnessError { error } => Err(format!("harness error: {error}").into()),
        Verdict::NotRunnable { reason } => Err(format!("not runnable on this backend: {reason}").into()),
    }
}
