//! Impact levels, probe samples, and the one rule that turns samples into a verdict.
//!
//! The rule (also written in the README, section "How a verdict is reached"):
//!
//! 1. Every probe attempt yields a [`Sample`]: [`Outcome::Ok`] (the operation worked),
//!    [`Outcome::Partial`] (it worked in part, e.g. one of two endpoints answered), or
//!    [`Outcome::Failed`].
//! 2. The *fault window* of an operation runs from the moment the fault is in place plus
//!    the operation's settle time, to the moment revert starts. Only attempts that started
//!    and ended inside it are judged (a long attempt that straddles the revert says
//!    nothing about the fault); the others feed the baseline and the recovery measurement.
//! 3. With `n` samples in the window, `ok` of them Ok and `partial` of them Partial:
//!    - fewer than the operation's minimum sample count: the harness failed (not a verdict);
//!    - `ok / n >= 0.95` → ✅ unaffected;
//!    - `(ok + partial) / n <= 0.05` → ❌ lost;
//!    - otherwise → ⚠️ limited.
//! 4. Recovery of an operation is judged only on attempts that *started* after the revert
//!    ended (one that began during the fault says nothing about the state after it). Its
//!    time runs from the end of the revert to the *end* of the first attempt of the final
//!    run of Ok attempts, which must last at least the suite's `stable` time and
//!    [`RECOVERY_STREAK`] attempts before sampling stops (a flap after the first few Ok
//!    attempts moves recovery past it). An operation that never failed from the fault on
//!    recovers in zero time. Each figure carries its resolution: the span between the
//!    start of the attempt before the recovering one (or the revert) and the end of the
//!    recovering one.
//! 5. Recovery is *within* a documented MTTR when every operation the bound is about
//!    recovered no later than MTTR + 2 s (`table::RECOVERY_GRACE`, the measurement's own
//!    allowance). A scenario may exclude operations from the bound, each with a reason that
//!    every table and report shows; their recovery is measured and reported, not judged.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The documents' three impact levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Impact {
    /// ✅ the operation is not affected.
    #[serde(alias = "✅")]
    Unaffected,
    /// ⚠️ a limited loss of service.
    #[serde(alias = "⚠️", alias = "⚠")]
    Limited,
    /// ❌ a total loss of service.
    #[serde(alias = "❌")]
    Lost,
}

impl Impact {
    pub fn glyph(self) -> &'static str {
        match self {
            Impact::Unaffected => "✅",
            Impact::Limited => "⚠️",
            Impact::Lost => "❌",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Impact::Unaffected => "unaffected",
            Impact::Limited => "limited",
            Impact::Lost => "lost",
        }
    }
}

impl fmt::Display for Impact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.glyph())
    }
}

/// What one probe attempt observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Partial,
    Failed,
}

/// One probe attempt: when it started (since the start of the scenario), how it ended,
/// and a short reason when it did not succeed (an HTTP status, an error kind).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: Duration,
    /// How long the attempt took.
    #[serde(default)]
    pub took: Duration,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Sample {
    /// When the attempt ended: when its outcome was known.
    pub fn end(&self) -> Duration {
        self.at + self.took
    }
    pub fn ok(at: Duration) -> Self {
        Sample { at, took: Duration::ZERO, outcome: Outcome::Ok, detail: None }
    }
    pub fn failed(at: Duration, detail: impl Into<String>) -> Self {
        Sample { at, took: Duration::ZERO, outcome: Outcome::Failed, detail: Some(detail.into()) }
    }
    pub fn partial(at: Duration, detail: impl Into<String>) -> Self {
        Sample { at, took: Duration::ZERO, outcome: Outcome::Partial, detail: Some(detail.into()) }
    }
}

