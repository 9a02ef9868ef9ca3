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
//! 4. Recovery time of an operation: from the moment revert finished to the first sample
//!    that starts a run of [`RECOVERY_STREAK`] consecutive Ok samples; zero when the
//!    operation was already Ok when revert finished.
//! 5. Recovery is *within* a documented MTTR when no attempt that started more than
//!    MTTR + 2 s (`table::RECOVERY_GRACE`) after the revert failed, among the operations
//!    the document's MTTR is about (all of them, unless the suite names them). An
//!    operation is judged over its bound only on a failure actually seen after it:
//!    operations whose attempts take seconds (starting an API server) are not penalised
//!    for their cadence.

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

/// Apply the rule to the samples of one operation that started at or after `window.0` and
/// ended before `window.1`.
pub fn classify(samples: &[Sample], window: (Duration, Duration), min_samples: usize) -> Result<Classification, TooFewSamples> {
    let (mut ok, mut partial, mut failed) = (0, 0, 0);
    for s in samples.iter().filter(|s| s.at >= window.0 && s.at + s.took < window.1) {
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
    /// From the revert to the first sample of the recovering streak.
    pub time: Duration,
    /// From the revert to the start of the last failed attempt before that streak, when
    /// it started after the revert.
    pub last_failure: Option<Duration>,
}

/// [`recovery_time`] with the last failure seen before recovering.
pub fn recovery(samples: &[Sample], reverted: Duration) -> Option<Recovery> {
    let time = recovery_time(samples, reverted)?;
    let streak_start = reverted + time;
    let last_failure = samples.iter().filter(|s| s.at >= reverted && s.at < streak_start && s.outcome != Outcome::Ok).map(|s| s.at - reverted).next_back();
    Some(Recovery { time, last_failure })
}

/// Time from `reverted` to the first sample that starts a streak of [`RECOVERY_STREAK`]
/// Ok samples. `None` when no such streak starts before the samples end.
///
/// An operation that is Ok at `reverted` and stays Ok recovers in zero time; the streak
/// may start before `reverted` (the operation never stopped working), which also counts
/// as zero.
pub fn recovery_time(samples: &[Sample], reverted: Duration) -> Option<Duration> {
    // Look at samples from the last one before `reverted` onwards: an operation that was
    // working right up to the revert and keeps working has recovered instantly.
    let start = samples.iter().rposition(|s| s.at < reverted).unwrap_or(0);
    let tail = &samples[start..];
    let mut streak_start: Option<Duration> = None;
    let mut streak = 0;
    for s in tail {
        if s.outcome == Outcome::Ok {
            if streak == 0 {
                streak_start = Some(s.at);
            }
            streak += 1;
            if streak >= RECOVERY_STREAK {
                return streak_start.map(|t| t.saturating_sub(reverted));
            }
        } else {
            streak = 0;
            streak_start = None;
        }
    }
    None
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

    #[test]
    fn recovery_is_zero_when_never_broken() {
        let s = samples("oooooooooo");
        assert_eq!(recovery_time(&s, at(500)), Some(Duration::ZERO));
    }

    #[test]
    fn recovery_counts_from_revert_to_start_of_streak() {
        // revert at 300 ms; failures until 600 ms; ok from 700 ms on.
        let s = samples("fffffffoooo");
        assert_eq!(recovery_time(&s, at(300)), Some(at(400)));
    }

    #[test]
    fn a_short_streak_interrupted_by_failure_does_not_count() {
        let s = samples("fffoofooof");
        // ok at 300,400 then f at 500, then ok at 600,700,800: streak starts at 600.
        assert_eq!(recovery_time(&s, at(0)), Some(at(600)));
    }

    #[test]
    fn recovery_reports_the_last_failure_seen_after_the_revert() {
        // revert at 300 ms; failures at 300..=600 ms; ok from 700 ms on.
        let r = recovery(&samples("fffffffoooo"), at(300)).unwrap();
        assert_eq!(r.time, at(400));
        assert_eq!(r.last_failure, Some(at(300)));
        // Never failing after the revert: no failure to judge.
        let r = recovery(&samples("ffoooooo"), at(200)).unwrap();
        assert_eq!((r.time, r.last_failure), (Duration::ZERO, None));
    }

    #[test]
    fn no_recovery_when_streak_never_completes() {
        assert_eq!(recovery_time(&samples("ffffoo"), at(0)), None);
        assert_eq!(recovery_time(&[], at(0)), None);
    }

    #[test]
    fn glyphs_and_words_parse() {
        for (text, want) in [("✅", Impact::Unaffected), ("⚠️", Impact::Limited), ("❌", Impact::Lost), ("limited", Impact::Limited)] {
            let got: Impact = serde_saphyr::from_str(text).unwrap();
            assert_eq!(got, want, "{text}");
        }
    }
}
