//! The runner: environment lifecycle once per suite ([`Session`]), scenario lifecycle
//! once per scenario ([`Session::run_scenario`]): steady state, fault, revert, recovery,
//! verdict. Faults are reverted on every way out of a scenario — success, mismatch,
//! error, panic, Ctrl-C, timeout — from the journal, so a revert covers faults that were
//! only half injected.

pub mod claims;
pub mod events;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;

pub use events::{DeviationNote, OperationResult, RunEvent, ScenarioResult, Verdict};

use crate::backend::BackendKind;
use crate::component::Component;
use crate::deploy::{self, Deployed};
use crate::env::Env;
use crate::fixtures::Paths;
use crate::journal::Journal;
use crate::model::impact::{self, Classification, Impact};
use crate::model::table::{self, ImpactTable, RECOVERY_GRACE, RecoveryLine, Row};
use crate::model::{Outcome, Sample};
use crate::probe::{self, Probe, sampler::Sampler};
use crate::suite::{ScenarioSpec, Suite};
use crate::topology::Topology;
use crate::wait::Deadline;

/// Where events go. Reporters implement it; the runner never prints.
pub type Emit = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// The harness failing: no verdict on the system under test.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Setup(String),
    #[error("steady state not reached before the fault: {0}")]
    SteadyState(String),
    #[error("revert did not restore the steady state: {0}")]
    NotRecovered(String),
    #[error("interrupted (Ctrl-C or SIGTERM); every injected fault was reverted")]
    Interrupted,
    #[error("{0}")]
    Revert(String),
    /// The backend lacks a capability the scenario needs.
    #[error("{0}")]
    NotRunnable(String),
}

/// One suite's environment: provisioned clusters, deployed components, built probes.
pub struct Session {
    pub suite_id: String,
    pub env: Arc<Env>,
    pub deployed: Deployed,
    probes: BTreeMap<String, Arc<dyn Probe>>,
    emit: Emit,
    keep: bool,
}

/// Where a session's clusters come from.
#[derive(Clone, Debug)]
pub enum Target {
    /// A new environment on this backend, torn down when the session closes.
    New(BackendKind),
    /// A local run already up (`firedrill up`); left running when the session closes.
    Existing(PathBuf),
}

