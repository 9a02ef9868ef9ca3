//! From one scenario's samples to its results: the rule of `model::impact` applied to
//! every operation, the documented MTTR judged, and the findings that make an otherwise
//! equal table differ from the document (unexpected failure causes, a late onset). Pure:
//! no cluster, no clock.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use super::claims::ClaimResult;
use super::events::{OperationResult, ScenarioResult, Timeline, Verdict};
use crate::model::impact::{self, Stable};
use crate::model::table::{self, ClaimLine, ImpactTable, RECOVERY_GRACE, RecoveryLine, Row};
use crate::model::{Impact, Outcome, Sample};
use crate::suite::{OperationSpec, ScenarioSpec, Suite};

/// The judged window of `op` in `sc`: from the fault being in effect plus the operation's
/// settle time (or a recorded onset, when longer) to the start of the revert. The settle
/// time is the one its probe found when the fault came into effect, where it could tell
/// (`Timeline::settle`), else the suite's, which is the worst case.
pub fn window(op: &OperationSpec, sc: &ScenarioSpec, t: &Timeline) -> (Duration, Duration) {
    let onset = sc.deviation(&op.id.value).and_then(|d| d.onset).map(|o| o.0).unwrap_or_default();
    let settle = t.settle.get(&op.id.value).copied().unwrap_or(op.settle.0);
    (t.in_effect + settle.max(onset), t.revert_start)
}

/// The result of one operation, or why its samples cannot be judged (a harness failure).
pub fn operation(op: &OperationSpec, sc: &ScenarioSpec, samples: &[Sample], t: &Timeline, stable: Stable) -> Result<OperationResult, String> {
    let id = op.id.value.as_str();
    let window = window(op, sc, t);
    let classification = impact::classify(samples, window, op.min_samples as usize).map_err(|e| format!("operation `{id}`: {e}"))?;
    let rec = impact::recovery(samples, t.injected, t.reverted, stable);
    let documented = sc.documented.impact.iter().find(|(k, _)| k.value == id).map(|(_, v)| *v).expect("suite::load checks every operation");
    let expected = sc.expected_impact(id).expect("suite::load checks every operation");
    let causes = sc.causes(id).to_vec();
    let unexplained = if expected == Impact::Unaffected { vec![] } else { unexplained(samples, window, &causes) };
    Ok(OperationResult {
        id: id.to_string(),
        name: op.name.clone(),
        documented,
        expected,
        classification: Some(classification),
        not_observed: None,
        window,
        recovery: rec.map(|r| r.time),
        resolution: rec.map(|r| r.resolution),
        never_affected: rec.is_some_and(|r| r.never_affected),
        last_failure: rec.and_then(|r| r.last_failure),
        first_failure: impact::first_failure(samples, t.injected).map(|f| (t.injected + f).saturating_sub(t.in_effect)),
        failover: impact::failover(samples, t.in_effect, t.revert_start, stable),
        mttr_excluded: sc.documented.recovery.mttr_excludes.iter().find(|(k, _)| k.value == id).map(|(_, why)| why.clone()),
        derived: sc.derived_reason(id).map(String::from).or_else(|| sc.derived.clone()),
        causes,
        unexplained,
        failures: reasons(samples, window),
        recovery_failures: reasons(samples, (t.reverted, t.reverted + rec.map(|r| r.time).unwrap_or(t.end.saturating_sub(t.reverted)))),
        samples: samples.to_vec(),
    })
}

/// An operation the backend cannot observe: no samples, no verdict on it, and why.
pub fn not_observed(op: &OperationSpec, sc: &ScenarioSpec, why: &str) -> OperationResult {
    let id = op.id.value.as_str();
    OperationResult {
        id: id.to_string(),
        name: op.name.clone(),
        documented: sc.documented.impact.iter().find(|(k, _)| k.value == id).map(|(_, v)| *v).expect("suite::load checks every operation"),
        expected: sc.expected_impact(id).expect("suite::load checks every operation"),
        classification: None,
        not_observed: Some(why.to_string()),
        window: (Duration::ZERO, Duration::ZERO),
        recovery: None,
        resolution: None,
        never_affected: false,
        last_failure: None,
        first_failure: None,
        failover: None,
        mttr_excluded: None,
        derived: sc.derived_reason(id).map(String::from).or_else(|| sc.derived.clone()),
        causes: sc.causes(id).to_vec(),
        unexplained: vec![],
        failures: vec![],
        recovery_failures: vec![],
        samples: vec![],
    }
}

