//! The Markdown report: per scenario, the observed table, then per operation the
//! verdict, the success ratio in the fault window and the measured recovery time, the
//! recorded deviations with their evidence, and what was reverted.

use std::fmt::Write as _;

use super::secs;
use crate::runner::{ScenarioResult, Verdict};

pub fn render(results: &[ScenarioResult]) -> String {
    let mut out = String::from("# firedrill report\n\n");
    let matched = results.iter().filter(|r| r.verdict.is_match()).count();
    let _ = writeln!(out, "{matched} of {} scenarios match their documented tables.\n", results.len());
    out.push_str("| Scenario | Verdict | MTTR measured | MTTR documented | Took |\n| --- | --- | --- | --- | --- |\n");
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            super::label(r, results),
            verdict_word(&r.verdict),
            r.mttr.map(secs).unwrap_or_else(|| "—".into()),
            r.mttr_bound.map(secs).unwrap_or_else(|| "none".into()),
            secs(r.took)
        );
    }
    for r in results {
        let _ = writeln!(out, "\n## {} — {}\n", super::label(r, results), r.title);
        let _ = writeln!(out, "Verdict: **{}**\n", verdict_word(&r.verdict));
        match &r.verdict {
            Verdict::Mismatch { diff } => {
                let _ = writeln!(out, "```\n{diff}\n```\n");
            }
            Verdict::HarnessError { error } => {
                let _ = writeln!(out, "Harness error: {error}\n");
            }
            Verdict::NotRunnable { reason } => {
                let _ = writeln!(out, "Not runnable: {reason}\n");
            }
            Verdict::Match => {}
        }
        if let Some(t) = &r.observed {
            out.push_str("Observed:\n\n");
            out.push_str(&t.render());
            out.push('\n');
        } else {
            out.push_str("Documented (nothing observed):\n\n");
            out.push_str(&r.expected.render());
            out.push('\n');
        }
        if !r.operations.is_empty() {
            out.push_str(
                "| Operation | Documented | Observed | Success ratio | Samples | First failure | Recovery ±resolution | Failures seen |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
            );
            for o in &r.operations {
                let (glyph, ratio, n) = match &o.classification {
                    Some(c) => (c.impact.glyph(), format!("{:.0}%", 100.0 * c.success_ratio()), c.samples.to_string()),
                    None => ("—", "—".into(), "—".into()),
                };
                let failures = super::failures_seen(o).replace('|', "\\|");
                let _ = writeln!(
                    out,
                    "| {} | {}{} | {} | {} | {} | {} | {} | {} |",
                    o.name,
                    o.documented.glyph(),
                    if o.derived.is_some() { " (derived)" } else { "" },
                    glyph,
                    ratio,
                    n,
                    super::first_failure_cell(o),
                    super::recovery_cell(o).replace('|', "\\|"),
                    failures
                );
            }
            out.push('\n');
            let derived: Vec<String> = r.operations.iter().filter_map(|o| o.derived.as_ref().map(|why| format!("- {}: {why}", o.name))).collect();
            if !derived.is_empty() {
                let _ = writeln!(out, "Derived cells (the document does not state them):\n\n{}\n", derived.join("\n"));
            }
        }
        if !r.findings.is_empty() {
            out.push_str("Findings (the glyphs agree, the reasons do not):\n\n");
            for f in &r.findings {
                let _ = writeln!(out, "- {f}");
            }
            out.push('\n');
        }
        if !r.claims.is_empty() {
            out.push_str("Recovery claims:\n\n");
            for c in &r.claims {
                let _ = writeln!(out, "- {}: {} — {}", c.claim.words(), crate::model::table::holds(c.holds), c.detail);
            }
            out.push('\n');
        }
        if !r.deviations.is_empty() {
            out.push_str("Recorded deviations from the document:\n\n");
            for d in &r.deviations {
                let glyphs = match (d.documented, d.observed, d.onset) {
                    (Some(a), Some(b), _) => format!(" ({} documented, {} observed)", a.glyph(), b.glyph()),
                    (_, _, Some(onset)) => format!(" (takes effect up to {} into the fault)", secs(onset)),
                    _ => String::new(),
                };
                let _ = writeln!(out, "- **{}**{glyphs}, {}: {}", d.operation, d.kind.words(), d.reason);
                for e in &d.evidence {
                    let _ = writeln!(out, "  - evidence: {e}");
                }
            }
            out.push('\n');
        }
        if !r.reverted.is_empty() {
            let _ = writeln!(out, "Reverted: {}\n", r.reverted.join("; "));
        }
        if !r.phases.is_empty() {
            let _ = writeln!(out, "Phases: {}\n", super::phases(r));
        }
    }
    out
}

pub fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Match => "matches the document",
        Verdict::Mismatch { .. } => "DIFFERS from the document",
        Verdict::NotRunnable { .. } => "not runnable on this backend",
        Verdict::HarnessError { .. } => "harness error",
    }
}