/// What a session needs from the suite before provisioning.
pub fn plan(paths: &Paths, suite: &Suite) -> Result<(Topology, Vec<Component>), RunError> {
    let topo = Topology::load(&paths.fixtures, &suite.spec.topology.value).map_err(|e| RunError::Setup(e.to_string()))?;
    let comps = suite
        .spec
        .components
        .iter()
        .map(|c| Component::load(&paths.fixtures, &c.value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RunError::Setup(e.to_string()))?;
    Ok((topo, comps))
}

impl Session {
    /// Provision the suite's topology, deploy its components, build its probes.
    /// With `keep`, the environment is left running (also when deploying fails), for
    /// whoever wants to look at it; `firedrill down` removes it.
    pub async fn open(paths: &Paths, target: Target, suite: &Suite, firedrill: &std::path::Path, emit: Emit, keep: bool) -> Result<Session, RunError> {
        let (topo, comps) = plan(paths, suite)?;
        let hosts: Vec<String> = comps.iter().flat_map(|c| c.hosts.iter().map(|h| h.name.clone())).collect();
        if let Target::New(backend) = &target {
            Env::can_provision(*backend).map_err(|e| RunError::Setup(e.to_string()))?;
        }
        emit(RunEvent::Plan {
            suite: suite.id().into(),
            environment: match &target {
                Target::New(b) => format!("a new {} {} environment (created by this run)", format!("{b:?}").to_lowercase(), topo.topology),
                Target::Existing(d) => format!("the existing local run {}", d.display()),
            },
            clusters: topo.cluster_names().iter().map(|s| s.to_string()).collect(),
        });
        if let Target::Existing(dir) = &target {
            refuse_unrecovered(dir)?;
        }
        for dir in crate::backend::local::state::all_runs() {
            if let Some(e) = Journal::at(&dir).pending().first() {
                emit(RunEvent::Warning {
                    message: format!(
                        "another environment, {}, has a fault in place ({}, journal #{}): a drill in progress, or one that was killed (`firedrill recover {}`); this run does not touch it",
                        dir.display(),
                        e.scenario,
                        e.seq,
                        dir.display()
                    ),
                });
            }
        }
        let started = Instant::now();
        let (env, keep) = match &target {
            Target::New(backend) => {
                let env = Env::provision(paths, *backend, &topo, hosts, firedrill)
                    .await
                    .map_err(|e| RunError::Setup(format!("provisioning topology {}: {e}", topo.topology)))?;
                (env, keep)
            }
            Target::Existing(dir) => {
                let run = crate::backend::local::LocalRun::attach(dir).map_err(|e| RunError::Setup(format!("{}: {e}", dir.display())))?;
                if run.info.topology.topology != topo.topology {
                    return Err(RunError::Setup(format!(
                        "run {} is topology {}; suite {} needs {}",
                        dir.display(),
                        run.info.topology.topology,
                        suite.id(),
                        topo.topology
                    )));
                }
                if let Some(h) = hosts.iter().find(|h| run.info.host(h).is_err()) {
                    return Err(RunError::Setup(format!(
                        "run {} has no host `{h}`; bring it up with `firedrill up --topology {} --hosts {}`",
                        dir.display(),
                        topo.topology,
                        hosts.join(",")
                    )));
                }
                (Env::from_local(paths, run).await.map_err(|e| RunError::Setup(e.to_string()))?, true)
            }
        };
        let env = Arc::new(env);
        let deployed = match deploy::deploy(&env, &comps).await {
            Ok(d) => d,
            Err(e) => {
                if keep {
                    emit(RunEvent::Warning { message: format!("environment kept at {}", env.run_dir.display()) });
                } else {
                    let _ = env.teardown().await;
                }
                return Err(RunError::Setup(e.to_string()));
            }
        };
        let mut probes = BTreeMap::new();
        for op in &suite.spec.operations {
            match probe::build(&op.probe, &env, &deployed) {
                Ok(p) => {
                    probes.insert(op.id.value.clone(), p);
                }
                Err(e) => {
                    let _ = env.teardown().await;
                    return Err(RunError::Setup(format!("operation `{}`: {e}", op.id.value)));
                }
            }
        }
        emit(RunEvent::EnvironmentReady {
            suite: suite.id().into(),
            run_id: env.run_id.clone(),
            run_dir: env.run_dir.display().to_string(),
            took: started.elapsed(),
        });
        Ok(Session { suite_id: suite.id().into(), env, deployed, probes, emit, keep })
    }

    pub async fn close(self) -> Result<(), RunError> {
        if self.keep {
            (self.emit)(RunEvent::Warning {
                message: format!("environment kept at {}; remove it with `firedrill down {}`", self.env.run_dir.display(), self.env.run_dir.display()),
            });
            return Ok(());
        }
        let r = self.env.teardown().await.map_err(|e| RunError::Setup(format!("tearing down: {e}")));
        (self.emit)(RunEvent::EnvironmentDown { suite: self.suite_id.clone() });
        r
    }

    /// Run one scenario to a result. Faults are always reverted before this returns.
    pub async fn run_scenario(&self, suite: &Suite, sc: &ScenarioSpec, snapshots: &std::path::Path) -> ScenarioResult {
        let started = Instant::now();
        let name = format!("{}::{}", suite.id(), sc.id.value);
        (self.emit)(RunEvent::ScenarioStarted { name: name.clone(), title: sc.title.clone() });
        let journal = Journal::at(&self.env.run_dir);

        let body = std::panic::AssertUnwindSafe(self.scenario_body(suite, sc, &name, &journal)).catch_unwind();
        let outcome = interruptible(body).await;
        // Every way out passes here: revert whatever the journal says is still in place.
        let reverted = self.revert_pending(&journal, &name).await;
        let mut result = match outcome {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(e))) => self.failed(suite, sc, e),
            Some(Err(panic)) => {
                let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                self.failed(suite, sc, RunError::Setup(format!("the scenario panicked: {msg}")))
            }
            None => self.failed(suite, sc, RunError::Interrupted),
        };
        match reverted {
            Ok(done) => result.reverted.extend(done),
            Err(e) => result.verdict = Verdict::HarnessError { error: e.to_string() },
        }
        result.snapshot_check(snapshots);
        result.took = started.elapsed();
        (self.emit)(RunEvent::ScenarioFinished(Box::new(result.clone())));
        result
    }

    fn failed(&self, suite: &Suite, sc: &ScenarioSpec, error: RunError) -> ScenarioResult {
        let verdict = match error {
            RunError::NotRunnable(reason) => Verdict::NotRunnable { reason },
            e => Verdict::HarnessError { error: e.to_string() },
        };
        ScenarioResult {
            suite: suite.id().into(),
            scenario: sc.id.value.clone(),
            title: sc.title.clone(),
            verdict,
            operations: vec![],
            mttr: None,
            mttr_bound: sc.documented.recovery.mttr.map(|m| m.0),
            observed: None,
            expected: table::expected(suite, sc),
            deviations: deviation_notes(sc),
            claims: vec![],
            reverted: vec![],
            took: Duration::ZERO,
            round: 1,
        }
    }

    /// Undo every pending journal entry, newest first. Returns what was undone.
    pub async fn revert_pending(&self, journal: &Journal, scenario: &str) -> Result<Vec<String>, RunError> {
        revert_journal(&self.env, journal, Some(scenario), &self.emit).await
    }

    async fn scenario_body(&self, suite: &Suite, sc: &ScenarioSpec, name: &str, journal: &Journal) -> Result<ScenarioResult, RunError> {
        let env = &self.env;
        let spec = &suite.spec;
        let phase = |p: &str| (self.emit)(RunEvent::Phase { name: name.to_string(), phase: p.to_string() });
        if let Some(e) = journal.pending().first() {
            return Err(RunError::Revert(format!(
                "the journal still holds an unreverted fault from {} (#{}); run `firedrill recover {}`",
                e.scenario,
                e.seq,
                env.run_dir.display()
            )));
        }
        for f in &sc.faults {
            if let Some(needs) = f.missing_capability(&env.capabilities) {
                return Err(RunError::NotRunnable(format!("fault `{}` needs {needs}, which the {:?} backend does not have", f.kind(), env.backend)));
            }
        }

        phase("prepare");
        let prepares = spec.operations.iter().map(|op| {
            let p = self.probes[&op.id.value].clone();
            let id = op.id.value.clone();
            async move { p.prepare().await.map_err(|e| format!("operation `{id}`: {e}")) }
        });
        for r in futures::future::join_all(prepares).await {
            r.map_err(RunError::Setup)?;
        }

        let sampler = Sampler::start(spec.operations.iter().map(|op| (op.id.value.clone(), self.probes[&op.id.value].clone(), op.interval.0)).collect());

        // Steady state: every operation working, then a clean baseline window.
        phase("steady state");
        let steady_wait = spec.timing.steady_state.0;
        let steady = Deadline::after(steady_wait);
        loop {
            check_probes(&sampler)?;
            let samples = sampler.samples();
            let failing: Vec<String> = spec
                .operations
                .iter()
                .filter_map(|op| match samples.get(&op.id.value).and_then(|s| s.last()) {
                    Some(s) if s.outcome == Outcome::Ok => None,
                    Some(s) => Some(format!("{} ({})", op.id.value, s.detail.clone().unwrap_or_default())),
                    None => Some(format!("{} (no attempt finished yet)", op.id.value)),
                })
                .collect();
            if failing.is_empty() {
                break;
            }
            if steady.passed() {
                return Err(RunError::SteadyState(format!("after {steady_wait:?}, still failing: {}", failing.join("; "))));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        phase("baseline");
        let baseline_start = sampler.now();
        tokio::time::sleep(spec.timing.baseline.0).await;
        // Operations with slow attempts need at least one attempt started in the window.
        let wait_for_one = Deadline::after(Duration::from_secs(60));
        let baseline_end = loop {
            check_probes(&sampler)?;
            let samples = sampler.samples();
            let missing = spec.operations.iter().find(|op| !samples.get(&op.id.value).is_some_and(|s| s.iter().any(|x| x.at >= baseline_start)));
            match missing {
                None => break sampler.now(),
                Some(op) if wait_for_one.passed() => {
                    return Err(RunError::SteadyState(format!("operation `{}` completed no attempt in the baseline window", op.id.value)));
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let samples = sampler.samples();
        for op in &spec.operations {
            let s = &samples[&op.id.value];
            let c = impact::classify(s, (baseline_start, baseline_end + Duration::from_millis(1)), 1)
                .map_err(|e| RunError::SteadyState(format!("operation `{}`: {e}", op.id.value)))?;
            if c.impact != Impact::Unaffected {
                let why = last_failure(s, baseline_start, baseline_end);
                return Err(RunError::SteadyState(format!(
                    "operation `{}` was {} in the baseline ({}/{} attempts ok): {why}",
                    op.id.value,
                    c.impact.glyph(),
                    c.ok,
                    c.samples
                )));
            }
        }

        let before = if sc.documented.recovery.claims.is_empty() {
            claims::Before::default()
        } else {
            claims::before(env, &self.deployed).await.map_err(|e| RunError::Setup(format!("recording the state before the fault: {e}")))?
        };

        // The fault.
        phase("inject");
        let inject_wall = std::time::SystemTime::now();
        let inject_i = Instant::now();
        let tag = format!("{}_{}", sc.id.value, journal.pending().len() + 1);
        for f in &sc.faults {
            let undo = f.plan(env, &tag).await.map_err(|e| RunError::Setup(format!("planning fault `{}`: {}", f.kind(), crate::probe::error_chain(&e))))?;
            let seq = journal.plan(&env.run_id, name, f, &undo).map_err(|e| RunError::Setup(crate::probe::error_chain(&e)))?;
            f.inject(env, &undo).await.map_err(|e| RunError::Setup(format!("injecting fault `{}`: {}", f.kind(), crate::probe::error_chain(&e))))?;
            (self.emit)(RunEvent::FaultInjected { name: name.to_string(), fault: f.kind().into(), journal_seq: seq });
        }
        let injected = sampler.now();
        phase("fault");
        let fault_end = Instant::now() + spec.timing.fault.0;
        while Instant::now() < fault_end {
            check_probes(&sampler)?;
            tokio::time::sleep(Duration::from_millis(250).min(fault_end.saturating_duration_since(Instant::now()))).await;
        }

        // Revert, then recovery.
        phase("revert");
        let revert_start = sampler.now();
        let window = claims::Window { from: inject_wall, to: std::time::SystemTime::now(), from_i: inject_i, to_i: Instant::now() };
        self.revert_pending(journal, name).await?;
        let reverted = sampler.now();
        phase("recovery");
        let deadline = Deadline::after(spec.timing.recovery.0);
        loop {
            check_probes(&sampler)?;
            let samples = sampler.samples();
            if spec.operations.iter().all(|op| impact::recovery_time(&samples[&op.id.value], reverted).is_some()) || deadline.passed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let samples = sampler.stop().await.map_err(|e| RunError::Setup(e.to_string()))?;

        // Verdict per operation.
        let mut operations = Vec::new();
        let mut not_recovered = Vec::new();
        for op in &spec.operations {
            let s = &samples[&op.id.value];
            let window = (injected + op.settle.0, revert_start);
            let classification: Classification =
                impact::classify(s, window, op.min_samples as usize).map_err(|e| RunError::Setup(format!("operation `{}`: {e}", op.id.value)))?;
            let rec = impact::recovery(s, reverted);
            let recovery = rec.map(|r| r.time);
            if recovery.is_none() {
                not_recovered.push(format!("{} ({})", op.id.value, s.last().and_then(|x| x.detail.clone()).unwrap_or_default()));
            }
            let documented = sc.documented.impact.iter().find(|(k, _)| k.value == op.id.value).map(|(_, v)| *v).expect("validated");
            operations.push(OperationResult {
                id: op.id.value.clone(),
                name: op.name.clone(),
                documented,
                classification: Some(classification),
                recovery,
                last_failure: rec.and_then(|r| r.last_failure),
                failures: failure_reasons(s, window),
                recovery_failures: failure_reasons(s, (reverted, reverted + recovery.unwrap_or(spec.timing.recovery.0))),
            });
        }
        if !not_recovered.is_empty() {
            return Err(RunError::NotRecovered(format!("after {:?}, still failing: {}", spec.timing.recovery.0, not_recovered.join("; "))));
        }
        // Rule 5 of `model::impact`: over the bound only on a failure seen after it, among
        // the operations the document's MTTR is about.
        let scope = sc.documented.recovery.mttr_scope.as_ref();
        let in_scope = |id: &str| scope.is_none_or(|s| s.iter().any(|o| o.value == id));
        let mttr = operations.iter().filter(|o| in_scope(&o.id)).filter_map(|o| o.recovery).max();
        let bound = sc.documented.recovery.mttr.map(|m| m.0);
        let within = bound.map(|b| operations.iter().filter(|o| in_scope(&o.id)).filter_map(|o| o.last_failure).all(|f| f <= b + RECOVERY_GRACE));
        phase("post-checks");
        let mut claim_results = Vec::new();
        for c in &sc.documented.recovery.claims {
            claim_results.push(claims::check(*c, env, &self.deployed, &before, &window).await.map_err(RunError::Setup)?);
        }
        let observed = ImpactTable {
            title: sc.title.clone(),
            rows: operations
                .iter()
                .map(|o| Row { operation: o.name.clone(), impact: o.classification.as_ref().expect("set above").impact, note: table::note_for(sc, &o.id) })
                .collect(),
            recovery: RecoveryLine {
                bound: table::bound_words(sc),
                within,
                note: table::recovery_note(sc),
                claims: claim_results.iter().map(|c| (c.claim, c.holds)).collect(),
            },
        };
        Ok(ScenarioResult {
            suite: suite.id().into(),
            scenario: sc.id.value.clone(),
            title: sc.title.clone(),
            verdict: Verdict::Match,
            operations,
            mttr,
            mttr_bound: bound,
            observed: Some(observed),
            expected: table::expected(suite, sc),
            deviations: deviation_notes(sc),
            claims: claim_results,
            reverted: vec![],
            took: Duration::ZERO,
            round: 1,
        })
    }
}

impl ScenarioResult {
    /// Set the verdict from the snapshot, for a scenario that produced a table.
    fn snapshot_check(&mut self, snapshots: &std::path::Path) {
        if !matches!(self.verdict, Verdict::Match) {
            return;
        }
        let Some(observed) = &self.observed else { return };
        if let Err(diff) = crate::snapshot::check(snapshots, &self.suite, &self.scenario, observed.render().trim_end_matches('\n')) {
            self.verdict = Verdict::Mismatch { diff };
        }
    }
}

/// Set once the run was interrupted (SIGINT or SIGTERM): callers stop starting scenarios.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what CI runners and `kill` send).
pub async fn interrupt() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Run `body`, or stop at the first interrupt (None).
async fn interruptible<T>(body: impl Future<Output = T>) -> Option<T> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return None;
    }
    tokio::select! {
        r = body => Some(r),
        _ = interrupt() => {
            INTERRUPTED.store(true, Ordering::SeqCst);
            None
        }
    }
}

fn check_probes(s: &Sampler) -> Result<(), RunError> {
    s.check().map_err(|e| RunError::Setup(e.to_string()))
}

/// Undo pending journal entries (of `scenario`, or all), newest first. A second Ctrl-C
/// while reverting sets the environment's hurry flag; the revert still completes.
pub async fn revert_journal(env: &Env, journal: &Journal, scenario: Option<&str>, emit: &Emit) -> Result<Vec<String>, RunError> {
    let mut done = Vec::new();
    let mut pending = journal.pending();
    pending.retain(|e| scenario.is_none_or(|s| e.scenario == s));
    for e in pending.into_iter().rev() {
        let what = e.undo.describe();
        let revert = e.undo.revert(env);
        tokio::pin!(revert);
        let result = loop {
            tokio::select! {
                r = &mut revert => break r,
                _ = interrupt() => {
                    env.hurry.store(true, Ordering::SeqCst);
                    emit(RunEvent::Warning { message: format!("interrupted again: still reverting ({what}), without waiting for grace periods; run `firedrill recover {}` if this is killed", env.run_dir.display()) });
                }
            }
        };
        result.map_err(|err| {
            RunError::Revert(format!("reverting `{what}` failed: {}; run `firedrill recover {}`", crate::probe::error_chain(&err), env.run_dir.display()))
        })?;
        journal.reverted(e.seq).map_err(|err| RunError::Revert(crate::probe::error_chain(&err)))?;
        emit(RunEvent::FaultReverted { name: e.scenario.clone(), undo: what.clone() });
        done.push(what);
    }
    Ok(done)
}

/// Refuse to run on the environment in `dir` while its journal says a fault is still in
/// place. (Other environments' journals do not matter: their clusters are not this run's.)
pub fn refuse_unrecovered(dir: &std::path::Path) -> Result<(), RunError> {
    match Journal::at(dir).pending().first() {
        Some(e) => Err(RunError::Revert(format!(
            "run {} has an unreverted fault from {} (journal #{}: {}); run `firedrill recover {}` first (or `firedrill down {}`)",
            dir.display(),
            e.scenario,
            e.seq,
            e.undo.describe(),
            dir.display(),
            dir.display()
        ))),
        None => Ok(()),
    }
}

fn deviation_notes(sc: &ScenarioSpec) -> Vec<DeviationNote> {
    sc.deviations
        .iter()
        .map(|d| DeviationNote {
            operation: d.operation.value.clone(),
            documented: d.documented,
            observed: d.observed,
            reason: d.reason.clone(),
            evidence: d.evidence.clone(),
        })
        .collect()
}

fn last_failure(samples: &[Sample], from: Duration, to: Duration) -> String {
    samples
        .iter()
        .rev()
        .find(|s| s.at >= from && s.at <= to && s.outcome != Outcome::Ok)
        .and_then(|s| s.detail.clone())
        .unwrap_or_else(|| "no failure detail".into())
}

/// The reasons failed attempts gave in the window, most frequent first.
fn failure_reasons(samples: &[Sample], window: (Duration, Duration)) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.at >= window.0 && s.at < window.1 && s.outcome != Outcome::Ok) {
        *counts.entry(s.detail.clone().unwrap_or_default()).or_default() += 1;
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1));
    v.truncate(3);
    v
}

/// Where the firedrill executable is: `FIREDRILL_BIN`, else next to the current executable
/// (cargo puts test binaries in `deps/` below it), else the current executable.
pub fn firedrill_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("FIREDRILL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("firedrill"));
    if exe.file_name().is_some_and(|n| n == "firedrill") {
        return exe;
    }
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("firedrill");
        if candidate.is_file() {
            return candidate;
        }
    }
    exe
}
