//! Impact tables in the documents' form, and the expected table of a scenario.
//!
//! Only stable content is rendered: glyphs, notes, whether recovery was within the
//! documented bound, whether each claim held. Counts, ratios and times go to the report.

use std::fmt::Write as _;
use std::time::Duration;

use super::Impact;
use crate::suite::{Claim, DeviationKind, RECOVERY, ScenarioSpec, Suite};

/// Allowance on top of a documented MTTR for the measurement itself: the probe cadence
/// and the moment a reverted fault takes effect. Part of the rule in `impact.rs`.
pub const RECOVERY_GRACE: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ImpactTable {
    pub title: String,
    /// Why the whole table is derived from the document's facts, when it is.
    pub derived: Option<String>,
    pub rows: Vec<Row>,
    pub recovery: RecoveryLine,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Row {
    pub operation: String,
    /// `None`: the operation was not observed, because the backend cannot observe it
    /// (the note says why); such a row is left out of the comparison with the snapshot.
    pub impact: Option<Impact>,
    pub note: String,
}

/// The glyph of a row whose operation was not observed.
pub const NOT_OBSERVED: &str = "—";

/// The note of a row whose operation was not observed on `backend`, and why.
pub fn not_observed_note(backend: &str, why: &str) -> String {
    format!("not observed on the {backend} backend: {why}")
}

impl Row {
    pub fn glyph(&self) -> &'static str {
        self.impact.map(|i| i.glyph()).unwrap_or(NOT_OBSERVED)
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RecoveryLine {
    /// The bound in the document's words (`5–60 s`), or the bound itself.
    pub bound: String,
    /// Whether recovery was within the bound; `None` when the document gives none.
    pub within: Option<bool>,
    pub note: String,
    /// Operations not judged against the bound, by name, with the reason.
    pub excluded: Vec<(String, String)>,
    pub claims: Vec<ClaimLine>,
    /// Operations that fail over during the fault, by name, with the bound and whether
    /// they worked again within it (`None`: the operation was not observed).
    pub failover: Vec<(String, String, Option<bool>)>,
}

/// A recovery claim and whether it held; `derived` when the document does not state it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClaimLine {
    pub claim: Claim,
    pub holds: bool,
    pub derived: Option<String>,
}

impl ClaimLine {
    /// `Claim: nothing lost — holds`; `Claim (derived: why): … — holds`.
    pub fn describe(&self) -> String {
        let label = match &self.derived {
            Some(why) => format!("Claim (derived: {})", escape(why)),
            None => "Claim".into(),
        };
        format!("{label}: {} — {}", self.claim.words(), holds(self.holds))
    }
}

impl ImpactTable {
    /// Markdown, one row per operation, as the documents print their tables.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.title);
        if let Some(why) = &self.derived {
            let _ = writeln!(out, "Derived from the document's facts, not its table: {}\n", escape(why));
        }
        out.push_str("| Operation | Impact | Note |\n| --- | --- | --- |\n");
        for r in &self.rows {
            let _ = writeln!(out, "| {} | {} | {} |", escape(&r.operation), r.glyph(), escape(&r.note));
        }
        let r = &self.recovery;
        let _ = writeln!(out, "\nRecovery: {}", r.describe());
        for (op, why) in &r.excluded {
            let _ = writeln!(out, "Not judged against the MTTR: {op} — {}", escape(why));
        }
        for c in &r.claims {
            let _ = writeln!(out, "{}", c.describe());
        }
        for (op, bound, held) in &r.failover {
            let held = held.map(holds).unwrap_or("not observed");
            let _ = writeln!(out, "Failover: {} works again within {bound} of the fault — {held}", escape(op));
        }
        out
    }
}

impl RecoveryLine {
    /// `within the documented MTTR (5–60 s) — note`, `no MTTR documented`.
    pub fn describe(&self) -> String {
        let mut s = match self.within {
            Some(within) => format!("{} the documented MTTR ({})", if within { "within" } else { "over" }, self.bound),
            None if self.bound.is_empty() => "no MTTR documented".into(),
            None => format!("no MTTR documented (\"{}\")", self.bound),
        };
        if !self.note.is_empty() {
            s.push_str(&format!(" — {}", self.note));
        }
        s
    }
}

/// How a recovery claim came out, in every table and report.
pub fn holds(held: bool) -> &'static str {
    if held { "holds" } else { "does not hold" }
}

/// A Markdown table cell: `|` escaped, newlines as spaces.
pub(crate) fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The note beside an operation's glyph: the document's note, "derived" for a cell the
/// document does not state, and a pointer to a recorded deviation. Shared by the expected
/// and the observed table so that only glyphs, bounds and claims can differ between them.
pub fn note_for(scenario: &ScenarioSpec, op: &str) -> String {
    let mut parts = Vec::new();
    if let Some((_, n)) = scenario.documented.notes.iter().find(|(k, _)| k.value == op) {
        parts.push(n.clone());
    }
    if let Some(why) = scenario.derived_reason(op) {
        parts.push(format!("derived: {why}"));
    }
    if let Some(d) = scenario.deviation(op) {
        let kind = match d.kind {
            DeviationKind::System => String::new(),
            k => format!(" ({})", k.words()),
        };
        parts.push(match (d.documented, d.onset) {
            (Some(doc), _) => format!("deviation recorded{kind}: documented {}", doc.glyph()),
            (None, Some(onset)) => format!("deviation recorded{kind}: takes effect up to {onset} into the fault"),
            (None, None) => format!("deviation recorded{kind}"),
        });
    }
    parts.join("; ")
}