/// Every operation of the suite judged from its samples (by operation id), as
/// [`operation`] does; the ones in `not_observed` (id → why) as [`not_observed`] does.
pub fn operations(
    suite: &Suite,
    sc: &ScenarioSpec,
    samples: &BTreeMap<String, Vec<Sample>>,
    not_observed: &BTreeMap<String, String>,
    t: &Timeline,
) -> Result<Vec<OperationResult>, String> {
    let stable = Stable::for_span(suite.spec.timing.stable.0);
    suite
        .spec
        .operations
        .iter()
        .map(|op| {
            if let Some(why) = not_observed.get(&op.id.value) {
                return Ok(self::not_observed(op, sc, why));
            }
            let s = samples.get(&op.id.value).ok_or_else(|| format!("operation `{}`: no samples recorded", op.id.value))?;
            operation(op, sc, s, t, stable)
        })
        .collect()
}

/// Every operation came back (and stayed ✅) after the revert, or why not: a scenario
/// whose system did not recover has no table (a harness error, `RunError::NotRecovered`).
pub fn recovered(suite: &Suite, operations: &[OperationResult]) -> Result<(), String> {
    let not_recovered: Vec<String> = operations
        .iter()
        .filter(|o| o.recovery.is_none() && o.not_observed.is_none())
        .map(|o| format!("{} ({})", o.id, o.samples.last().and_then(|x| x.detail.clone()).unwrap_or_else(|| "did not stay ✅ long enough".into())))
        .collect();
    if not_recovered.is_empty() {
        return Ok(());
    }
    Err(format!("after {}, still failing or not stable for {}: {}", suite.spec.timing.recovery, suite.spec.timing.stable, not_recovered.join("; ")))
}

/// The scenario's result from its judged operations and its claims' post-checks: the
/// observed table, the findings, the MTTR. The verdict is [`Verdict::Match`] until
/// [`ScenarioResult::compare_with_snapshot`] compares the table with the snapshot. Pure: a live
/// run and `firedrill check` of its recording reach the same result.
pub fn scenario(suite: &Suite, sc: &ScenarioSpec, operations: Vec<OperationResult>, mut claims: Vec<ClaimResult>, timeline: Timeline) -> ScenarioResult {
    for c in &mut claims {
        c.derived = sc.documented.recovery.claim_derived(c.claim).map(String::from);
    }
    let observed = ImpactTable {
        title: sc.title.clone(),
        derived: sc.derived.clone(),
        rows: operations
            .iter()
            .map(|o| match &o.not_observed {
                Some(why) => Row { operation: o.name.clone(), impact: None, note: why.clone() },
                None => Row {
                    operation: o.name.clone(),
                    impact: Some(o.classification.as_ref().expect("set by verdict::operation").impact),
                    note: table::note_for(sc, &o.id),
                },
            })
            .collect(),
        recovery: RecoveryLine {
            bound: table::bound_words(sc),
            within: within_mttr(sc, &operations),
            note: table::recovery_note(sc),
            excluded: table::excluded(suite, sc),
            claims: claims.iter().map(|c| ClaimLine { claim: c.claim, holds: c.holds, derived: c.derived.clone() }).collect(),
            failover: table::failover_bounds(suite, sc)
                .into_iter()
                .map(|(name, bound)| {
                    let op = operations.iter().find(|o| o.name == name);
                    let held = match op {
                        Some(o) if o.not_observed.is_some() => None,
                        _ => Some(op.and_then(|o| o.failover).is_some_and(|t| t <= bound.0 + RECOVERY_GRACE)),
                    };
                    (name, bound.to_string(), held)
                })
                .collect(),
        },
    };
    let mut result = ScenarioResult::without_table(suite, sc, Verdict::Match);
    result.findings = findings(sc, &operations);
    result.mttr = mttr(&operations);
    result.operations = operations;
    result.observed = Some(observed);
    result.claims = claims;
    result.timeline = Some(timeline);
    result
}

/// Rule 5: whether every operation the bound is about came back within it. `None` without
/// a bound; `Some(false)` also when such an operation never came back. An operation not
/// observed is not judged (its row says so).
pub fn within_mttr(sc: &ScenarioSpec, ops: &[OperationResult]) -> Option<bool> {
    let bound = sc.documented.recovery.bound()?;
    Some(ops.iter().filter(|o| o.mttr_excluded.is_none() && o.not_observed.is_none()).all(|o| o.recovery.is_some_and(|r| r <= bound + RECOVERY_GRACE)))
}

/// The longest recovery among the operations the bound is about (all, without a bound).
pub fn mttr(ops: &[OperationResult]) -> Option<Duration> {
    ops.iter().filter(|o| o.mttr_excluded.is_none()).filter_map(|o| o.recovery).max()
}

