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
    verdict_table(&mut out, results);
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
                    None if o.not_observed.is_some() => ("not observed", "—".into(), "—".into()),
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
                let derived = c.derived.as_ref().map(|why| format!(" (derived: {why})")).unwrap_or_default();
                let _ = writeln!(out, "- {}{derived}: {} — {}", c.claim.words(), crate::model::table::holds(c.holds), c.detail);
            }
            out.push('\n');
        }
        if !r.deviations.is_empty() {
            out.push_str("Recorded deviations from the document:\n\n");
            deviations(&mut out, &r.deviations);
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

/// Recorded deviations as a list, each with its evidence, then a blank line.
pub fn deviations(out: &mut String, notes: &[crate::runner::DeviationNote]) {
    for d in notes {
        let glyphs = match (d.documented, d.observed, d.onset) {
            (Some(a), Some(b), _) => format!(" ({} documented, {} observed)", a.glyph(), b.glyph()),
            (_, _, Some(onset)) => format!(" (takes effect up to {} into the fault)", secs(onset)),
            _ => String::new(),
        };
        let _ = writeln!(out, "- **{}**{glyphs}, {}: {}", d.operation, d.kind.words(), d.reason.trim());
        for e in &d.evidence {
            let _ = writeln!(out, "  - evidence: {}", e.trim());
        }
    }
    out.push('\n');
}

/// The scenarios' verdict table, in Markdown.
fn verdict_table(out: &mut String, results: &[ScenarioResult]) {
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
}

/// The CI job summary (`GITHUB_STEP_SUMMARY`): the verdicts, every mismatch and harness
/// error in full, each scenario's observed table (folded), and the stability figures.
pub fn job_summary(results: &[ScenarioResult], stability: Option<&super::stability::Stability>) -> String {
    let matched = results.iter().filter(|r| r.verdict.is_match()).count();
    let mut out = format!("## firedrill: {matched} of {} scenarios match their documented tables\n\n", results.len());
    verdict_table(&mut out, results);
    out.push('\n');
    for r in results {
        match &r.verdict {
            Verdict::Mismatch { diff } => {
                let _ = writeln!(out, "### {} differs from the document\n\n```\n{diff}\n```\n", super::label(r, results));
            }
            Verdict::HarnessError { error } => {
                let _ = writeln!(out, "### {}: harness error\n\n{error}\n", super::label(r, results));
            }
            Verdict::NotRunnable { reason } => {
                let _ = writeln!(out, "### {}: not runnable\n\n{reason}\n", super::label(r, results));
            }
            Verdict::Match => {}
        }
    }
    for r in results {
        let table = r.observed.as_ref().unwrap_or(&r.expected);
        let what = if r.observed.is_some() { "observed" } else { "documented, nothing observed" };
        let _ = writeln!(
            out,
            "<details><summary>{} — {} ({what})</summary>\n\n{}\n</details>\n",
            super::label(r, results),
            verdict_word(&r.verdict),
            table.render()
        );
    }
    if let Some(s) = stability {
        out.push_str(&s.render_markdown().replacen("## ", "### ", 1));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Impact;
    use crate::report::stability::{Stability, tests::result};

    #[test]
    fn the_job_summary_shows_verdicts_mismatches_tables_and_stability() {
        let ok = result(1, Impact::Lost, Some(1000));
        let mut differs = result(1, Impact::Limited, None);
        differs.scenario = "b".into();
        differs.verdict = Verdict::Mismatch { diff: "-| Op | ❌ |\n+| Op | ⚠️ |".into() };
        let results = vec![ok.clone(), differs];
        let stability = Stability::of(&[vec![ok.clone()], vec![ok]]);
        let s = job_summary(&results, Some(&stability));
        assert!(s.starts_with("## firedrill: 1 of 2 scenarios match their documented tables\n"), "{s}");
        assert!(s.contains("| s::b | DIFFERS from the document |"), "{s}");
        // The mismatch in full, outside any folded block.
        let diff_at = s.find("### s::b differs from the document\n\n```\n-| Op | ❌ |\n+| Op | ⚠️ |\n```").expect("the diff");
        assert!(diff_at < s.find("<details>").unwrap(), "{s}");
        assert_eq!(s.matches("<details><summary>").count(), 2, "{s}");
        assert!(s.contains("### Stability over 2 rounds"), "{s}");
    }
}
