//! The scenario lifecycle: prepare, steady state, baseline, inject (and prove the fault in
//! effect), the fault window, revert, recovery (stable), post-checks, verdict. Faults are
//! reverted on every way out, from the journal, by [`Session::run_scenario`].

use std::time::{Duration, Instant};

use futures::FutureExt;

use super::events::{RunEvent, ScenarioResult, Timeline, Verdict};
use super::{RunError, Session, claims, interruptible, verdict};
use crate::journal::Journal;
use crate::model::impact::{self, Impact, Stable};
use crate::model::table;
use crate::model::{Outcome, Sample};
use crate::probe::sampler::{Sampled, Sampler};
use crate::suite::{ScenarioSpec, Suite};
use crate::wait::Deadline;

/// How long a fault may take to be proven in effect, or its revert proven.
const PROOF_DEADLINE: Duration = Duration::from_secs(60);

/// Phase durations, in order, for the per-phase breakdown.
struct Phases {
    emit: super::Emit,
    name: String,
    current: Option<(String, Instant)>,
    done: Vec<(String, Duration)>,
}

impl Phases {
    fn enter(&mut self, phase: &str) {
        self.close();
        (self.emit)(RunEvent::Phase { name: self.name.clone(), phase: phase.to_string() });
        self.current = Some((phase.to_string(), Instant::now()));
    }
    fn close(&mut self) {
        if let Some((p, at)) = self.current.take() {
            self.done.push((p, at.elapsed()));
        }
    }
}

impl Session {
    /// Run one scenario to a result. Faults are always reverted before this returns.
    pub async fn run_scenario(&self, suite: &Suite, sc: &ScenarioSpec, snapshots: &std::path::Path) -> ScenarioResult {
        let started = Instant::now();
        let started_at = jiff::Timestamp::now();
        let name = format!("{}::{}", suite.id(), sc.id.value);
        (self.emit)(RunEvent::ScenarioStarted { name: name.clone(), title: sc.title.clone() });
        let journal = Journal::at(&self.env.run_dir);
        let mut phases = Phases { emit: self.emit.clone(), name: name.clone(), current: None, done: vec![] };

        let body = std::panic::AssertUnwindSafe(self.scenario_body(suite, sc, &name, &journal, &mut phases)).catch_unwind();
        let outcome = interruptible(body).await;
        // Every way out passes here: revert whatever the journal says is still in place, and
        // stop any API server a probe started (an attempt cut off by an error or Ctrl-C).
        let reverted = self.revert_pending(&journal, &name).await;
        let extras = self.env.stop_extra_apiservers().await;
        phases.close();
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
        match extras {
            Ok(stopped) if stopped.is_empty() => {}
            Ok(stopped) => result.reverted.push(format!("stopped {} API server(s) a probe had left running: {}", stopped.len(), stopped.join(", "))),
            Err(e) => result.verdict = Verdict::HarnessError { error: format!("stopping the probes' extra API servers: {e}") },
        }
        result.compare_with_snapshot(snapshots, true);
        result.phases = phases.done;
        result.took = started.elapsed();
        result.backend = Some(self.env.backend);
        result.started_at = Some(started_at);
        (self.emit)(RunEvent::ScenarioFinished(Box::new(result.clone())));
        result
    }

    pub(super) fn failed(&self, suite: &Suite, sc: &ScenarioSpec, error: RunError) -> ScenarioResult {
        let verdict = match error {
            RunError::NotRunnable(reason) => Verdict::NotRunnable { reason },
            e => Verdict::HarnessError { error: e.to_string() },
        };
        ScenarioResult::without_table(suite, sc, verdict)
    }