/// The operations a scenario's MTTR does not judge, by name, with why.
pub fn excluded(suite: &Suite, scenario: &ScenarioSpec) -> Vec<(String, String)> {
    scenario
        .documented
        .recovery
        .mttr_excludes
        .iter()
        .map(|(k, why)| (suite.operation(&k.value).map(|o| o.name.clone()).unwrap_or_else(|| k.value.clone()), why.clone()))
        .collect()
}

/// The operations a scenario says fail over during the fault, by name, with the bound.
pub fn failover_bounds(suite: &Suite, scenario: &ScenarioSpec) -> Vec<(String, crate::model::Dur)> {
    scenario
        .documented
        .recovery
        .failover
        .iter()
        .map(|(k, bound)| (suite.operation(&k.value).map(|o| o.name.clone()).unwrap_or_else(|| k.value.clone()), *bound))
        .collect()
}

/// The recovery line's note: a pointer to a recorded recovery deviation.
pub fn recovery_note(scenario: &ScenarioSpec) -> String {
    if scenario.deviations.iter().any(|d| d.operation.value == RECOVERY) { "deviation recorded".into() } else { String::new() }
}

pub fn bound_words(scenario: &ScenarioSpec) -> String {
    let r = &scenario.documented.recovery;
    r.mttr_words.clone().unwrap_or_else(|| r.mttr.as_ref().map(|m| m.value.to_string()).unwrap_or_default())
}

/// The table a scenario must produce: the document's glyphs, with every recorded
/// deviation's observed glyph in its cell. This is what `snapshots/` holds.
pub fn expected(suite: &Suite, scenario: &ScenarioSpec) -> ImpactTable {
    let rows = suite
        .spec
        .operations
        .iter()
        .map(|op| {
            let id = op.id.value.as_str();
            let impact = scenario.expected_impact(id).expect("suite::load checks that every operation has a documented impact");
            Row { operation: op.name.clone(), impact: Some(impact), note: note_for(scenario, id) }
        })
        .collect();
    let recovery_deviates = scenario.deviations.iter().any(|d| d.operation.value == RECOVERY);
    ImpactTable {
        title: scenario.title.clone(),
        derived: scenario.derived.clone(),
        rows,
        recovery: RecoveryLine {
            bound: bound_words(scenario),
            within: scenario.documented.recovery.mttr.as_ref().map(|_| !recovery_deviates),
            note: recovery_note(scenario),
            excluded: excluded(suite, scenario),
            claims: scenario
                .documented
                .recovery
                .claims
                .iter()
                .map(|c| ClaimLine { claim: *c, holds: true, derived: scenario.documented.recovery.claim_derived(*c).map(String::from) })
                .collect(),
            failover: failover_bounds(suite, scenario).into_iter().map(|(op, bound)| (op, bound.to_string(), Some(true))).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documents_form() {
        let t = ImpactTable {
            title: "All identity instances down".into(),
            derived: None,
            rows: vec![
                Row { operation: "Console login".into(), impact: Some(Impact::Lost), note: String::new() },
                Row { operation: "Cached keys | API".into(), impact: Some(Impact::Unaffected), note: "low risk".into() },
                Row { operation: "Discovery".into(), impact: Some(Impact::Limited), note: String::new() },
            ],
            recovery: RecoveryLine {
                bound: "5–60 s".into(),
                within: Some(true),
                note: String::new(),
                excluded: vec![("Key rotation".into(), "a background task".into())],
                claims: vec![
                    ClaimLine { claim: Claim::NothingLost, holds: true, derived: None },
                    ClaimLine { claim: Claim::QueuedAndApplied, holds: false, derived: None },
                    ClaimLine { claim: Claim::PlacementConforms, holds: true, derived: Some("the document has no | table".into()) },
                ],
                failover: vec![("Leader-held controllers acting".into(), "20s".into(), Some(false))],
            },
        };
        insta::assert_snapshot!(t.render(), @r"
        ### All identity instances down

        | Operation | Impact | Note |
        | --- | --- | --- |
        | Console login | ❌ |  |
        | Cached keys \| API | ✅ | low risk |
        | Discovery | ⚠️ |  |

        Recovery: within the documented MTTR (5–60 s)
        Not judged against the MTTR: Key rotation — a background task
        Claim: nothing lost — holds
        Claim: changes queued and applied on recovery — does not hold
        Claim (derived: the document has no \| table): placement matches the scheduling table — holds
        Failover: Leader-held controllers acting works again within 20s of the fault — does not hold
        ");
    }
}
