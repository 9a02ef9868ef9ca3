//! Suite files: one per failure-domain document, in `suites/`.
//!
//! A suite names the topology and components it needs, the operations whose impact the
//! document states (each with the probe that really performs it), and the scenarios: the
//! fault(s), the documented impact of every operation, the documented recovery, and any
//! deviation observed and recorded with its evidence.
//!
//! The types here are the file format: every struct denies unknown fields and every
//! choice is a tagged enum, so a suite that parses is one the runner can execute.
//! [`load`] adds the checks serde cannot express (references between sections,
//! duplicates, fixture names) and reports every failure as `file:line:column`.

mod load;
mod ordered;
pub mod placement;
pub mod schema;

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

pub use load::{error_message, load_bytes, load_dir, load_file, load_str};
pub use ordered::OrderedMap;

use crate::fault::FaultSpec;
use crate::model::{Dur, Impact};
use crate::probe::ProbeSpec;

/// A suite as loaded from its file.
#[derive(Debug)]
pub struct Suite {
    /// Where it was loaded from (shown in errors and reports).
    pub file: PathBuf,
    pub spec: SuiteSpec,
}

impl Suite {
    pub fn id(&self) -> &str {
        &self.spec.suite.value
    }

    pub fn operation(&self, id: &str) -> Option<&OperationSpec> {
        self.spec.operations.iter().find(|o| o.id.value == id)
    }

    /// `suite::scenario` for every scenario, in file order: the trial names.
    pub fn trial_names(&self) -> impl Iterator<Item = String> + '_ {
        self.spec.scenarios.iter().map(move |s| format!("{}::{}", self.id(), s.id.value))
    }
}

/// The top level of a suite file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SuiteSpec {
    /// Identifier; must equal the file name without `.yaml`.
    #[schemars(with = "String")]
    pub suite: Spanned<String>,
    /// One line saying what the suite checks.
    pub title: String,
    /// The document the tables come from (a description, not a copy).
    pub source: String,
    /// How the document's glyphs were read, when that needed judgement.
    #[serde(default)]
    pub transcription: Option<String>,
    /// Topology in `fixtures/topologies/<name>.yaml`.
    #[schemars(with = "String")]
    pub topology: Spanned<String>,
    /// Components in `fixtures/components/<name>/`, deployed in order before any scenario.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub components: Vec<Spanned<String>>,
    /// What each of the document's terms is in this topology, and why.
    #[serde(default)]
    pub mapping: Vec<MappingEntry>,
    #[serde(default)]
    pub timing: Timing,
    /// The rows of every impact table, in order.
    pub operations: Vec<OperationSpec>,
    pub scenarios: Vec<ScenarioSpec>,
    /// The document's scheduling table, checked by the claim `placement-conforms`.
    #[serde(default)]
    pub placement: Option<placement::PlacementSpec>,
}

/// A document term and the component that plays it here.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MappingEntry {
    pub term: String,
    pub component: String,
    pub reason: String,
}

/// Phase lengths of every scenario of a suite.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Timing {
    /// Longest wait for every operation to work before the baseline starts; past it, the
    /// scenario aborts with what is still failing.
    #[serde(default = "Timing::default_steady_state")]
    pub steady_state: Dur,
    /// Steady state sampled before the fault; every operation must be ✅ in it.
    #[serde(default = "Timing::default_baseline")]
    pub baseline: Dur,
    /// How long the fault stays in place.
    #[serde(default = "Timing::default_fault")]
    pub fault: Dur,
    /// Longest wait, after revert, for every operation to be ✅ again and stay so for
    /// `stable`.
    #[serde(default = "Timing::default_recovery")]
    pub recovery: Dur,
    /// How long an operation must keep working after it came back for its recovery to
    /// count (rule 4 of the verdict): a flap right after recovering is seen.
    #[serde(default = "Timing::default_stable")]
    pub stable: Dur,
}