    async fn scenario_body(&self, suite: &Suite, sc: &ScenarioSpec, name: &str, journal: &Journal, phases: &mut Phases) -> Result<ScenarioResult, RunError> {
        let env = &self.env;
        let spec = &suite.spec;
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
                return Err(RunError::NotRunnable(format!("fault `{}` needs {needs}, which the {} backend does not have", f.kind(), env.backend.name())));
            }
        }

        phases.enter("prepare");
        let prepares = self.observed(suite).map(|op| {
            let p = self.probes[&op.id.value].clone();
            let id = op.id.value.clone();
            async move { p.prepare().await.map_err(|e| format!("operation `{id}`: {e}")) }
        });
        for r in futures::future::join_all(prepares).await {
            r.map_err(RunError::Setup)?;
        }

        let sampler = Sampler::start(
            self.observed(suite)
                .map(|op| Sampled {
                    id: op.id.value.clone(),
                    probe: self.probes[&op.id.value].clone(),
                    interval: op.interval.0,
                    concurrency: op.concurrency as usize,
                    timeout: op.attempt_timeout.0,
                })
                .collect(),
        );

        phases.enter("steady state");
        self.steady_state(suite, &sampler).await?;
        phases.enter("baseline");
        self.baseline(suite, &sampler).await?;

        let before = if sc.documented.recovery.claims.is_empty() {
            claims::Before::default()
        } else {
            claims::before(env, &self.deployed, suite, sc).await.map_err(|e| RunError::Setup(format!("recording the state before the fault: {e}")))?
        };

        // The fault: journaled, injected, then proven in effect before the window opens.
        phases.enter("inject");
        let inject_wall = std::time::SystemTime::now();
        let inject_i = Instant::now();
        let injected = sampler.now();
        let tag = format!("{}_{}", sc.id.value, journal.pending().len() + 1);
        let mut planned = Vec::new();
        for f in &sc.faults {
            let undo = f.plan(env, &tag).await.map_err(|e| match e {
                // What the backend cannot do to this fault's target (checked only once it is known).
                crate::fault::FaultError::NotRunnable { .. } => RunError::NotRunnable(e.to_string()),
                e => RunError::Setup(format!("planning fault `{}`: {}", f.kind(), crate::error::chain(&e))),
            })?;
            // The proof that the fault is in effect means something only if it did not hold
            // before: the system must be in the state the revert restores.
            f.verify(env, &undo, crate::fault::Expect::Reverted, Deadline::after(Duration::from_secs(10))).await.map_err(|e| {
                RunError::Setup(format!("before fault `{}`, the system is not in the state its revert restores: {}", f.kind(), crate::error::chain(&e)))
            })?;
            let seq = journal.plan(&env.run_id, name, f, &undo).map_err(|e| RunError::Setup(crate::error::chain(&e)))?;
            f.inject(env, &undo).await.map_err(|e| RunError::Setup(format!("injecting fault `{}`: {}", f.kind(), crate::error::chain(&e))))?;
            (self.emit)(RunEvent::FaultInjected { name: name.to_string(), fault: f.kind().into(), journal_seq: seq });
            planned.push((f, undo));
        }
        for (f, undo) in &planned {
            f.verify(env, undo, crate::fault::Expect::InEffect, Deadline::after(PROOF_DEADLINE))
                .await
                .map_err(|e| RunError::NotInEffect(format!("fault `{}`: {}", f.kind(), crate::error::chain(&e))))?;
        }
        let in_effect = sampler.now();
        phases.enter("fault");
        let fault_end = Instant::now() + spec.timing.fault.0;
        while Instant::now() < fault_end {
            check_probes(&sampler)?;
            tokio::time::sleep(Duration::from_millis(100).min(fault_end.saturating_duration_since(Instant::now()))).await;
        }
        let during = claims::during(&sc.documented.recovery.claims, env, &self.deployed, inject_i).await;

        // Revert, then recovery: every operation back and stable.
        phases.enter("revert");
        let revert_start = sampler.now();
        let window = claims::Window { from: inject_wall, to: std::time::SystemTime::now(), from_i: inject_i, to_i: Instant::now() };
        self.revert_pending(journal, name).await?;
        let reverted = sampler.now();
        let reverted_wall = std::time::SystemTime::now();
        phases.enter("recovery");
        let stable = Stable::for_span(spec.timing.stable.0);
        let deadline = Deadline::after(spec.timing.recovery.0);
        loop {
            check_probes(&sampler)?;
            let samples = sampler.samples();
            if self.observed(suite).all(|op| impact::recovery(&samples[&op.id.value], injected, reverted, stable).is_some()) || deadline.passed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let end = sampler.now();
        let samples = sampler.stop().await.map_err(|e| RunError::Setup(e.to_string()))?;
        for (f, undo) in &planned {
            f.verify(env, undo, crate::fault::Expect::Reverted, Deadline::after(PROOF_DEADLINE))
                .await
                .map_err(|e| RunError::NotRecovered(format!("fault `{}` is not undone: {}", f.kind(), crate::error::chain(&e))))?;
        }

        let timeline = Timeline { injected, in_effect, revert_start, reverted, end };
        let operations = verdict::operations(suite, sc, &samples, &self.not_observed, &timeline).map_err(RunError::Setup)?;
        verdict::recovered(suite, &operations).map_err(RunError::NotRecovered)?;

        phases.enter("claims");
        let mut claim_results = Vec::new();
        let undos: Vec<crate::fault::Undo> = planned.iter().map(|(_, u)| u.clone()).collect();
        let recovered_at = verdict::mttr(&operations).map(|m| reverted_wall + m);
        let cx = claims::Context {
            env,
            suite,
            deployed: &self.deployed,
            scenario: sc,
            before: &before,
            during: &during,
            window: &window,
            undos: &undos,
            recovered_at,
        };
        for c in &sc.documented.recovery.claims {
            claim_results.push(claims::check(*c, &cx).await.map_err(RunError::Setup)?);
        }
        phases.close();
        Ok(verdict::scenario(suite, sc, operations, claim_results, timeline))
    }

    /// The suite's operations this backend observes: the ones that have a probe.
    fn observed<'a>(&'a self, suite: &'a Suite) -> impl Iterator<Item = &'a crate::suite::OperationSpec> + 'a {
        suite.spec.operations.iter().filter(|op| !self.not_observed.contains_key(&op.id.value))
    }

    /// Every operation working (its last attempt Ok), waited for up to `timing.steady-state`.
    async fn steady_state(&self, suite: &Suite, sampler: &Sampler) -> Result<(), RunError> {
        let spec = &suite.spec;
        let steady_wait = spec.timing.steady_state;
        let steady = Deadline::after(steady_wait.0);
        loop {
            check_probes(sampler)?;
            let samples = sampler.samples();
            let failing: Vec<String> = self
                .observed(suite)
                .filter_map(|op| match samples.get(&op.id.value).and_then(|s| s.last()) {
                    Some(s) if s.outcome == Outcome::Ok => None,
                    Some(s) => Some(format!("{} ({})", op.id.value, s.detail.clone().unwrap_or_default())),
                    None => Some(format!("{} (no attempt finished yet)", op.id.value)),
                })
                .collect();
            if failing.is_empty() {
                return Ok(());
            }
            if steady.passed() {
                return Err(RunError::SteadyState(format!("after {steady_wait}, still failing: {}", failing.join("; "))));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A clean baseline window of `timing.baseline`: every operation ✅, at least one
    /// attempt each.
    async fn baseline(&self, suite: &Suite, sampler: &Sampler) -> Result<(), RunError> {
        let spec = &suite.spec;
        let baseline_start = sampler.now();
        tokio::time::sleep(spec.timing.baseline.0).await;
        // Every operation needs at least one attempt that ended in the window: what an
        // attempt shows is known when it ends (a slow one may have started before).
        let ended_in = |s: &Sample, end: Duration| s.end() >= baseline_start && s.end() <= end;
        let wait_for_one = Deadline::after(Duration::from_secs(60));
        let baseline_end = loop {
            check_probes(sampler)?;
            let samples = sampler.samples();
            let now = sampler.now();
            let missing = self.observed(suite).find(|op| !samples.get(&op.id.value).is_some_and(|s| s.iter().any(|x| ended_in(x, now))));
            match missing {
                None => break now,
                Some(op) if wait_for_one.passed() => {
                    return Err(RunError::SteadyState(format!("operation `{}` completed no attempt in the baseline window", op.id.value)));
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let samples = sampler.samples();
        for op in self.observed(suite) {
            let judged: Vec<&Sample> = samples[&op.id.value].iter().filter(|x| ended_in(x, baseline_end)).collect();
            let c = impact::judge(judged.iter().copied(), 1).map_err(|e| RunError::SteadyState(format!("operation `{}`: {e}", op.id.value)))?;
            if c.impact != Impact::Unaffected {
                let why = judged.iter().rev().find(|x| x.outcome != Outcome::Ok).and_then(|x| x.detail.clone()).unwrap_or_default();
                return Err(RunError::SteadyState(format!(
                    "operation `{}` was {} in the baseline ({}/{} attempts ok): {why}",
                    op.id.value,
                    c.impact.glyph(),
                    c.ok,
                    c.samples
                )));
            }
        }
        Ok(())
    }
}

impl ScenarioResult {
    /// A result with the documented table and no observation yet.
    pub fn without_table(suite: &Suite, sc: &ScenarioSpec, verdict: Verdict) -> ScenarioResult {
        ScenarioResult {
            suite: suite.id().into(),
            scenario: sc.id.value.clone(),
            title: sc.title.clone(),
            verdict,
            operations: vec![],
            mttr: None,
            mttr_bound: sc.documented.recovery.bound(),
            observed: None,
            expected: table::expected(suite, sc),
            deviations: super::deviation_notes(sc),
            claims: vec![],
            findings: vec![],
            reverted: vec![],
            took: Duration::ZERO,
            round: 1,
            timeline: None,
            phases: vec![],
            backend: None,
            started_at: None,
        }
    }

    /// Set the verdict from the snapshot and the findings, for a scenario that produced a
    /// table; with `leave_pending` false, no observation is left next to the snapshot for
    /// review (`firedrill check` leaves none).
    pub fn compare_with_snapshot(&mut self, snapshots: &std::path::Path, leave_pending: bool) {
        if !matches!(self.verdict, Verdict::Match) {
            return;
        }
        let Some(observed) = &self.observed else { return };
        let rendered = observed.render();
        let rendered = rendered.trim_end_matches('\n');
        let unobserved: Vec<String> = self
            .operations
            .iter()
            .filter(|o| o.not_observed.is_some())
            .flat_map(|o| {
                let op = crate::model::table::escape(&o.name);
                [format!("| {op} | "), format!("Failover: {op} works again within")]
            })
            .collect();
        let mut diff = crate::snapshot::check(snapshots, &self.suite, &self.scenario, rendered, leave_pending, &unobserved).err();
        if !self.findings.is_empty() {
            let text = self.findings.iter().map(|f| format!("- {f}")).collect::<Vec<_>>().join("\n");
            diff = Some(match diff {
                Some(d) => format!("{d}\n{text}"),
                None => format!("the table equals the document's, but:\n{text}"),
            });
        }
        if let Some(diff) = diff {
            self.verdict = Verdict::Mismatch { diff };
        }
    }
}

fn check_probes(s: &Sampler) -> Result<(), RunError> {
    s.check().map_err(|e| RunError::Setup(e.to_string()))
}
