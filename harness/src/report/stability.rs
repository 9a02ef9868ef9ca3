//! Stability across repeated rounds (`firedrill run --repeat N`): every cell whose glyph,
//! or whose scenario's verdict, was not the same in every complete round, and the spread
//! of each operation's measured recovery time. It reads results; it decides no verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::secs;
use crate::runner::ScenarioResult;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stability {
    /// Complete rounds compared. An interrupted last round did not run everything and is
    /// left out.
    pub rounds: usize,
    /// `suite::scenario / cell: value | value | …`, one value per round (`·` where the
    /// cell is missing from a round).
    pub changed: Vec<String>,
    /// Recovery times of every operation that recovered in at least one round.
    pub recovery: Vec<RecoverySpread>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecoverySpread {
    pub scenario: String,
    pub operation: String,
    /// Rounds in which the operation recovered (a round whose scenario failed has none).
    pub rounds: usize,
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Stability {
    /// Compare the rounds; `rounds[i]` holds round `i + 1`'s results.
    pub fn of(rounds: &[Vec<ScenarioResult>]) -> Stability {
        let complete = rounds.iter().take_while(|r| r.len() == rounds[0].len()).count();
        let rounds = &rounds[..complete];
        let mut seen = Vec::new();
        let mut recoveries: BTreeMap<(String, String), Vec<Duration>> = BTreeMap::new();
        for (i, round) in rounds.iter().enumerate() {
            for r in round {
                for o in &r.operations {
                    let glyph = o.classification.as_ref().map(|c| c.impact.glyph().to_string()).unwrap_or_else(|| "—".into());
                    seen.push((i, r.name(), o.name.clone(), glyph));
                    if let Some(t) = o.recovery {
                        recoveries.entry((r.name(), o.name.clone())).or_default().push(t);
                    }
                }
                // A harness error after a table was computed (a steady state not
                // restored) counts: the verdict is a cell of its own.
                seen.push((i, r.name(), "(verdict)".into(), super::markdown::verdict_word(&r.verdict).into()));
            }
        }
        let recovery = recoveries
            .into_iter()
            .map(|((scenario, operation), mut times)| {
                times.sort();
                RecoverySpread { scenario, operation, rounds: times.len(), median: median(&times), min: times[0], max: times[times.len() - 1] }
            })
            .collect();
        Stability { rounds: complete, changed: changed_cells(complete, &seen), recovery }
    }

    /// One line for the terminal.
    pub fn summary(&self) -> String {
        if self.changed.is_empty() {
            format!("every verdict was identical in all {} complete rounds", self.rounds)
        } else {
            format!("{} cell(s) changed across {} complete rounds", self.changed.len(), self.rounds)
        }
    }

    pub fn render_markdown(&self) -> String {
        let mut out = format!("## Stability over {} rounds\n\n{}.\n\n", self.rounds, capitalised(&self.summary()));
        for c in &self.changed {
            let _ = writeln!(out, "- {}", c.replace('|', "\\|"));
        }
        if !self.changed.is_empty() {
            out.push('\n');
        }
        if !self.recovery.is_empty() {
            out.push_str("| Scenario | Operation | Recovery median | min | max | Rounds |\n| --- | --- | --- | --- | --- | --- |\n");
            for r in &self.recovery {
                let _ = writeln!(out, "| {} | {} | {} | {} | {} | {} |", r.scenario, r.operation, secs(r.median), secs(r.min), secs(r.max), r.rounds);
            }
            out.push('\n');
        }
        out
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The median of sorted, non-empty `times` (the mean of the two middle ones when even).
fn median(times: &[Duration]) -> Duration {
    let n = times.len();
    if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2 }
}

/// The cells whose value is not the same in every round: `seen` is (round, scenario,
/// cell, value); a cell missing from a round shows as `·` there and counts as a change.
fn changed_cells(rounds: usize, seen: &[(usize, String, String, String)]) -> Vec<String> {
    let mut cells: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (round, sc, cell, value) in seen {
        let v = cells.entry((sc.clone(), cell.clone())).or_insert_with(|| vec!["·".to_string(); rounds]);
        v[*round] = value.clone();
    }
    cells.into_iter().filter(|(_, v)| v.windows(2).any(|w| w[0] != w[1])).map(|((sc, op), v)| format!("{sc} / {op}: {}", v.join(" | "))).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::table::{ImpactTable, RecoveryLine};
    use crate::model::{Classification, Impact};
    use crate::runner::{OperationResult, Verdict};

    /// A made-up result (no cluster): one operation with its glyph and recovery time.
    pub(crate) fn result(round: u32, impact: Impact, recovery_ms: Option<u64>) -> ScenarioResult {
        let table = ImpactTable {
            title: "t".into(),
            derived: None,
            rows: vec![],
            recovery: RecoveryLine { bound: String::new(), within: None, note: String::new(), excluded: vec![], claims: vec![], failover: vec![] },
        };
        ScenarioResult {
            suite: "s".into(),
            scenario: "a".into(),
            title: "t".into(),
            verdict: Verdict::Match,
            operations: vec![OperationResult {
                id: "op".into(),
                name: "Op".into(),
                documented: Impact::Lost,
                expected: Impact::Lost,
                classification: Some(Classification { impact, samples: 10, ok: 0, partial: 0, failed: 10 }),
                not_observed: None,
                window: (Duration::ZERO, Duration::from_secs(10)),
                recovery: recovery_ms.map(Duration::from_millis),
                resolution: recovery_ms.map(|_| Duration::from_millis(300)),
                never_affected: false,
                last_failure: None,
                first_failure: None,
                failover: None,
                mttr_excluded: None,
                derived: None,
                causes: vec![],
                unexplained: vec![],
                failures: vec![],
                recovery_failures: vec![],
                samples: vec![],
            }],
            mttr: None,
            mttr_bound: None,
            observed: Some(table.clone()),
            expected: table,
            deviations: vec![],
            claims: vec![],
            findings: vec![],
            reverted: vec![],
            took: Duration::ZERO,
            round,
            timeline: None,
            phases: vec![],
            backend: None,
            started_at: None,
        }
    }

    #[test]
    fn rounds_are_compared_and_recovery_spread_reported() {
        let rounds = vec![
            vec![result(1, Impact::Lost, Some(4000))],
            vec![result(2, Impact::Limited, Some(1000))],
            vec![result(3, Impact::Lost, Some(2500))],
            // Interrupted before its scenario finished: left out.
            vec![],
        ];
        let s = Stability::of(&rounds);
        assert_eq!(s.rounds, 3);
        insta::assert_snapshot!(s.render_markdown(), @r"
        ## Stability over 3 rounds

        1 cell(s) changed across 3 complete rounds.

        - s::a / Op: ❌ \| ⚠️ \| ❌

        | Scenario | Operation | Recovery median | min | max | Rounds |
        | --- | --- | --- | --- | --- | --- |
        | s::a | Op | 2.5 s | 1.0 s | 4.0 s | 3 |
        ");
    }

    fn cell(round: usize, cell: &str, value: &str) -> (usize, String, String, String) {
        (round, "s::a".into(), cell.into(), value.into())
    }

    #[test]
    fn a_verdict_or_glyph_that_changes_in_any_round_is_reported() {
        let same = [cell(0, "op", "✅"), cell(1, "op", "✅"), cell(0, "(verdict)", "matches the document"), cell(1, "(verdict)", "matches the document")];
        assert!(changed_cells(2, &same).is_empty());
        let flip = [cell(0, "op", "✅"), cell(1, "op", "✅"), cell(0, "(verdict)", "matches the document"), cell(1, "(verdict)", "harness error")];
        assert_eq!(changed_cells(2, &flip), vec!["s::a / (verdict): matches the document | harness error".to_string()]);
        let missing = [cell(0, "op", "✅")];
        assert_eq!(changed_cells(2, &missing), vec!["s::a / op: ✅ | ·".to_string()]);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = |v: &[u64]| v.iter().map(|&x| Duration::from_millis(x)).collect::<Vec<_>>();
        assert_eq!(median(&s(&[5])), Duration::from_millis(5));
        assert_eq!(median(&s(&[1, 2, 9])), Duration::from_millis(2));
        assert_eq!(median(&s(&[1, 2, 4, 9])), Duration::from_millis(3));
    }
}
