//! The runner: environment lifecycle once per suite ([`Session`]), scenario lifecycle
//! once per scenario ([`Session::run_scenario`]): steady state, fault, revert, recovery,
//! verdict. Sampling goes on from one scenario of a suite to the next: the stable tail
//! of one scenario's recovery is the next one's steady state and baseline. Faults are reverted on every way out of a scenario — success, mismatch,
//! error, panic, Ctrl-C, timeout — from the journal, so a revert covers faults that were
//! only half injected.

pub mod claims;
pub mod events;
mod scenario;
pub mod verdict;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub use events::{DeviationNote, OperationResult, RunEvent, ScenarioResult, Verdict};

use crate::backend::BackendKind;
use crate::component::Component;
use crate::deploy::{self, Deployed};
use crate::env::Env;
use crate::fixtures::Paths;
use crate::journal::Journal;
use crate::probe::{self, Probe};
use crate::suite::{ScenarioSpec, Suite};
use crate::topology::Topology;

/// Where events go. Reporters implement it; the runner never prints.
pub type Emit = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// The harness failing: no verdict on the system under test.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Setup(String),
    #[error("fault not in effect: {0}")]
    NotInEffect(String),
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
    /// The operations this backend cannot observe, by id, with why: no probe is built
    /// for them and their rows say so (`probe::not_observable`).
    not_observed: BTreeMap<String, String>,
    emit: Emit,
    keep: bool,
    /// The sampler the last scenario left running, once every operation had worked for
    /// `timing.stable` after its revert: the next scenario's steady state and baseline are
    /// that tail (`scenario::Carried`).
    carried: std::sync::Mutex<Option<scenario::Carried>>,
}

