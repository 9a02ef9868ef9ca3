//! What the runner reports as it goes. Reporters consume these; they never decide a
//! verdict.

use std::time::Duration;

use serde::Serialize;

use crate::model::{Classification, Impact, ImpactTable};

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum RunEvent {
    /// Printed first: what will be faulted.
    Plan {
        suite: String,
        environment: String,
        clusters: Vec<String>,
    },
    EnvironmentReady {
        suite: String,
        run_id: String,
        run_dir: String,
        took: Duration,
    },
    ScenarioStarted {
        name: String,
        title: String,
    },
    Phase {
        name: String,
        phase: String,
    },
    FaultInjected {
        name: String,
        fault: String,
        journal_seq: u64,
    },
    FaultReverted {
        name: String,
        undo: String,
    },
    ScenarioFinished(Box<ScenarioResult>),
    EnvironmentDown {
        suite: String,
    },
    /// Something the user should know that is not a verdict (e.g. teardown failed).
    Warning {
        message: String,
    },
}

/// Everything known about one scenario once it ends.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub suite: String,
    pub scenario: String,
    pub title: String,
    pub verdict: Verdict,
    pub operations: Vec<OperationResult>,
    /// The longest recovery among operations, and the documented bound.
    pub mttr: Option<Duration>,
    pub mttr_bound: Option<Duration>,
    pub observed: Option<ImpactTable>,
    pub expected: ImpactTable,
    pub deviations: Vec<DeviationNote>,
    /// The recovery claims' post-checks.
    pub claims: Vec<super::claims::ClaimResult>,
    pub reverted: Vec<String>,
    pub took: Duration,
    /// Which round of `firedrill run --repeat N` (1 without it).
    pub round: u32,
}

impl ScenarioResult {
    pub fn name(&self) -> String {
        format!("{}::{}", self.suite, self.scenario)
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The observed table is the snapshot.
    Match,
    /// The observed table differs from the snapshot.
    Mismatch { diff: String },
    /// The backend lacks a capability the scenario needs.
    NotRunnable { reason: String },
    /// The harness failed: no verdict on the system under test.
    HarnessError { error: String },
}

impl Verdict {
    pub fn is_match(&self) -> bool {
        matches!(self, Verdict::Match)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OperationResult {
    pub id: String,
    pub name: String,
    pub documented: Impact,
    pub classification: Option<Classification>,
    /// From revert to being ✅ again; `None` if it never was within the recovery window.
    pub recovery: Option<Duration>,
    /// From revert to the last failed attempt seen before recovering.
    pub last_failure: Option<Duration>,
    /// The most frequent reasons for failed attempts in the fault window.
    pub failures: Vec<(String, usize)>,
    /// The same, for attempts between the revert and recovery.
    pub recovery_failures: Vec<(String, usize)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviationNote {
    pub operation: String,
    pub documented: Option<Impact>,
    pub observed: Option<Impact>,
    pub reason: String,
    pub evidence: Vec<String>,
}