/// Why the observation differs from the document even where the glyphs agree.
pub fn findings(sc: &ScenarioSpec, ops: &[OperationResult]) -> Vec<String> {
    let mut out = Vec::new();
    for o in ops.iter().filter(|o| o.not_observed.is_none()) {
        if !o.unexplained.is_empty() {
            let n: usize = o.unexplained.iter().map(|(_, n)| n).sum();
            let total = o.classification.as_ref().map(|c| c.samples).unwrap_or_default();
            out.push(format!(
                "{} ({}): {n} of {total} attempts in the fault window failed for a cause the suite does not expect: {} (expected: {})",
                o.name,
                o.classification.as_ref().map(|c| c.impact.glyph()).unwrap_or("—"),
                crate::report::reasons(&o.unexplained),
                o.causes.join(" | ")
            ));
        }
        if let Some(onset) = sc.deviation(&o.id).and_then(|d| d.onset) {
            match o.first_failure {
                Some(f) if f <= onset.0 => {}
                Some(f) => {
                    out.push(format!("{}: first failed {:.1} s into the fault; the recorded onset deviation allows up to {onset}", o.name, f.as_secs_f64()))
                }
                None => out.push(format!("{}: never failed during the fault; the recorded onset deviation expects it to within {onset}", o.name)),
            }
        }
    }
    out
}

/// Failures in `window` whose reason — each `; `-separated part of it — matches none of
/// `causes`, most frequent first.
pub fn unexplained(samples: &[Sample], window: (Duration, Duration), causes: &[String]) -> Vec<(String, usize)> {
    let patterns: Vec<Regex> = causes.iter().filter_map(|c| Regex::new(c).ok()).collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in crate::model::impact::in_window(samples, window).filter(|s| s.outcome != Outcome::Ok) {
        let detail = s.detail.clone().unwrap_or_default();
        let explained = !detail.is_empty() && detail.split("; ").all(|part| patterns.iter().any(|p| p.is_match(part)));
        if !explained {
            *counts.entry(if detail.is_empty() { "(no reason given)".into() } else { detail }).or_default() += 1;
        }
    }
    most_frequent(counts)
}

/// The reasons failed attempts gave in `window`, most frequent first.
pub fn reasons(samples: &[Sample], window: (Duration, Duration)) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.at >= window.0 && s.at < window.1 && s.outcome != Outcome::Ok) {
        *counts.entry(s.detail.clone().unwrap_or_default()).or_default() += 1;
    }
    most_frequent(counts)
}