/// Where a session's clusters come from.
#[derive(Clone, Debug)]
pub enum Target {
    /// A new environment on this backend, torn down when the session closes.
    New(BackendKind),
    /// A local or kind run already up (`firedrill up`); left running when the session
    /// closes.
    Attached(PathBuf),
    /// Clusters the user already has, named by kubeconfig context (the existing backend);
    /// when the session closes, what it deployed there is removed, and the clusters stay.
    Contexts(crate::backend::existing::Spec),
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
        match &target {
            Target::New(backend) => {
                Env::can_build(*backend, &topo).map_err(|e| RunError::NotRunnable(e.to_string()))?;
                Env::can_provision(*backend, &hosts).map_err(|e| RunError::Setup(e.to_string()))?
            }
            Target::Contexts(_) => {
                let existing = crate::backend::BackendKind::Existing;
                let outside: Vec<String> = comps.iter().flat_map(|c| c.hosts_outside(existing).map(|h| h.name.clone())).collect();
                Env::can_provision(existing, &outside).map_err(|e| RunError::Setup(e.to_string()))?
            }
            Target::Attached(_) => {}
        }
        emit(RunEvent::Plan {
            suite: suite.id().into(),
            environment: match &target {
                Target::New(b) => format!("a new {} {} environment (created by this run)", format!("{b:?}").to_lowercase(), topo.topology),
                Target::Attached(d) => format!("the existing run {}", d.display()),
                Target::Contexts(spec) => format!("the clusters of contexts {} (existing backend)", spec.contexts.join(", ")),
            },
            clusters: topo.cluster_names().iter().map(|s| s.to_string()).collect(),
        });
        if let Target::Attached(dir) = &target {
            refuse_unrecovered(dir)?;
        }
        for dir in crate::backend::local::state::all_runs() {
            let pending = match Journal::at(&dir).pending() {
                Ok(p) => p,
                Err(e) => {
                    emit(RunEvent::Warning {
                        message: format!("another environment, {}: {}; this run does not touch it", dir.display(), crate::error::chain(&e)),
                    });
                    continue;
                }
            };
            if let Some(e) = pending.first() {
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
            Target::Contexts(spec) => {
                use crate::backend::existing;
                let (kubeconfig, resolved) = existing::resolve(spec, &topo).map_err(|e| RunError::Setup(e.to_string()))?;
                let caps = existing::CAPABILITIES;
                existing::guard(&resolved, &spec.allowed, |role| {
                    let (runnable, not) = faults_on(suite, role, &caps, &topo.cluster_names());
                    runnable.into_iter().chain(not).collect()
                })
                .map_err(|e| RunError::Setup(e.to_string()))?;
                for r in &resolved {
                    let (runnable, not) = faults_on(suite, &r.role, &caps, &topo.cluster_names());
                    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join("; ") };
                    emit(RunEvent::Warning {
                        message: format!(
                            "context `{}` ({}, server {}) is cluster {}; faults there: {}; not runnable on this backend: {}",
                            r.context,
                            match &r.created_by {
                                Some(run) => format!("created by firedrill run {}", run.display()),
                                None => "allowed by --allow-context".into(),
                            },
                            r.server,
                            r.role,
                            list(&runnable),
                            list(&not),
                        ),
                    });
                }
                let run = existing::ExistingRun::create(&topo, kubeconfig, resolved, spec.registry.clone()).map_err(|e| RunError::Setup(e.to_string()))?;
                let dir = run.info.dir.clone();
                match Env::from_existing(paths, run).await {
                    Ok(env) => (env, keep),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(RunError::Setup(e.to_string()));
                    }
                }
            }
            Target::Attached(dir) if crate::backend::existing::is_run(dir) => {
                return Err(RunError::Setup(format!(
                    "{} is a run of the existing backend: run with --backend existing and its contexts again (it keeps nothing to attach to)",
                    dir.display()
                )));
            }
            Target::Attached(dir) if crate::backend::kind::is_run(dir) => {
                let run = crate::backend::kind::KindRun::attach(dir).map_err(|e| RunError::Setup(format!("{}: {e}", dir.display())))?;
                if run.info.topology != topo.topology {
                    return Err(RunError::Setup(format!(
                        "run {} is topology {}; suite {} needs {}",
                        dir.display(),
                        run.info.topology,
                        suite.id(),
                        topo.topology
                    )));
                }
                Env::can_provision(crate::backend::BackendKind::Kind, &hosts).map_err(|e| RunError::Setup(e.to_string()))?;
                (Env::from_kind(paths, run).await.map_err(|e| RunError::Setup(e.to_string()))?, true)
            }
            Target::Attached(dir) => {
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
        let bring_up = started.elapsed();
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
        let deploy = started.elapsed() - bring_up;
        let mut probes = BTreeMap::new();
        let mut not_observed = BTreeMap::new();
        for op in &suite.spec.operations {
            if let Some(why) = probe::not_observable(&op.probe, &env, &deployed) {
                let note = crate::model::table::not_observed_note(env.backend.name(), &why);
                emit(RunEvent::Warning { message: format!("operation `{}`: {note}", op.id.value) });
                not_observed.insert(op.id.value.clone(), note);
                continue;
            }
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
        if not_observed.len() == suite.spec.operations.len() {
            let _ = env.teardown().await;
            return Err(RunError::NotRunnable(format!(
                "the {} backend observes none of the suite's operations: {}",
                env.backend.name(),
                not_observed.iter().map(|(id, why)| format!("{id} ({why})")).collect::<Vec<_>>().join("; ")
            )));
        }
        emit(RunEvent::EnvironmentReady {
            suite: suite.id().into(),
            run_id: env.run_id.clone(),
            run_dir: env.run_dir.display().to_string(),
            took: started.elapsed(),
            bring_up,
            deploy,
        });
        Ok(Session { suite_id: suite.id().into(), env, deployed, probes, not_observed, emit, keep, carried: Default::default() })
    }

    /// Stop the sampler the last scenario left running, with any API server one of its
    /// attempts had started; the next scenario then starts sampling anew. Returns the API
    /// servers stopped.
    pub async fn stop_sampling(&self) -> Result<Vec<String>, RunError> {
        let carried = self.carried.lock().expect("carried sampler").take();
        match carried {
            Some(c) => {
                let stopped = c.sampler.stop().await.map_err(|e| RunError::Setup(e.to_string()));
                let extras = self.env.stop_extra_apiservers().await.map_err(|e| RunError::Setup(format!("stopping the probes' extra API servers: {e}")));
                stopped.and(extras)
            }
            None => Ok(vec![]),
        }
    }

    pub async fn close(self) -> Result<(), RunError> {
        // No probe outlives the session.
        match self.stop_sampling().await {
            Ok(stopped) if stopped.is_empty() => {}
            Ok(stopped) => (self.emit)(RunEvent::Warning {
                message: format!("{}: stopped {} API server(s) a probe's attempt had left running: {}", self.suite_id, stopped.len(), stopped.join(", ")),
            }),
            Err(e) => (self.emit)(RunEvent::Warning { message: format!("{}: stopping the sampling: {e}", self.suite_id) }),
        }
        if self.keep {
            (self.emit)(RunEvent::Warning {
                message: format!("environment kept at {}; remove it with `firedrill down {}`", self.env.run_dir.display(), self.env.run_dir.display()),
            });
            return Ok(());
        }
        let started = Instant::now();
        let r = self.env.teardown().await.map_err(|e| RunError::Setup(format!("tearing down: {e}")));
        (self.emit)(RunEvent::EnvironmentDown { suite: self.suite_id.clone(), took: started.elapsed() });
        r
    }

    /// Undo every pending journal entry, newest first. Returns what was undone.
    pub async fn revert_pending(&self, journal: &Journal, scenario: &str) -> Result<Vec<String>, RunError> {
        revert_journal(&self.env, journal, Some(scenario), &self.emit).await
    }
}

/// The faults `suite` puts on cluster `role` (by name, or as a side of a partition), as
/// described to people: those the existing backend (with `caps`, the topology's
/// `clusters`) can inject, and those it cannot.
fn faults_on(suite: &Suite, role: &str, caps: &crate::backend::Capabilities, clusters: &[&str]) -> (Vec<String>, Vec<String>) {
    let faults: Vec<&crate::fault::FaultSpec> = suite
        .spec
        .scenarios
        .iter()
        .flat_map(|s| s.faults.iter())
        .filter(|f| {
            f.clusters().contains(&role)
                || matches!(f, crate::fault::FaultSpec::Partition { between } if between.iter().any(|b| b.split('/').next() == Some(role)))
        })
        .collect();
    // NetworkPolicies cut off whole clusters only: a partition with a node or a host for a
    // side is refused when planned (`fault::netpol`).
    let whole_clusters = |f: &crate::fault::FaultSpec| match f {
        crate::fault::FaultSpec::Partition { between } => between.iter().all(|b| clusters.contains(&b.as_str())),
        _ => true,
    };
    let (runnable, not): (Vec<_>, Vec<_>) = faults.into_iter().partition(|f| f.missing_capability(caps).is_none() && whole_clusters(f));
    let names = |v: Vec<&crate::fault::FaultSpec>| {
        let mut n: Vec<String> = v.iter().map(|f| f.describe()).collect();
        n.sort();
        n.dedup();
        n
    };
    (names(runnable), names(not))
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

/// Undo pending journal entries (of `scenario`, or all), newest first. Every one is tried
/// even when an undo before it failed; only an undo that succeeded is marked reverted, and
/// the error names each one that failed (and what was reverted). A second Ctrl-C while
/// reverting sets the environment's hurry flag; the revert still completes.
pub async fn revert_journal(env: &Env, journal: &Journal, scenario: Option<&str>, emit: &Emit) -> Result<Vec<String>, RunError> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let mut pending = journal.pending().map_err(|e| RunError::Revert(format!("{}; nothing was reverted", crate::error::chain(&e))))?;
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
        if let Err(err) = result {
            failed.push(format!("reverting `{what}` (journal #{}) failed: {}", e.seq, crate::error::chain(&err)));
            continue;
        }
        if let Err(err) = journal.reverted(e.seq) {
            failed.push(format!("`{what}` (journal #{}) was reverted, but recording it failed: {}", e.seq, crate::error::chain(&err)));
            continue;
        }
        emit(RunEvent::FaultReverted { name: e.scenario.clone(), undo: what.clone() });
        done.push(what);
    }
    if failed.is_empty() {
        return Ok(done);
    }
    let reverted = if done.is_empty() { String::new() } else { format!(" (reverted: {})", done.join("; ")) };
    Err(RunError::Revert(format!("{}{reverted}; run `firedrill recover {}`", failed.join("; "), env.run_dir.display())))
}

/// Refuse to run on the environment in `dir` while its journal says a fault is still in
/// place. (Other environments' journals do not matter: their clusters are not this run's.)
pub fn refuse_unrecovered(dir: &std::path::Path) -> Result<(), RunError> {
    let pending = Journal::at(dir).pending().map_err(|e| RunError::Revert(format!("run {}: {}", dir.display(), crate::error::chain(&e))))?;
    match pending.first() {
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

pub(crate) fn deviation_notes(sc: &ScenarioSpec) -> Vec<DeviationNote> {
    sc.deviations
        .iter()
        .map(|d| DeviationNote {
            operation: d.operation.value.clone(),
            documented: d.documented,
            observed: d.observed,
            onset: d.onset.map(|o| o.0),
            kind: d.kind,
            reason: d.reason.clone(),
            evidence: d.evidence.clone(),
        })
        .collect()
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