impl Timing {
    fn default_steady_state() -> Dur {
        Dur::secs(120)
    }
    fn default_baseline() -> Dur {
        Dur::secs(10)
    }
    fn default_fault() -> Dur {
        Dur::secs(45)
    }
    fn default_recovery() -> Dur {
        Dur::secs(120)
    }
    fn default_stable() -> Dur {
        Dur::secs(10)
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            steady_state: Self::default_steady_state(),
            baseline: Self::default_baseline(),
            fault: Self::default_fault(),
            recovery: Self::default_recovery(),
            stable: Self::default_stable(),
        }
    }
}

/// One row of the impact tables.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OperationSpec {
    /// Short identifier used by scenarios (`login-local`).
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// The row label, in the document's words.
    pub name: String,
    /// How the operation is really performed.
    pub probe: ProbeSpec,
    /// Time between two attempts.
    #[serde(default = "OperationSpec::default_interval")]
    pub interval: Dur,
    /// Samples in the first `settle` after the fault is in place are not judged.
    #[serde(default = "OperationSpec::default_settle")]
    pub settle: Dur,
    /// Fewer samples than this in the fault window is a harness failure.
    #[serde(default = "OperationSpec::default_min_samples")]
    pub min_samples: u32,
    /// Attempts that may be in flight at once (default 1). More lets slow attempts
    /// overlap, so a window holds enough of them to judge.
    #[serde(default = "OperationSpec::default_concurrency")]
    pub concurrency: u32,
    /// An attempt still running after this long is abandoned and fails ("attempt timed
    /// out"); default 30 s.
    #[serde(default = "OperationSpec::default_attempt_timeout")]
    pub attempt_timeout: Dur,
}

impl OperationSpec {
    fn default_interval() -> Dur {
        Dur::millis(250)
    }
    fn default_settle() -> Dur {
        Dur::secs(5)
    }
    fn default_min_samples() -> u32 {
        10
    }
    fn default_concurrency() -> u32 {
        1
    }
    fn default_attempt_timeout() -> Dur {
        Dur(crate::probe::sampler::ATTEMPT_TIMEOUT)
    }
}

/// One failure scenario of the document.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScenarioSpec {
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// The scenario's heading, in the document's words.
    pub title: String,
    /// Injected together, reverted in reverse order.
    pub faults: Vec<FaultSpec>,
    pub documented: Documented,
    /// Set when the document has no table for this scenario and every cell is read from
    /// its facts: why, in a sentence. Shown with the table everywhere.
    #[serde(default)]
    pub derived: Option<String>,
    /// Cells where observation differs from the document, each with its evidence.
    #[serde(default)]
    pub deviations: Vec<Deviation>,
    /// A fault window longer than the suite's `timing.fault`, for what this scenario's
    /// window must contain that the suite's does not.
    #[serde(default)]
    pub window: Option<WindowSpec>,
}

/// A scenario's own fault window: at least this long, and what it must contain.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WindowSpec {
    pub at_least: Dur,
    /// What happens in the window that makes it this long, in a sentence.
    pub contains: String,
}

/// How much longer than its `timing.fault` (or its scenario's `window.at-least`) a fault
/// is held at most while a row's window does not yet hold its `min-samples` (then that row
/// has too few attempts to judge, a harness failure).
pub const MAX_HOLD_BEYOND_FAULT: std::time::Duration = std::time::Duration::from_secs(120);

impl ScenarioSpec {
    /// The shortest the fault stays in place: the scenario's `window.at-least`, else the
    /// suite's `timing.fault`. It is held longer while a row's window lacks attempts.
    pub fn fault_floor(&self, timing: &Timing) -> Dur {
        self.window.as_ref().map(|w| w.at_least).unwrap_or(timing.fault)
    }
}

