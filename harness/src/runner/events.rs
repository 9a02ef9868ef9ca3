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
    /// `took` is the whole of it: `bring_up` (provisioning the clusters, or attaching to
    /// them), then `deploy` (the suite's components), then building the probes.
    EnvironmentReady {
        suite: String,
        run_id: String,
        run_dir: String,
        took: Duration,
        bring_up: Duration,
        deploy: Duration,
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
    /// `took`: the teardown. A kept environment is not torn down, and has no such event.
    EnvironmentDown {
        suite: String,
        took: Duration,
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
    /// Why a table that equals the document's still does not match it: failures whose
    /// cause the suite does not expect, an impact that took effect later than recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    pub reverted: Vec<String>,
    pub took: Duration,
    /// Which round of `firedrill run --repeat N` (1 without it).
    pub round: u32,
    /// When each phase of the scenario happened, on the scenario's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// How long each phase took, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<(String, Duration)>,
    /// The backend the scenario ran on and when it started (`firedrill docs` says both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<crate::backend::BackendKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<jiff::Timestamp>,
}

/// The moments of one scenario, on its clock (which starts where its samples do).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Timeline {
    /// Injection began.
    pub injected: Duration,
    /// Every fault was proven in effect: the fault window starts here.
    pub in_effect: Duration,
    /// Revert began: the fault window ends here.
    pub revert_start: Duration,
    /// Revert ended: recovery is timed from here.
    pub reverted: Duration,
    /// Sampling stopped.
    pub end: Duration,
    /// For an operation whose probe can tell, once the fault was in effect, how long from
    /// then a loss of the operation could first show (`Probe::settle`): it replaces the
    /// operation's `settle`, the worst case, when its window is judged.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub settle: std::collections::BTreeMap<String, Duration>,
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

    /// The verdict's name as `results.json` records it (its serde tag).
    pub fn tag(&self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Mismatch { .. } => "mismatch",
            Verdict::NotRunnable { .. } => "not-runnable",
            Verdict::HarnessError { .. } => "harness-error",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OperationResult {
    pub id: String,
    pub name: String,
    pub documented: Impact,
    /// What the table must show: the documented glyph, or a recorded deviation's.
    pub expected: Impact,
    pub classification: Option<Classification>,
    /// Why the backend could not observe the operation (its row's note), if it could not:
    /// then it has no classification, no samples and no recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_observed: Option<String>,
    /// The judged window, on the scenario's clock.
    pub window: (Duration, Duration),
    /// From revert to being ✅ again for good; `None` if it never was within the recovery window.
    pub recovery: Option<Duration>,
    /// How precise `recovery` is (rule 4): the attempt interval plus the attempt's duration.
    pub resolution: Option<Duration>,
    /// The operation never failed from the fault on.
    pub never_affected: bool,
    /// From revert to the end of the last failed attempt seen before recovering.
    pub last_failure: Option<Duration>,
    /// From the fault being in effect to the end of the first failed attempt.
    pub first_failure: Option<Duration>,
    /// From the fault being in effect to working again for good before the revert (a
    /// standby took over); see `model::impact::failover`.
    pub failover: Option<Duration>,
    /// Why the operation's recovery is not judged against the documented MTTR, if it is not.
    pub mttr_excluded: Option<String>,
    /// Why the cell is derived from the document's facts, if it is.
    pub derived: Option<String>,
    /// The causes the suite expects of this cell's failures.
    pub causes: Vec<String>,
    /// Failures in the window whose cause the suite does not expect, most frequent first.
    pub unexplained: Vec<(String, usize)>,
    /// The most frequent reasons for failed attempts in the fault window.
    pub failures: Vec<(String, usize)>,
    /// The same, for attempts between the revert and recovery.
    pub recovery_failures: Vec<(String, usize)>,
    /// Every attempt, on the scenario's clock.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<crate::model::Sample>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviationNote {
    pub operation: String,
    pub documented: Option<Impact>,
    pub observed: Option<Impact>,
    pub onset: Option<Duration>,
    pub kind: crate::suite::DeviationKind,
    pub reason: String,
    pub evidence: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdicts_tag_is_the_one_results_json_records() {
        for v in
            [Verdict::Match, Verdict::Mismatch { diff: "d".into() }, Verdict::NotRunnable { reason: "r".into() }, Verdict::HarnessError { error: "e".into() }]
        {
            assert_eq!(serde_json::to_value(&v).unwrap()["verdict"], v.tag());
        }
    }
}