fn most_frequent(counts: BTreeMap<String, usize>) -> Vec<(String, usize)> {
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1));
    v.truncate(5);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::events::Verdict;

    fn failed(ms: u64, why: &str) -> Sample {
        Sample::failed(Duration::from_millis(ms), why)
    }

    /// Regression: a two-cluster probe gave ⚠️ whenever either cluster failed, for any
    /// cause, and the cell matched a document that meant something else.
    #[test]
    fn a_failure_with_a_cause_the_suite_does_not_expect_is_unexplained() {
        let causes = vec!["^east: .*connection refused$".to_string()];
        let s = vec![
            failed(100, "east: GET 198.18.1.5:8080: connection refused"),
            failed(200, "west: listing endpoints: HTTP 503"),
            failed(300, "east: GET 198.18.1.5:8080: connection refused; west: listing endpoints: HTTP 503"),
            Sample::ok(Duration::from_millis(400)),
        ];
        let u = unexplained(&s, (Duration::ZERO, Duration::from_secs(1)), &causes);
        assert_eq!(u.iter().map(|(_, n)| n).sum::<usize>(), 2, "{u:?}");
        assert!(u.iter().any(|(r, _)| r == "west: listing endpoints: HTTP 503"));
    }

    /// A row whose probe said, when the fault came into effect, how soon a loss could show
    /// (dex's key due in 8 s, overdue after 35 more) is judged from then: the suite's
    /// settle is its worst case, which a 30 s window would not even reach.
    #[test]
    fn a_settle_found_when_the_fault_came_into_effect_replaces_the_worst_case() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let suite = crate::suite::load_file(&root.join("suites/identity.yaml"), &root.join("fixtures")).unwrap();
        let sc = suite.spec.scenarios.iter().find(|s| s.id.value == "instances-down").unwrap();
        let op = suite.spec.operations.iter().find(|o| o.id.value == "key-rotation").unwrap();
        let mut t = Timeline {
            injected: Duration::from_secs(9),
            in_effect: Duration::from_secs(10),
            revert_start: Duration::from_secs(60),
            reverted: Duration::from_secs(61),
            end: Duration::from_secs(90),
            settle: Default::default(),
        };
        assert_eq!(window(op, sc, &t).0, Duration::from_secs(10) + op.settle.0, "without a settle found, the suite's");
        t.settle.insert("key-rotation".into(), Duration::from_secs(43));
        assert_eq!(window(op, sc, &t), (Duration::from_secs(53), Duration::from_secs(60)));
        // Overdue from 53 s on: every attempt judged fails, none before counts.
        let samples: Vec<Sample> = (0..85)
            .map(|s| {
                let at = Duration::from_secs(s);
                if (53..61).contains(&s) { Sample::failed(at, "rotation overdue: the signing key was due 36 s ago") } else { Sample::ok(at) }
            })
            .collect();
        let r = operation(op, sc, &samples, &t, Stable::for_span(Duration::from_secs(10))).unwrap();
        let c = r.classification.unwrap();
        assert_eq!((c.impact, c.samples), (Impact::Lost, 7));
    }

    /// Made-up samples (no cluster) for the identity suite's `instances-down`, with the two
    /// API-server operations not observed, as on the existing backend: their rows say so and
    /// are left out of the comparison, every other row is still compared with the snapshot.
    #[test]
    fn operations_not_observed_are_rows_that_say_so_and_the_rest_is_compared() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let suite = crate::suite::load_file(&root.join("suites/identity.yaml"), &root.join("fixtures")).unwrap();
        let sc = suite.spec.scenarios.iter().find(|s| s.id.value == "instances-down").unwrap();
        let t = Timeline {
            injected: Duration::from_secs(10),
            in_effect: Duration::from_secs(10),
            revert_start: Duration::from_secs(80),
            reverted: Duration::from_secs(81),
            end: Duration::from_secs(120),
            settle: Default::default(),
        };
        let failing = |id: &str| match id {
            "login-local" | "login-ldap" => Some("authorization request: connection closed"),
            "refresh-local" | "refresh-ldap" => Some("refresh: connection closed"),
            "key-rotation" => Some("rotation overdue by 40 s"),
            "issuer-endpoints" => Some("GET /keys: connection closed"),
            _ => None,
        };
        let not_observed: BTreeMap<String, String> = ["cached-keys", "apiserver-start"]
            .iter()
            .map(|id| (id.to_string(), table::not_observed_note("existing", "the API server keeps its own authentication configuration")))
            .collect();
        let samples: BTreeMap<String, Vec<Sample>> = suite
            .spec
            .operations
            .iter()
            .filter(|op| !not_observed.contains_key(&op.id.value))
            .map(|op| {
                let s = (0..120u64)
                    .map(Duration::from_secs)
                    .map(|at| match failing(&op.id.value) {
                        Some(why) if at >= t.in_effect && at < Duration::from_secs(83) => Sample::failed(at, why),
                        _ => Sample::ok(at),
                    })
                    .collect();
                (op.id.value.clone(), s)
            })
            .collect();
        let ops = operations(&suite, sc, &samples, &not_observed, &t).unwrap();
        recovered(&suite, &ops).unwrap();
        let mut result = scenario(&suite, sc, ops, vec![], t.clone());
        let rows = &result.observed.as_ref().unwrap().rows;
        let cached = rows.iter().find(|r| r.operation == "API server authenticates users with cached keys").unwrap();
        assert_eq!((cached.impact, cached.glyph()), (None, table::NOT_OBSERVED));
        assert!(cached.note.starts_with("not observed on the existing backend: "), "{}", cached.note);
        result.compare_with_snapshot(&root.join("snapshots"), false);
        assert!(result.verdict.is_match(), "{:?}", result.verdict);

        // An observed row that differs still fails the comparison.
        let mut samples = samples;
        samples.get_mut("break-glass").unwrap().iter_mut().for_each(|s| *s = Sample::failed(s.at, "connection refused"));
        let ops = operations(&suite, sc, &samples, &not_observed, &t).unwrap();
        let mut result = scenario(&suite, sc, ops, vec![], t);
        result.compare_with_snapshot(&root.join("snapshots"), false);
        assert!(matches!(&result.verdict, Verdict::Mismatch { diff } if diff.contains("+| Break-glass")), "{:?}", result.verdict);
    }

    #[test]
    fn failures_outside_the_window_are_not_judged_for_their_cause() {
        let s = vec![failed(100, "anything"), failed(2_000, "east: connection refused")];
        let u = unexplained(&s, (Duration::from_secs(1), Duration::from_secs(3)), &["connection refused".into()]);
        assert!(u.is_empty());
    }
}