/// What the document says happens.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Documented {
    /// Impact of every operation of the suite, by operation id.
    #[schemars(with = "std::collections::BTreeMap<String, Impact>")]
    pub impact: OrderedMap<Spanned<String>, Impact>,
    /// Short note shown beside an operation's glyph.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, String>")]
    pub notes: OrderedMap<Spanned<String>, String>,
    /// Cells the document does not state, read from its facts: operation → why. Every
    /// table and report labels them "derived".
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, String>")]
    pub derived: OrderedMap<Spanned<String>, String>,
    /// For every ⚠️ and ❌ cell, the causes its failures are expected to have: regular
    /// expressions, each failed attempt's reason (every `cluster: reason` part of it) must
    /// match one. A cell whose failures have another cause does not match the document.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, Vec<String>>")]
    pub causes: OrderedMap<Spanned<String>, Vec<String>>,
    pub recovery: RecoverySpec,
}

/// The document's recovery claims.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecoverySpec {
    /// Every operation the bound is about is ✅ again within this long after the fault is
    /// reverted; absent when the document gives no bound (its words, if any, go in
    /// `mttr-words`). Must leave room in `timing.recovery` for the bound, its 2 s
    /// allowance and `timing.stable`, or "over the bound" could never be seen.
    #[serde(default)]
    #[schemars(with = "Option<Dur>")]
    pub mttr: Option<Spanned<Dur>>,
    /// The document's words for the bound (`5–60 s`), shown in the table.
    #[serde(default)]
    pub mttr_words: Option<String>,
    /// Operations the document's bound is not about: operation → why. Their recovery is
    /// measured and reported, not judged against the bound; every table says so.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, String>")]
    pub mttr_excludes: OrderedMap<Spanned<String>, String>,
    /// Post-checks run after recovery.
    #[serde(default)]
    pub claims: Vec<Claim>,
    /// Claims the document does not state: claim → why the suite makes it anyway. Every
    /// table and report labels them derived.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, String>")]
    pub derived: OrderedMap<Spanned<String>, String>,
    /// Operations a standby takes over while the fault is still in place (a new leader
    /// elected): operation → how long after the fault took effect it works again for good
    /// (every attempt ✅ from then to the revert, at least `timing.stable` long). Judged
    /// as the MTTR is, with the same 2 s allowance; every table shows whether it held.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, Dur>")]
    pub failover: OrderedMap<Spanned<String>, Dur>,
}

impl RecoverySpec {
    pub fn bound(&self) -> Option<std::time::Duration> {
        self.mttr.as_ref().map(|m| m.value.0)
    }

    /// Whether `op`'s recovery is judged against the bound.
    pub fn judges(&self, op: &str) -> bool {
        !self.mttr_excludes.iter().any(|(k, _)| k.value == op)
    }

    /// Why the suite makes `claim` when the document does not state it.
    pub fn claim_derived(&self, claim: Claim) -> Option<&str> {
        self.derived.iter().find(|(k, _)| k.value == claim.id()).map(|(_, v)| v.as_str())
    }
}

/// A recovery claim a post-check verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Claim {
    /// Changes made during the fault reach the affected clusters after recovery.
    QueuedAndApplied,
    /// Every replica holds exactly the directory's objects after recovery.
    Converged,
    /// No configuration or data written before or during the fault is missing after it.
    NothingLost,
    /// A failed instance is replaced, Ready again within the documented MTTR.
    InstanceReplaced,
    /// Every object of the etcd snapshot is back with the same content and the workloads
    /// Ready; the writes after it are lost (RTO and RPO stated).
    RestoredFromBackup,
    /// A corrupt backup is refused by the restore, and no member is restored from it.
    BackupRefused,
    /// The live cluster matches every row of the suite's `placement` table.
    PlacementConforms,
    /// Every pod of the drained nodes, but those of DaemonSets, was evicted.
    DrainCompleted,
    /// The API refused an eviction that would have broken a PodDisruptionBudget, and the
    /// pod kept running.
    DrainRefusedByPdb,
    /// Every pod of a ReplicaSet on a lost node is replaced on another node, Ready before
    /// the node is back (the time stated).
    ReplacedElsewhere,
}

