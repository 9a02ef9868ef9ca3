//! A scenario's timeline as inline SVG, for `report.html`: one lane per operation, its
//! probe attempts as marks coloured by outcome (consecutive attempts with the same outcome
//! and reason drawn as one mark), the phases of the fault shaded (injecting, in effect,
//! reverting), each operation's recovery marked, and the MTTR annotated. Every mark
//! carries a `<title>`, so a pointer shows what it stands for; the page stays without
//! script.

use std::fmt::Write as _;
use std::time::Duration;

use super::html::esc;
use super::secs;
use crate::model::{Outcome, Sample};
use crate::runner::events::Timeline;
use crate::runner::{OperationResult, ScenarioResult};

const WIDTH: f64 = 1000.0;
const LABEL: f64 = 290.0;
const RIGHT: f64 = 110.0;
const TOP: f64 = 52.0;
const LANE: f64 = 24.0;
const MARK: f64 = 14.0;
const AXIS: f64 = 30.0;

/// The colour of an outcome, also used by the legend.
fn colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "#2da44e",
        Outcome::Partial => "#d4a72c",
        Outcome::Failed => "#cf222e",
    }
}

fn word(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "worked",
        Outcome::Partial => "partly worked",
        Outcome::Failed => "failed",
    }
}

/// Consecutive attempts with the same outcome and reason: (first, last, count).
fn runs(samples: &[Sample]) -> Vec<(&Sample, &Sample, usize)> {
    let mut out: Vec<(&Sample, &Sample, usize)> = Vec::new();
    for s in samples {
        match out.last_mut() {
            Some((first, last, n)) if first.outcome == s.outcome && first.detail == s.detail => {
                *last = s;
                *n += 1;
            }
            _ => out.push((s, s, 1)),
        }
    }
    out
}

/// A tick step that gives at most about ten ticks over `span`.
fn step(span: f64) -> f64 {
    [0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0].into_iter().find(|s| span / s <= 10.0).unwrap_or(1200.0)
}

struct Scale {
    end: f64,
}

impl Scale {
    fn x(&self, t: Duration) -> f64 {
        LABEL + (t.as_secs_f64() / self.end).min(1.0) * (WIDTH - LABEL - RIGHT)
    }
}

/// The SVG, or `None` when the scenario has no timeline (it never reached its fault).
pub fn render(r: &ScenarioResult) -> Option<String> {
    let t = r.timeline.clone()?;
    let last_attempt = r.operations.iter().flat_map(|o| o.samples.iter().map(Sample::end)).max().unwrap_or_default();
    let scale = Scale { end: t.end.max(last_attempt).as_secs_f64().max(1.0) };
    let lanes = r.operations.len() as f64;
    let bottom = TOP + lanes * LANE;
    let height = bottom + AXIS;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"system-ui,sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"{}\">",
        esc(&format!("Timeline of {}", r.name()))
    );
    let baseline = r.phases.iter().find(|(p, _)| p == "baseline").map(|(_, d)| t.injected.saturating_sub(*d));
    settling(&mut s, baseline, &scale, bottom);
    phases(&mut s, &t, &scale, bottom);
    for (i, o) in r.operations.iter().enumerate() {
        lane(&mut s, o, &t, &scale, TOP + i as f64 * LANE);
    }
    mttr(&mut s, r, &t, &scale);
    axis(&mut s, &scale, bottom);
    s.push_str("</svg>");
    Some(s)
}

/// Before the baseline, sampling already runs while the harness waits for every operation
/// to work (the steady state): failures there are the system settling, and never judged.
fn settling(s: &mut String, baseline: Option<Duration>, scale: &Scale, bottom: f64) {
    let Some(at) = baseline.filter(|b| !b.is_zero()) else { return };
    let (x0, x1) = (scale.x(Duration::ZERO), scale.x(at));
    let _ = write!(
        s,
        "<rect class=\"phase settling\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f0f1f3\"><title>steady state: waiting until every operation works, 0.0 s to {} (not judged)</title></rect>",
        TOP - 4.0,
        x1 - x0,
        bottom - TOP + 4.0,
        secs(at)
    );
    // A row above the fault's labels: the steady state often ends close to the injection.
    let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#57606a\">steady state (not judged)</text>", x0 + 3.0, TOP - 24.0);
}

