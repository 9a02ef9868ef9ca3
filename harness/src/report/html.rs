//! The HTML report: one self-contained page (no script, no external resource) with the
//! same content as the Markdown report — what a nightly job publishes as an artifact.

use std::fmt::Write as _;

use super::secs;
use super::stability::Stability;
use crate::model::Impact;
use crate::runner::{ScenarioResult, Verdict};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:72em}\
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.match{color:#1a7f37}.differs,.error{color:#cf222e}.skipped{color:#9a6700}\
.cell-differs{background:#ffebe9}pre{background:#f6f8fa;padding:.6em;overflow:auto}\
figure{margin:1em 0;overflow-x:auto}figcaption{color:#57606a;font-size:.9em}\
.impact{white-space:nowrap}.impact svg{vertical-align:-.2em;margin-right:.3em}";

/// `&`, `<`, `>`, `"` and `'` as entities.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// An impact level as it reads in any browser: a coloured mark drawn inline (no font needs
/// the emoji) and the level's word. Headless Chromium on Debian, without an emoji font,
/// draws ✅ ⚠️ ❌ as empty boxes.
pub fn impact_mark(impact: Impact) -> String {
    let shape = match impact {
        Impact::Unaffected => {
            "<circle cx=\"7\" cy=\"7\" r=\"7\" fill=\"#1a7f37\"/><path d=\"M3.5 7.2l2.4 2.4 4.6-4.8\" stroke=\"#fff\" stroke-width=\"1.8\" fill=\"none\"/>"
        }
        Impact::Limited => "<path d=\"M7 .6L13.6 13H.4z\" fill=\"#bf8700\"/><path d=\"M7 4.8v4.2M7 10.4v1.4\" stroke=\"#fff\" stroke-width=\"1.6\"/>",
        Impact::Lost => {
            "<circle cx=\"7\" cy=\"7\" r=\"7\" fill=\"#cf222e\"/><path d=\"M4.4 4.4l5.2 5.2M9.6 4.4l-5.2 5.2\" stroke=\"#fff\" stroke-width=\"1.8\"/>"
        }
    };
    format!(
        "<span class=\"impact\"><svg width=\"14\" height=\"14\" viewBox=\"0 0 14 14\" aria-hidden=\"true\">{shape}</svg>{word}</span>",
        word = impact.word()
    )
}

/// Escaped text with every impact glyph in it drawn as [`impact_mark`] (a diff, a changed
/// cell of the stability summary).
pub fn esc_marked(s: &str) -> String {
    let mut out = esc(s);
    // ⚠ first without its variation selector, which `⚠️` carries.
    for (glyph, impact) in [("⚠️", Impact::Limited), ("⚠", Impact::Limited), ("✅", Impact::Unaffected), ("❌", Impact::Lost)] {
        out = out.replace(glyph, &impact_mark(impact));
    }
    out
}

fn verdict_class(v: &Verdict) -> &'static str {
    match v {
        Verdict::Match => "match",
        Verdict::Mismatch { .. } => "differs",
        Verdict::NotRunnable { .. } => "skipped",
        Verdict::HarnessError { .. } => "error",
    }
}

pub fn render(results: &[ScenarioResult], stability: Option<&Stability>) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>firedrill report</title><style>{STYLE}</style></head><body>\n<h1>firedrill report</h1>\n"
    );
    let matched = results.iter().filter(|r| r.verdict.is_match()).count();
    let _ = writeln!(out, "<p>{matched} of {} scenarios match their documented tables.</p>", results.len());
    out.push_str("<table><tr><th>Scenario</th><th>Verdict</th><th>MTTR measured</th><th>MTTR documented</th><th>Took</th></tr>\n");
    for (i, r) in results.iter().enumerate() {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#s{i}\">{}</a></td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&super::label(r, results)),
            verdict_class(&r.verdict),
            super::markdown::verdict_word(&r.verdict),
            r.mttr.map(secs).unwrap_or_else(|| "—".into()),
            r.mttr_bound.map(secs).unwrap_or_else(|| "none".into()),
            secs(r.took)
        );
    }
    out.push_str("</table>\n");
    for (i, r) in results.iter().enumerate() {
        scenario(&mut out, i, r, results);
    }
    if let Some(s) = stability {
        let _ = writeln!(out, "<h2>Stability over {} rounds</h2>\n<p>{}.</p>", s.rounds, esc(&s.summary()));
        if !s.changed.is_empty() {
            out.push_str("<ul>");
            for c in &s.changed {
                let _ = write!(out, "<li>{}</li>", esc_marked(c));
            }
            out.push_str("</ul>\n");
        }
        if !s.recovery.is_empty() {
            out.push_str("<table><tr><th>Scenario</th><th>Operation</th><th>Recovery median</th><th>min</th><th>max</th><th>Rounds</th></tr>\n");
            for x in &s.recovery {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&x.scenario),
                    esc(&x.operation),
                    secs(x.median),
                    secs(x.min),
                    secs(x.max),
                    x.rounds
                );
            }
            out.push_str("</table>\n");
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn scenario(out: &mut String, i: usize, r: &ScenarioResult, results: &[ScenarioResult]) {
    let _ = writeln!(out, "<h2 id=\"s{i}\">{} — {}</h2>", esc(&super::label(r, results)), esc(&r.title));
    let partly = if r.verdict.is_match() { super::observed_rows(r) } else { String::new() };
    let _ =
        writeln!(out, "<p>Verdict: <strong class=\"{}\">{}</strong>{}</p>", verdict_class(&r.verdict), super::markdown::verdict_word(&r.verdict), esc(&partly));
    match &r.verdict {
        Verdict::Mismatch { diff } => {
            let _ = writeln!(out, "<pre>{}</pre>", esc_marked(diff));
        }
        Verdict::HarnessError { error } => {
            let _ = writeln!(out, "<p>Harness error: {}</p>", esc(error));
        }
        Verdict::NotRunnable { reason } => {
            let _ = writeln!(out, "<p>Not runnable: {}</p>", esc(reason));
        }
        Verdict::Match => {}
    }
    if let Some(svg) = super::timeline::render(r) {
        let _ = writeln!(
            out,
            "<figure>{svg}<figcaption>Every probe attempt on the scenario's clock (runs of attempts with the same outcome and reason drawn as one mark; point at one for its times and reason); shaded: injecting, fault in effect, reverting; ◆ where the operation recovered for good.</figcaption></figure>"
        );
    }
    out.push_str("<table><tr><th>Operation</th><th>Documented</th><th>Observed</th><th>Note</th><th>Success ratio</th><th>Samples</th><th>First failure</th><th>Recovery ±resolution</th><th>Failures seen</th></tr>\n");
    for (k, row) in r.expected.rows.iter().enumerate() {
        let o = r.operations.get(k).filter(|o| o.name == row.operation);
        let c = o.and_then(|o| o.classification.as_ref());
        let not_observed = o.and_then(|o| o.not_observed.as_deref());
        let observed = c.map(|c| impact_mark(c.impact)).unwrap_or_else(|| if not_observed.is_some() { "not observed" } else { "—" }.into());
        let differs = c.is_some_and(|c| Some(c.impact) != row.impact);
        let failures = o.map(super::failures_seen).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td{}>{observed}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row.operation),
            row.impact.map(impact_mark).unwrap_or_else(|| crate::model::table::NOT_OBSERVED.into()),
            if differs { " class=\"cell-differs\"" } else { "" },
            esc(&row.note),
            c.map(|c| format!("{:.0}%", 100.0 * c.success_ratio())).unwrap_or_else(|| "—".into()),
            c.map(|c| c.samples.to_string()).unwrap_or_else(|| "—".into()),
            o.map(super::first_failure_cell).unwrap_or_else(|| "—".into()),
            esc(&o.map(super::recovery_cell).unwrap_or_else(|| "—".into())),
            esc(&failures)
        );
    }
    out.push_str("</table>\n");
    let table = r.observed.as_ref().unwrap_or(&r.expected);
    if let Some(why) = &table.derived {
        let _ = writeln!(out, "<p>Derived from the document's facts, not its table: {}</p>", esc(why));
    }
    let rec = &table.recovery;
    let _ = writeln!(out, "<p>Recovery: {}</p>", esc(&rec.describe()));
    for (op, why) in &rec.excluded {
        let _ = writeln!(out, "<p>Not judged against the MTTR: {} — {}</p>", esc(op), esc(why));
    }
    if !r.findings.is_empty() {
        out.push_str("<p>Findings (the glyphs agree, the reasons do not):</p><ul>");
        for f in &r.findings {
            let _ = write!(out, "<li>{}</li>", esc(f));
        }
        out.push_str("</ul>\n");
    }
    if !r.claims.is_empty() {
        out.push_str("<ul>");
        for c in &r.claims {
            let derived = c.derived.as_ref().map(|why| format!(" (derived: {})", esc(why))).unwrap_or_default();
            let _ = write!(out, "<li>{}{derived}: {} — {}</li>", esc(c.claim.words()), crate::model::table::holds(c.holds), esc(&c.detail));
        }
        out.push_str("</ul>\n");
    }
    if !r.deviations.is_empty() {
        out.push_str("<p>Recorded deviations from the document:</p><ul>");
        for d in &r.deviations {
            let _ = write!(out, "<li><strong>{}</strong> ({}): {}<ul>", esc(&d.operation), esc(d.kind.words()), esc(&d.reason));
            for e in &d.evidence {
                let _ = write!(out, "<li>evidence: {}</li>", esc(e));
            }
            out.push_str("</ul></li>");
        }
        out.push_str("</ul>\n");
    }
    if !r.reverted.is_empty() {
        let _ = writeln!(out, "<p>Reverted: {}</p>", esc(&r.reverted.join("; ")));
    }
    if !r.phases.is_empty() {
        let _ = writeln!(out, "<p>Phases: {}</p>", esc(&super::phases(r)));
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Impact;

    #[test]
    fn impacts_are_drawn_with_their_word_never_as_an_emoji() {
        for impact in [Impact::Unaffected, Impact::Limited, Impact::Lost] {
            let mark = super::impact_mark(impact);
            assert!(mark.contains("<svg") && mark.ends_with(&format!("{}</span>", impact.word())), "{mark}");
            assert!(!mark.contains(impact.glyph()), "{mark}");
        }
        let diff = super::esc_marked("-| Op | ❌ |\n+| Op | ⚠️ | <b>");
        assert!(!diff.contains("| ❌") && !diff.contains("| ⚠"), "{diff}");
        assert!(diff.contains(">lost</span>") && diff.contains(">limited</span>") && diff.contains("&lt;b&gt;"), "{diff}");
    }

    #[test]
    fn text_from_probes_and_documents_is_escaped() {
        assert_eq!(super::esc("<script>a & 'b'</script>"), "&lt;script&gt;a &amp; &#39;b&#39;&lt;/script&gt;");
    }
}