impl Claim {
    /// The name suites use (`placement-conforms`).
    pub fn id(self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => s,
            other => unreachable!("a claim serializes as its name, not {other:?}"),
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Claim::QueuedAndApplied => "changes queued and applied on recovery",
            Claim::Converged => "replicas converge to the directory",
            Claim::NothingLost => "nothing lost",
            Claim::InstanceReplaced => "failed instance replaced within the documented MTTR",
            Claim::RestoredFromBackup => "every object of the backup restored, workloads Ready",
            Claim::BackupRefused => "a corrupt backup refused, nothing restored from it",
            Claim::PlacementConforms => "placement matches the scheduling table",
            Claim::DrainCompleted => "every pod of the drained nodes evicted",
            Claim::DrainRefusedByPdb => "an eviction that would break a disruption budget refused",
            Claim::ReplacedElsewhere => "a lost node's pods replaced on other nodes",
        }
    }
}

/// An observed cell that differs from the document, kept with the reason and evidence.
///
/// Three forms: a glyph (`documented` and `observed`); an onset (`onset`: the documented
/// impact holds, but only from up to this long after the fault is in effect — the cell is
/// judged from then on, and its first failure must come within it); or the recovery line
/// (operation `recovery`, no glyphs).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Deviation {
    /// The operation, or `recovery` for the MTTR line.
    #[schemars(with = "String")]
    pub operation: Spanned<String>,
    /// For an operation: the documented and the observed glyph.
    #[serde(default)]
    pub documented: Option<Impact>,
    #[serde(default)]
    pub observed: Option<Impact>,
    /// The documented impact takes effect only this long after the fault does.
    #[serde(default)]
    pub onset: Option<Dur>,
    /// Whether the system behaves differently (`system`), or the document's condition for
    /// its glyph is not what the scenario simulates (`condition-not-simulated`).
    #[serde(default)]
    pub kind: DeviationKind,
    /// Why the system differs from the document.
    pub reason: String,
    /// What was seen: log lines, HTTP statuses, measured numbers.
    pub evidence: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeviationKind {
    #[default]
    System,
    ConditionNotSimulated,
}

impl DeviationKind {
    pub fn words(self) -> &'static str {
        match self {
            DeviationKind::System => "the system differs",
            DeviationKind::ConditionNotSimulated => "condition not simulated",
        }
    }
}

impl ScenarioSpec {
    /// The glyph the scenario's table must show for `op`: the document's, or a recorded
    /// glyph deviation's observed one.
    /// The document's own glyph for an operation.
    pub fn documented_impact(&self, op: &str) -> Option<Impact> {
        self.documented.impact.iter().find(|(k, _)| k.value == op).map(|(_, v)| *v)
    }

    /// The document's glyph, or a recorded deviation's observed one: what the table must show.
    pub fn expected_impact(&self, op: &str) -> Option<Impact> {
        let documented = self.documented_impact(op)?;
        Some(self.deviations.iter().find(|d| d.operation.value == op).and_then(|d| d.observed).unwrap_or(documented))
    }

    pub fn deviation(&self, op: &str) -> Option<&Deviation> {
        self.deviations.iter().find(|d| d.operation.value == op)
    }

    pub fn causes(&self, op: &str) -> &[String] {
        self.documented.causes.iter().find(|(k, _)| k.value == op).map(|(_, v)| v.as_slice()).unwrap_or_default()
    }

    pub fn derived_reason(&self, op: &str) -> Option<&str> {
        self.documented.derived.iter().find(|(k, _)| k.value == op).map(|(_, v)| v.as_str())
    }
}

/// The operation name a recovery deviation uses.
pub const RECOVERY: &str = "recovery";