/// The shaded phases of the fault and their boundaries, labelled above the lanes.
fn phases(s: &mut String, t: &Timeline, scale: &Scale, bottom: f64) {
    let bands = [
        (t.injected, t.in_effect, "injecting", "#fff1c2", "injecting (not yet proven in effect)"),
        (t.in_effect, t.revert_start, "fault", "#ffd8d3", "fault in effect"),
        (t.revert_start, t.reverted, "reverting", "#dbe7fb", "reverting"),
    ];
    for (from, to, class, fill, what) in bands {
        let (x0, x1) = (scale.x(from), scale.x(to));
        let _ = write!(
            s,
            "<rect class=\"phase {class}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"><title>{what}: {} to {}</title></rect>",
            TOP - 4.0,
            (x1 - x0).max(0.5),
            bottom - TOP + 4.0,
            secs(from),
            secs(to)
        );
    }
    // Labels left of their line, except the last, right of it: the revert and its end are
    // usually a fraction of a second apart.
    for (at, what, anchor) in [(t.in_effect, "in effect", "end"), (t.revert_start, "revert", "end"), (t.reverted, "reverted", "start")] {
        let x = scale.x(at);
        let _ = write!(s, "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#57606a\" stroke-dasharray=\"3 2\"/>", TOP - 18.0);
        let dx = if anchor == "end" { -3.0 } else { 3.0 };
        let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"#57606a\">{what} {}</text>", x + dx, TOP - 8.0, secs(at));
    }
}

/// One operation: its name, its attempts, its judged window and its recovery.
fn lane(s: &mut String, o: &OperationResult, t: &Timeline, scale: &Scale, y: f64) {
    let _ = write!(s, "<g class=\"lane\" data-operation=\"{}\">", esc(&o.name));
    let label: String = if o.name.chars().count() > 40 { o.name.chars().take(39).chain(['…']).collect() } else { o.name.clone() };
    let mid = y + LANE / 2.0;
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" dominant-baseline=\"middle\"><title>{}</title>{}</text>",
        LABEL - 8.0,
        mid,
        esc(&o.name),
        esc(&label)
    );
    let _ = write!(s, "<line x1=\"{LABEL}\" y1=\"{mid:.1}\" x2=\"{:.1}\" y2=\"{mid:.1}\" stroke=\"#d0d7de\"/>", WIDTH - RIGHT);
    if let Some(why) = &o.not_observed {
        let _ = write!(
            s,
            "<text class=\"not-observed\" x=\"{:.1}\" y=\"{mid:.1}\" dominant-baseline=\"middle\" fill=\"#57606a\">not observed<title>{}</title></text></g>",
            LABEL + 8.0,
            esc(why)
        );
        return;
    }
    let (w0, w1) = (scale.x(o.window.0), scale.x(o.window.1));
    let _ = write!(
        s,
        "<rect class=\"judged\" x=\"{w0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#8c959f\"><title>judged window: {} to {}</title></rect>",
        y + 2.0,
        (w1 - w0).max(0.5),
        LANE - 4.0,
        secs(o.window.0),
        secs(o.window.1)
    );
    for (first, last, n) in runs(&o.samples) {
        let (x0, x1) = (scale.x(first.at), scale.x(last.end()));
        let what = match &first.detail {
            Some(d) => format!("{}: {}", word(first.outcome), d),
            None => word(first.outcome).to_string(),
        };
        let attempts = if n == 1 { "1 attempt".to_string() } else { format!("{n} attempts") };
        let _ = write!(
            s,
            "<rect class=\"attempt {}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{MARK}\" fill=\"{}\"><title>{}, {} to {}: {}</title></rect>",
            match first.outcome {
                Outcome::Ok => "ok",
                Outcome::Partial => "partial",
                Outcome::Failed => "failed",
            },
            mid - MARK / 2.0,
            (x1 - x0).max(1.0),
            colour(first.outcome),
            attempts,
            secs(first.at),
            secs(last.end()),
            esc(&what)
        );
    }
    let (mark, why) = match o.recovery {
        _ if o.never_affected => (None, "never affected".to_string()),
        Some(r) => {
            let precision = o.resolution.map(|res| format!(" ±{}", secs(res))).unwrap_or_default();
            let judged = o.mttr_excluded.as_ref().map(|why| format!(" (not judged against the MTTR: {why})")).unwrap_or_default();
            (Some(t.reverted + r), format!("recovered {}{precision} after the revert{judged}", secs(r)))
        }
        None => (None, "not recovered".to_string()),
    };
    if let Some(at) = mark {
        let x = scale.x(at);
        let _ = write!(
            s,
            "<path class=\"recovered\" d=\"M{x:.1} {:.1} l5 6 l-5 6 l-5 -6 z\" fill=\"#0969da\" stroke=\"#fff\"><title>{}</title></path>",
            mid - 6.0,
            esc(&why)
        );
    }
    let summary = match o.recovery {
        _ if o.never_affected => "never affected".to_string(),
        Some(r) => format!("↻ {}", secs(r)),
        None => "not recovered".to_string(),
    };
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{mid:.1}\" dominant-baseline=\"middle\" fill=\"#57606a\"><title>{}</title>{}</text>",
        WIDTH - RIGHT + 8.0,
        esc(&why),
        esc(&summary)
    );
    s.push_str("</g>");
}