/// Success ratio at or above which an operation is ✅.
pub const UNAFFECTED_MIN_RATIO: f64 = 0.95;
/// Ratio of (ok + partial) at or below which an operation is ❌.
pub const LOST_MAX_RATIO: f64 = 0.05;
/// Consecutive Ok samples that mark an operation as recovered.
pub const RECOVERY_STREAK: usize = 3;

/// The counts behind a verdict, kept for the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub impact: Impact,
    pub samples: usize,
    pub ok: usize,
    pub partial: usize,
    pub failed: usize,
}

impl Classification {
    /// Share of samples in the window that succeeded fully.
    pub fn success_ratio(&self) -> f64 {
        if self.samples == 0 { 0.0 } else { self.ok as f64 / self.samples as f64 }
    }
}

/// Too few samples in a window to judge: a harness failure, never a verdict.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("only {got} samples in the fault window, at least {needed} are needed to judge")]
pub struct TooFewSamples {
    pub got: usize,
    pub needed: usize,
}

/// The samples a window judges: those that started at or after `window.0` and ended
/// before `window.1`.
pub fn in_window(samples: &[Sample], window: (Duration, Duration)) -> impl Iterator<Item = &Sample> {
    samples.iter().filter(move |s| s.at >= window.0 && s.end() < window.1)
}

/// Apply the rule to the samples of one operation in `window` ([`in_window`]).
pub fn classify(samples: &[Sample], window: (Duration, Duration), min_samples: usize) -> Result<Classification, TooFewSamples> {
    judge(in_window(samples, window), min_samples)
}

/// Apply the rule to samples already selected (the baseline selects by end time).
pub fn judge<'a>(samples: impl IntoIterator<Item = &'a Sample>, min_samples: usize) -> Result<Classification, TooFewSamples> {
    let (mut ok, mut partial, mut failed) = (0, 0, 0);
    for s in samples {
        match s.outcome {
            Outcome::Ok => ok += 1,
            Outcome::Partial => partial += 1,
            Outcome::Failed => failed += 1,
        }
    }
    let n = ok + partial + failed;
    if n < min_samples.max(1) {
        return Err(TooFewSamples { got: n, needed: min_samples.max(1) });
    }
    let ok_ratio = ok as f64 / n as f64;
    let any_ratio = (ok + partial) as f64 / n as f64;
    let impact = if ok_ratio >= UNAFFECTED_MIN_RATIO {
        Impact::Unaffected
    } else if any_ratio <= LOST_MAX_RATIO {
        Impact::Lost
    } else {
        Impact::Limited
    };
    Ok(Classification { impact, samples: n, ok, partial, failed })
}

/// How an operation came back after a revert.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// From the end of the revert to the end of the first attempt of the run of Ok
    /// attempts that lasted to the end of sampling; zero when the operation never failed
    /// from the fault on.
    pub time: Duration,
    /// How precise `time` is: the operation came back somewhere between the start of the
    /// attempt before the recovering one (or the revert, if later) and the end of the
    /// recovering one. Zero when the operation never failed.
    pub resolution: Duration,
    /// From the end of the revert to the end of the last failed attempt that started after
    /// it.
    pub last_failure: Option<Duration>,
    /// The operation never failed from the fault on.
    pub never_affected: bool,
}

/// How long, and over how many attempts, an operation must keep working after it came
/// back for the recovery to count: a flap after the first few Ok attempts is seen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stable {
    pub span: Duration,
    pub attempts: usize,
}

impl Stable {
    pub fn for_span(span: Duration) -> Stable {
        Stable { span, attempts: RECOVERY_STREAK }
    }
}

