//! The scenario lifecycle: prepare, steady state, baseline, inject (and prove the fault in
//! effect), the fault window, revert, recovery (stable), post-checks, verdict. Faults are
//! reverted on every way out, from the journal, by [`Session::run_scenario`].
//!
//! Sampling is continuous across a suite's scenarios: a scenario that ends with every
//! operation recovered and stable leaves its sampler running ([`Carried`]), and the next
//! scenario's steady state and baseline are judged on that tail (its last
//! `timing.baseline`, with whatever ran since) instead of being waited for again. Only
//! when the tail is not clean does the next scenario wait for a steady state and a
//! baseline of its own. Each scenario's samples and timeline are on its own clock, which
//! starts where its baseline does.

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

use crate::suite::MAX_HOLD_BEYOND_FAULT;

/// A sampler a scenario left running for the next one, and when, on its clock, the
/// scenario judged every operation recovered and stable.
pub(super) struct Carried {
    pub sampler: Sampler,
    pub end: Duration,
}

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
        // A scenario that carried its sampler on keeps its probes' attempts running; one
        // that did not may have left an attempt's API server behind.
        let carried = self.carried.lock().expect("carried sampler").is_some();
        let extras = if carried { Ok(vec![]) } else { self.env.stop_extra_apiservers().await };
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
        let pending = journal.pending().map_err(|e| RunError::Revert(crate::error::chain(&e)))?;
        if let Some(e) = pending.first() {
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

        // Probes are prepared before sampling starts; a sampler carried on from the scenario
        // before runs on probes prepared then, which only forget that scenario's own state.
        phases.enter("prepare");
        let carried = self.carried.lock().expect("carried sampler").take();
        let prepares = self.observed(suite).map(|op| {
            let p = self.probes[&op.id.value].clone();
            let id = op.id.value.clone();
            let again = carried.is_some();
            async move { if again { p.next_scenario().await } else { p.prepare().await }.map_err(|e| format!("operation `{id}`: {e}")) }
        });
        for r in futures::future::join_all(prepares).await {
            r.map_err(RunError::Setup)?;
        }

        // The sampler the scenario before left running, whose stable tail is this one's
        // steady state and baseline; else a new one, and a steady state waited for.
        let (sampler, origin) = match carried {
            Some(Carried { sampler, end }) => {
                let origin = end.saturating_sub(spec.timing.baseline.0);
                phases.enter("baseline");
                match self.baseline(suite, &sampler, Some(origin)).await {
                    Ok(_) => (sampler, origin),
                    Err(tail) => {
                        // Not clean (an operation failed after the last scenario's recovery):
                        // a steady state and a baseline of this scenario's own, where its
                        // clock then starts.
                        (self.emit)(RunEvent::Warning {
                            message: format!("{name}: the last scenario's tail is no baseline ({tail}); waiting for a steady state"),
                        });
                        phases.enter("steady state");
                        self.steady_state(suite, &sampler).await?;
                        phases.enter("baseline");
                        let origin = self.baseline(suite, &sampler, None).await?;
                        (sampler, origin)
                    }
                }
            }
            None => {
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
                self.baseline(suite, &sampler, None).await?;
                (sampler, Duration::ZERO)
            }
        };

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
        let tag = format!("{}_{}", sc.id.value, pending.len() + 1);
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
        let in_effect_i = Instant::now();
        phases.enter("fault");
        // Where a probe can tell how soon a loss could show now (`Probe::settle`), its row
        // is judged from then rather than after the suite's worst case.
        // A probe says how long from when it was asked; the window counts from `in_effect`.
        let asked = sampler.now().saturating_sub(in_effect);
        let settles = futures::future::join_all(self.observed(suite).map(|op| {
            let p = self.probes[&op.id.value].clone();
            let id = op.id.value.clone();
            async move { (id, tokio::time::timeout(Duration::from_secs(5), p.settle()).await.ok().flatten()) }
        }))
        .await;
        let settle: std::collections::BTreeMap<String, Duration> = settles.into_iter().filter_map(|(id, s)| Some((id, asked + s?))).collect();
        // The window lasts `timing.fault` (or the scenario's `window.at-least`), and then
        // until every row's judged window holds its minimum of attempts: as long as the
        // slowest thing it must contain.
        let floor = in_effect_i + sc.fault_floor(&spec.timing).0;
        let cap = floor + MAX_HOLD_BEYOND_FAULT;
        loop {
            check_probes(&sampler)?;
            let now = Instant::now();
            if now >= cap || (now >= floor && self.every_row_judged(suite, sc, &sampler.samples_since(in_effect), in_effect, sampler.now(), &settle)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
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
            let samples = sampler.samples_since(origin);
            if self.observed(suite).all(|op| impact::recovery(&samples[&op.id.value], injected, reverted, stable).is_some()) || deadline.passed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The attempts that ended by now are the scenario's; then sampling pauses (those in
        // flight end, none starts) while the revert is verified and the claims checked, as
        // nothing the probes do may overlap a post-check (a management write between two
        // reads of the nothing-lost claim), and resumes for the next scenario.
        let end = sampler.now();
        check_probes(&sampler)?;
        let samples = rebased(ended_by(sampler.samples_since(origin), end), origin);
        sampler.pause().await.map_err(|e| RunError::Setup(e.to_string()))?;
        for (f, undo) in &planned {
            f.verify(env, undo, crate::fault::Expect::Reverted, Deadline::after(PROOF_DEADLINE))
                .await
                .map_err(|e| RunError::NotRecovered(format!("fault `{}` is not undone: {}", f.kind(), crate::error::chain(&e))))?;
        }

        let at = |t: Duration| t.saturating_sub(origin);
        let timeline =
            Timeline { injected: at(injected), in_effect: at(in_effect), revert_start: at(revert_start), reverted: at(reverted), end: at(end), settle };
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
        // Every operation recovered and stayed so: sampling goes on into the next scenario.
        check_probes(&sampler)?;
        sampler.resume();
        *self.carried.lock().expect("carried sampler") = Some(Carried { sampler, end });
        Ok(verdict::scenario(suite, sc, operations, claim_results, timeline))
    }

    /// Every observed row's window, were the fault reverted now, holds the row's minimum
    /// of attempts (`model::impact::classify`'s selection).
    fn every_row_judged(
        &self,
        suite: &Suite,
        sc: &ScenarioSpec,
        samples: &std::collections::BTreeMap<String, Vec<Sample>>,
        in_effect: Duration,
        now: Duration,
        settle: &std::collections::BTreeMap<String, Duration>,
    ) -> bool {
        let t = Timeline { in_effect, revert_start: now, settle: settle.clone(), ..Default::default() };
        self.observed(suite).all(|op| {
            let (from, to) = verdict::window(op, sc, &t);
            let judged = samples.get(&op.id.value).map_or(0, |v| impact::in_window(v, (from, to)).count());
            judged >= op.min_samples.max(1) as usize
        })
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
    /// attempt each. The window starts now, or at `from` on the sampler's clock (the
    /// stable tail of the scenario before), and lasts at least `timing.baseline`.
    /// Returns where the window started.
    async fn baseline(&self, suite: &Suite, sampler: &Sampler, from: Option<Duration>) -> Result<Duration, RunError> {
        let spec = &suite.spec;
        let baseline_start = from.unwrap_or_else(|| sampler.now());
        tokio::time::sleep((baseline_start + spec.timing.baseline.0).saturating_sub(sampler.now())).await;
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
        Ok(baseline_start)
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

/// The attempts that had ended by `end` (those still in flight then are not the scenario's:
/// they end while sampling pauses, and feed the next scenario's baseline).
fn ended_by(samples: std::collections::BTreeMap<String, Vec<Sample>>, end: Duration) -> std::collections::BTreeMap<String, Vec<Sample>> {
    samples.into_iter().map(|(op, v)| (op, v.into_iter().filter(|s| s.end() <= end).collect())).collect()
}

/// Samples on the scenario's clock, which starts at `origin` on the sampler's (those that
/// started before it, the scenario before's, are already left out).
fn rebased(samples: std::collections::BTreeMap<String, Vec<Sample>>, origin: Duration) -> std::collections::BTreeMap<String, Vec<Sample>> {
    samples.into_iter().map(|(op, v)| (op, v.into_iter().map(|s| Sample { at: s.at.saturating_sub(origin), ..s }).collect())).collect()
}

fn check_probes(s: &Sampler) -> Result<(), RunError> {
    s.check().map_err(|e| RunError::Setup(e.to_string()))
}