/// The MTTR as a bracket from the revert's end, with the documented bound.
fn mttr(s: &mut String, r: &ScenarioResult, t: &Timeline, scale: &Scale) {
    let Some(m) = r.mttr else { return };
    let (x0, x1) = (scale.x(t.reverted), scale.x(t.reverted + m));
    let y = TOP - 40.0;
    let bound = r.mttr_bound.map(|b| format!(" (documented ≤ {})", secs(b))).unwrap_or_else(|| " (no documented bound)".into());
    // The label goes right of the bracket, or left of it when it would run off the page.
    let (tx, anchor) = if x1 > LABEL + (WIDTH - LABEL - RIGHT) / 2.0 { (x1 - 4.0, "end") } else { (x1 + 4.0, "start") };
    let _ = write!(
        s,
        "<g class=\"mttr\"><path d=\"M{x0:.1} {:.1} V{y:.1} H{x1:.1} V{:.1}\" fill=\"none\" stroke=\"#0969da\"/><text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"#0969da\">MTTR {}{}</text></g>",
        y + 5.0,
        y + 5.0,
        y - 3.0,
        secs(m),
        esc(&bound)
    );
}

/// Seconds on the scenario's clock, with the outcome legend on the left.
fn axis(s: &mut String, scale: &Scale, bottom: f64) {
    let _ = write!(s, "<line x1=\"{LABEL}\" y1=\"{bottom:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"#57606a\"/>", WIDTH - RIGHT);
    let step = step(scale.end);
    let mut at = 0.0;
    while at <= scale.end + 1e-9 {
        let x = scale.x(Duration::from_secs_f64(at));
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{bottom:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#57606a\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{at} s</text>",
            bottom + 4.0,
            bottom + 16.0
        );
        at += step;
    }
    let mut x = 4.0;
    for o in [Outcome::Ok, Outcome::Partial, Outcome::Failed] {
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{:.1}\">{}</text>",
            bottom + 8.0,
            colour(o),
            x + 13.0,
            bottom + 17.0,
            word(o)
        );
        x += 13.0 + 8.0 * word(o).len() as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Impact;
    use crate::report::stability::tests::result;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A made-up result (no cluster): two operations, one failing through the fault.
    fn made_up() -> ScenarioResult {
        let mut r = result(1, Impact::Lost, Some(1500));
        r.timeline =
            Some(Timeline { injected: ms(2000), in_effect: ms(2500), revert_start: ms(8000), reverted: ms(8500), end: ms(12_000), ..Default::default() });
        r.mttr = Some(ms(1500));
        r.mttr_bound = Some(Duration::from_secs(60));
        r.phases = vec![("steady state".into(), ms(1000)), ("baseline".into(), ms(1000))];
        let op = &mut r.operations[0];
        op.samples = (0..120)
            .map(|i| {
                let at = ms(i * 100);
                let mut s = if (25..100).contains(&i) { Sample::failed(at, "connection refused") } else { Sample::ok(at) };
                s.took = ms(20);
                s
            })
            .collect();
        let mut other = r.operations[0].clone();
        other.name = "Other <op>".into();
        other.samples = (0..120).map(|i| Sample::ok(ms(i * 100))).collect();
        other.never_affected = true;
        r.operations.push(other);
        r
    }

    #[test]
    fn one_lane_per_operation_with_its_attempts_merged_into_runs() {
        let svg = render(&made_up()).unwrap();
        assert_eq!(svg.matches("<g class=\"lane\"").count(), 2, "{svg}");
        // ok 0–2.4 s, failed 2.5–9.9 s, ok 10.0–11.9 s; the other lane one run.
        assert_eq!(svg.matches("class=\"attempt ok\"").count(), 3, "{svg}");
        assert_eq!(svg.matches("class=\"attempt failed\"").count(), 1, "{svg}");
        assert!(svg.contains("<title>75 attempts, 2.5 s to 9.9 s: failed: connection refused</title>"), "{svg}");
        assert!(svg.contains("data-operation=\"Other &lt;op&gt;\""), "names are escaped: {svg}");
        assert!(svg.contains("MTTR 1.5 s (documented ≤ 60.0 s)"), "{svg}");
        assert_eq!(svg.matches("class=\"recovered\"").count(), 1, "the never-affected lane has no recovery mark: {svg}");
        // Recovered 1.5 s after the revert ended (8.5 s): at 10 s of 12, over 600 px from 290.
        assert!(svg.contains(&format!("<path class=\"recovered\" d=\"M{:.1} ", 290.0 + 10.0 / 12.0 * 600.0)), "{svg}");
        assert!(svg.contains("<title>recovered 1.5 s ±0.3 s after the revert</title>"), "{svg}");
        // The failing run of attempts starts at 2.5 s and ends with the last attempt's end, 9.92 s.
        let (x0, x1) = (290.0 + 2.5 / 12.0 * 600.0, 290.0 + 9.92 / 12.0 * 600.0);
        assert!(svg.contains(&format!("class=\"attempt failed\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\"", 52.0 + 12.0 - 7.0, x1 - x0)), "{svg}");
    }

    #[test]
    fn the_fault_window_is_shaded_where_the_timeline_puts_it() {
        let svg = render(&made_up()).unwrap();
        // 12 s over 600 px from x = 290: in effect at 2.5 s, revert at 8 s.
        let x0 = 290.0 + 2.5 / 12.0 * 600.0;
        let w = (8.0 - 2.5) / 12.0 * 600.0;
        assert!(
            svg.contains(&format!("x=\"{x0:.1}\" y=\"48.0\" width=\"{w:.1}\" height=\"52.0\" fill=\"#ffd8d3\"><title>fault in effect: 2.5 s to 8.0 s")),
            "{svg}"
        );
    }

    #[test]
    fn the_steady_state_wait_is_marked_as_not_judged() {
        let svg = render(&made_up()).unwrap();
        // The baseline's second ends at the injection (2 s): the steady state is 0–1 s.
        assert!(svg.contains(&format!("x=\"290.0\" y=\"48.0\" width=\"{:.1}\" height=\"52.0\" fill=\"#f0f1f3\"><title>steady state: waiting until every operation works, 0.0 s to 1.0 s (not judged)", 600.0 / 12.0)), "{svg}");
        let mut no_phases = made_up();
        no_phases.phases.clear();
        assert!(!render(&no_phases).unwrap().contains("settling"));
    }

    #[test]
    fn an_operation_not_observed_has_a_lane_that_says_so_and_no_marks() {
        let mut r = made_up();
        let other = &mut r.operations[1];
        other.samples.clear();
        other.classification = None;
        other.not_observed = Some("not observed on the existing backend: its API server is its owner's".into());
        let svg = render(&r).unwrap();
        assert_eq!(svg.matches("<g class=\"lane\"").count(), 2, "{svg}");
        let lane = svg.split("data-operation=\"Other &lt;op&gt;\"").nth(1).unwrap().split("</g>").next().unwrap();
        assert!(lane.contains(">not observed<title>not observed on the existing backend: its API server is its owner&#39;s</title>"), "{lane}");
        assert!(!lane.contains("class=\"attempt") && !lane.contains("class=\"judged\""), "{lane}");
    }

    #[test]
    fn no_timeline_no_svg() {
        assert!(render(&result(1, Impact::Lost, None)).is_none());
    }

    #[test]
    fn ticks_stay_about_ten() {
        assert_eq!(step(12.0), 2.0);
        assert_eq!(step(100.0), 10.0);
        assert_eq!(step(3.0), 0.5);
    }
}