/// Rule 4: how the operation came back after the revert that ended at `reverted`, the
/// fault having been in effect from `injected`. Only attempts that started after the
/// revert say anything about recovery (an attempt that began during the fault and ended
/// after it proves neither). `None` while the final run of Ok attempts is shorter than
/// `stable`.
pub fn recovery(samples: &[Sample], injected: Duration, reverted: Duration, stable: Stable) -> Option<Recovery> {
    let first_after = samples.iter().position(|s| s.at >= reverted)?;
    let after = &samples[first_after..];
    let last_bad = after.iter().rposition(|s| s.outcome != Outcome::Ok);
    let run_start = last_bad.map_or(0, |i| i + 1);
    let run = &after[run_start..];
    let (first, last) = (run.first()?, run.last()?);
    if run.len() < stable.attempts.max(1) || last.end().saturating_sub(first.end()) < stable.span {
        return None;
    }
    let never_affected = !samples.iter().any(|s| s.outcome != Outcome::Ok && s.end() >= injected);
    if never_affected {
        return Some(Recovery { time: Duration::ZERO, resolution: Duration::ZERO, last_failure: None, never_affected });
    }
    let index = first_after + run_start;
    let since = match index.checked_sub(1).map(|i| samples[i].at) {
        Some(prev) if prev > reverted => prev,
        _ => reverted,
    };
    Some(Recovery {
        time: first.end().saturating_sub(reverted),
        resolution: first.end().saturating_sub(since),
        last_failure: last_bad.map(|i| after[i].end().saturating_sub(reverted)),
        never_affected,
    })
}

/// Failover during a fault: when an operation that failed after the fault took effect
/// works again, for good, before the revert starts (a standby took over). From
/// `in_effect` to the end of the first attempt of the final run of Ok attempts that
/// started and ended inside (`in_effect`, `revert_start`); that run must hold `stable`.
/// `None` when the operation never failed there, or did not work again for good.
pub fn failover(samples: &[Sample], in_effect: Duration, revert_start: Duration, stable: Stable) -> Option<Duration> {
    let inside: Vec<&Sample> = samples.iter().filter(|s| s.at >= in_effect && s.end() < revert_start).collect();
    let last_bad = inside.iter().rposition(|s| s.outcome != Outcome::Ok)?;
    let run = &inside[last_bad + 1..];
    let (first, last) = (run.first()?, run.last()?);
    if run.len() < stable.attempts.max(1) || last.end().saturating_sub(first.end()) < stable.span {
        return None;
    }
    Some(first.end().saturating_sub(in_effect))
}

/// From `injected` to the end of the first attempt that did not fully work and ended
/// after it: when the fault first showed, as this operation saw it.
pub fn first_failure(samples: &[Sample], injected: Duration) -> Option<Duration> {
    samples.iter().filter(|s| s.outcome != Outcome::Ok && s.end() >= injected).map(|s| s.end() - injected).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// `pattern` is one char per sample, 100 ms apart from t=0: o ok, p partial, f failed.
    fn samples(pattern: &str) -> Vec<Sample> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let t = at(i as u64 * 100);
                match c {
                    'o' => Sample::ok(t),
                    'p' => Sample::partial(t, "p"),
                    'f' => Sample::failed(t, "f"),
                    _ => unreachable!("bad pattern char {c}"),
                }
            })
            .collect()
    }

    fn impact(pattern: &str) -> Impact {
        let s = samples(pattern);
        classify(&s, (Duration::ZERO, at(100_000)), 1).unwrap().impact
    }

    #[test]
    fn all_ok_is_unaffected() {
        assert_eq!(impact(&"o".repeat(40)), Impact::Unaffected);
    }

    #[test]
    fn one_failure_in_twenty_is_still_unaffected_at_the_threshold() {
        // 19/20 = 0.95 exactly: the threshold is inclusive.
        assert_eq!(impact(&format!("{}f", "o".repeat(19))), Impact::Unaffected);
        // 18/20 = 0.90: limited.
        assert_eq!(impact(&format!("{}ff", "o".repeat(18))), Impact::Limited);
    }

    #[test]
    fn all_failed_is_lost_and_one_success_in_twenty_still_lost() {
        assert_eq!(impact(&"f".repeat(20)), Impact::Lost);
        assert_eq!(impact(&format!("o{}", "f".repeat(19))), Impact::Lost);
        assert_eq!(impact(&format!("oo{}", "f".repeat(18))), Impact::Limited);
    }

    #[test]
    fn partial_samples_are_limited_not_lost_nor_unaffected() {
        assert_eq!(impact(&"p".repeat(20)), Impact::Limited);
        assert_eq!(impact(&format!("p{}", "f".repeat(19))), Impact::Lost);
    }

    #[test]
    fn half_and_half_is_limited() {
        assert_eq!(impact("ofofofofof"), Impact::Limited);
    }

    #[test]
    fn samples_outside_the_window_are_not_judged() {
        let s = samples("ffffoooooooooo"); // failures at 0..=300 ms
        let c = classify(&s, (at(400), at(10_000)), 1).unwrap();
        assert_eq!(c.impact, Impact::Unaffected);
        assert_eq!(c.samples, 10);
        // The window end is exclusive.
        let c = classify(&s, (at(0), at(400)), 1).unwrap();
        assert_eq!((c.impact, c.samples), (Impact::Lost, 4));
    }

    #[test]
    fn an_attempt_straddling_the_window_end_is_not_judged() {
        let mut s = samples("ff");
        s[1].took = at(500); // starts at 100 ms, ends at 600 ms
        let c = classify(&s, (at(0), at(300)), 1).unwrap();
        assert_eq!((c.samples, c.failed), (1, 1));
    }

    #[test]
    fn too_few_samples_is_an_error_not_a_verdict() {
        let s = samples("ooo");
        assert_eq!(classify(&s, (Duration::ZERO, at(1_000)), 5), Err(TooFewSamples { got: 3, needed: 5 }));
        assert_eq!(classify(&[], (Duration::ZERO, at(1_000)), 0), Err(TooFewSamples { got: 0, needed: 1 }));
    }

    /// Samples of `pattern` each taking `took_ms`.
    fn timed(pattern: &str, took_ms: u64) -> Vec<Sample> {
        samples(pattern)
            .into_iter()
            .map(|mut s| {
                s.took = at(took_ms);
                s
            })
            .collect()
    }

    const STREAK_ONLY: Stable = Stable { span: Duration::ZERO, attempts: RECOVERY_STREAK };

    /// Failover: samples 100 ms apart (each ends when it starts); fault in effect at
    /// 200 ms, revert at 1 900 ms.
    #[test]
    fn failover_is_when_the_operation_works_for_good_before_the_revert() {
        let stable = Stable { span: at(300), attempts: 3 };
        let f = |p: &str| failover(&samples(p), at(200), at(1_900), stable);
        // Failed from 300 to 700 ms, then Ok to the revert: back at 800 ms, 600 ms in.
        assert_eq!(f("ooofffffoooooooooooo"), Some(at(600)));
        // Never failed in the fault: nothing to fail over.
        assert_eq!(f("oooooooooooooooooooo"), None);
        // Ok again, then failed again: the final run counts.
        assert_eq!(f("oofffoooffoooooooooo"), Some(at(800)));
        // Back too late to hold `stable` before the revert.
        assert_eq!(f("ooffffffffffffffoofff"), None);
        // Failures before the fault took effect and after the revert are not in it.
        assert_eq!(f("ffoooooooooooooooooff"), None);
    }

    #[test]
    fn recovery_is_zero_when_never_broken() {
        let r = recovery(&samples("oooooooooo"), at(0), at(500), STREAK_ONLY).unwrap();
        assert_eq!((r.time, r.resolution, r.never_affected), (Duration::ZERO, Duration::ZERO, true));
    }

    #[test]
    fn recovery_counts_from_revert_to_the_end_of_the_first_attempt_of_the_final_run() {
        // revert at 300 ms; failures until 600 ms; ok from 700 ms on, each taking 50 ms.
        let r = recovery(&timed("fffffffoooo", 50), at(0), at(300), STREAK_ONLY).unwrap();
        assert_eq!(r.time, at(450));
        // Between the start of the failed attempt before it (600 ms) and its end (750 ms).
        assert_eq!(r.resolution, at(150));
        assert_eq!(r.last_failure, Some(at(350)));
    }

    /// Regression: an attempt that began during the fault and succeeded after the revert
    /// made recovery 0 s, as if the operation had never stopped working.
    #[test]
    fn an_attempt_begun_during_the_fault_does_not_make_recovery_zero() {
        // Fault from 0; revert ends at 450 ms. Attempts take 100 ms: the one started at
        // 400 ms succeeds at 500 ms, after the revert, and proves nothing about it. The
        // first attempt started after the revert (at 500 ms) ends at 600 ms.
        let r = recovery(&timed("ffffooooooo", 100), at(0), at(450), STREAK_ONLY).unwrap();
        assert!(!r.never_affected);
        assert_eq!(r.time, at(150));
        assert_eq!(r.resolution, at(150));
    }

    /// Regression: three Ok attempts made an operation recovered even when it failed again
    /// right after them; the flap went unseen.
    #[test]
    fn a_flap_after_the_first_ok_attempts_moves_recovery_past_it() {
        // revert at 0; ok ok ok, a failure at 300 ms, then ok for good from 400 ms.
        let s = samples("ooofoooooooooooooooooo");
        let stable = Stable { span: at(1_000), attempts: RECOVERY_STREAK };
        let r = recovery(&s, at(0), at(0), stable).unwrap();
        assert_eq!(r.time, at(400));
        assert_eq!(r.last_failure, Some(at(300)));
    }

    #[test]
    fn recovery_waits_for_the_stable_window() {
        let stable = Stable { span: at(1_000), attempts: RECOVERY_STREAK };
        // Ok from 300 ms to 1.2 s: 0.9 s of stability, not enough.
        assert_eq!(recovery(&samples("fffoooooooooo"), at(0), at(0), stable), None);
        // One more Ok attempt at 1.3 s: 1 s from the first Ok's end to the last's.
        assert!(recovery(&samples("fffooooooooooo"), at(0), at(0), stable).is_some());
    }

    /// Regression: with a slow operation, recovery was judged on attempt start times, so
    /// an attempt that started before the bound and only succeeded long after it counted
    /// as recovered in time.
    #[test]
    fn recovery_of_a_slow_operation_is_timed_at_the_end_of_its_attempt() {
        // Revert at 0; an attempt that starts at 100 ms and takes 3 s succeeds at 3.1 s.
        let mut s = samples("fo");
        s[1].took = at(3_000);
        s.extend([Sample { at: at(3_200), took: at(3_000), outcome: Outcome::Ok, detail: None }, Sample::ok(at(6_300))]);
        let r = recovery(&s, at(0), at(0), STREAK_ONLY).unwrap();
        assert_eq!(r.time, at(3_100));
    }

    #[test]
    fn no_recovery_when_the_final_run_is_too_short() {
        assert_eq!(recovery(&samples("ffffoo"), at(0), at(0), STREAK_ONLY), None);
        assert_eq!(recovery(&[], at(0), at(0), STREAK_ONLY), None);
    }

    #[test]
    fn first_failure_is_timed_from_the_fault_at_the_attempts_end() {
        let s = timed("oooooffff", 50);
        assert_eq!(first_failure(&s, at(200)), Some(at(350)));
        assert_eq!(first_failure(&samples("oooo"), at(0)), None);
    }

    #[test]
    fn glyphs_and_words_parse() {
        for (text, want) in [("✅", Impact::Unaffected), ("⚠️", Impact::Limited), ("❌", Impact::Lost), ("limited", Impact::Limited)] {
            let got: Impact = serde_saphyr::from_str(text).unwrap();
            assert_eq!(got, want, "{text}");
        }
    }
}
