//! `firedrill docs`: the living failure-domain document. From the suites and the last
//! recorded run (a report directory's `results.json`, judged again now by the same code as
//! `firedrill check`), it writes per suite the documented tables, what was observed, on
//! which backend and when, and every recorded deviation with its evidence. Touches no
//! cluster.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use super::check::{self, Recorded};
use super::select::{EXIT_HARNESS, EXIT_MATCH};
use crate::fixtures::Paths;
use crate::model::table;
use crate::report::markdown::verdict_word;
use crate::report::secs;
use crate::runner::{ScenarioResult, Verdict};
use crate::suite::{ScenarioSpec, Suite};

pub struct DocsArgs {
    /// The report directory of the last run (default `reports/latest`, what `make drill` writes).
    pub report: Option<PathBuf>,
    /// Where to write (default `docs/failure-domains.md`).
    pub out: Option<PathBuf>,
}

/// What the last run says of one scenario: its recorded entry (the last round), and the
/// verdict reached from it now.
struct Seen<'a> {
    recorded: &'a Recorded,
    judged: Result<Option<ScenarioResult>, String>,
}

pub fn docs(paths: Paths, args: DocsArgs) -> ExitCode {
    let report = args.report.unwrap_or_else(|| paths.root.join("reports/latest"));
    let out = args.out.unwrap_or_else(|| paths.root.join("docs/failure-domains.md"));
    let suites = match check::load_suites(&paths, None, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    // No recording is not an error: the document then holds the documented tables and says
    // that nothing has been observed. A recording that cannot be read is one.
    let recorded = if check::results_file(&report).exists() {
        match check::load_recorded(&report) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_HARNESS);
            }
        }
    } else {
        eprintln!("note: {} holds no results.json: the document will say nothing was observed (`make drill` writes one)", report.display());
        vec![]
    };
    let text = render(&paths, &suites, &recorded, &report);
    if let Some(dir) = out.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: {}: {e}", dir.display());
            return ExitCode::from(EXIT_HARNESS);
        }
    }
    // Written whole or not at all.
    if let Err(e) = crate::files::write_atomic(&out, text.as_bytes(), 0o644) {
        eprintln!("error: {}: {e}", out.display());
        return ExitCode::from(EXIT_HARNESS);
    }
    let observed = suites.iter().flat_map(|s| s.spec.scenarios.iter().map(move |sc| (s, sc))).filter(|(s, sc)| last(&recorded, s, sc).is_some()).count();
    let total: usize = suites.iter().map(|s| s.spec.scenarios.len()).sum();
    println!("wrote {} ({} suites, {observed} of {total} scenarios observed in {})", out.display(), suites.len(), report.display());
    ExitCode::from(EXIT_MATCH)
}

/// The last round the recording holds of a scenario.
fn last<'a>(recorded: &'a [Recorded], suite: &Suite, sc: &ScenarioSpec) -> Option<&'a Recorded> {
    recorded.iter().filter(|r| r.suite == suite.id() && r.scenario == sc.id.value).max_by_key(|r| r.round)
}

fn relative(paths: &Paths, p: &std::path::Path) -> String {
    p.strip_prefix(&paths.root).unwrap_or(p).display().to_string()
}

fn render(paths: &Paths, suites: &[Suite], recorded: &[Recorded], report: &std::path::Path) -> String {
    let mut out = String::from("# Failure domains: documented and observed\n\n");
    let _ = writeln!(
        out,
        "Written by `firedrill docs` from the suites in `suites/` and the run recorded in `{}`, judged again by today's suites and snapshots (as `firedrill check` does). Do not edit it by hand: edit a suite or a snapshot, run `make drill`, then `firedrill docs`.\n",
        relative(paths, &check::results_file(report))
    );
    out.push_str("| Scenario | Documented MTTR | Observed | Backend | When | MTTR measured |\n| --- | --- | --- | --- | --- | --- |\n");
    let mut seen = Vec::new();
    for suite in suites {
        for sc in &suite.spec.scenarios {
            let s = last(recorded, suite, sc).map(|r| Seen { recorded: r, judged: check::rejudge(r, suites, &paths.snapshots) });
            let bound = Some(table::bound_words(sc)).filter(|b| !b.is_empty()).unwrap_or_else(|| "none".into());
            let (verdict, backend, when, mttr) = match &s {
                None => ("not observed".to_string(), "—".to_string(), "—".to_string(), "—".to_string()),
                Some(s) => (
                    verdict_words(s),
                    s.recorded.backend.map(|b| b.name()).unwrap_or("—").to_string(),
                    s.recorded.started_at.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "—".into()),
                    s.judged.as_ref().ok().and_then(|j| j.as_ref()).and_then(|j| j.mttr).map(secs).unwrap_or_else(|| "—".into()),
                ),
            };
            let _ = writeln!(
                out,
                "| [{}::{}](#{}) | {} | {verdict} | {backend} | {when} | {mttr} |",
                suite.id(),
                sc.id.value,
                anchor(suite, sc),
                table::escape(&bound)
            );
            seen.push(s);
        }
    }
    let mut seen = seen.into_iter();
    for suite in suites {
        let _ = writeln!(out, "\n## {} (`{}`)\n", suite.spec.title, suite.id());
        let _ = writeln!(out, "Source: {}\n", suite.spec.source.trim());
        if let Some(t) = &suite.spec.transcription {
            let _ = writeln!(out, "How the document's glyphs were read: {}\n", t.trim());
        }
        let _ = writeln!(out, "Suite file: `{}`; topology `{}`.\n", relative(paths, &suite.file), suite.spec.topology.value);
        for sc in &suite.spec.scenarios {
            scenario(&mut out, suite, sc, seen.next().flatten().as_ref());
        }
    }
    out
}

/// The scenario heading's anchor, as GitHub makes it.
fn anchor(suite: &Suite, sc: &ScenarioSpec) -> String {
    format!("{}{}", suite.id(), sc.id.value).to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

fn verdict_words(s: &Seen) -> String {
    match &s.judged {
        Ok(Some(j)) => verdict_word(&j.verdict).to_string(),
        Ok(None) => match s.recorded.verdict.verdict.as_str() {
            "harness-error" => "no verdict (harness error)".into(),
            "not-runnable" => "not runnable there".into(),
            other => format!("recorded as {other}, not judged again (the recording holds no timeline)"),
        },
        Err(_) => "cannot be judged again".into(),
    }
}

fn scenario(out: &mut String, suite: &Suite, sc: &ScenarioSpec, seen: Option<&Seen>) {
    let _ = writeln!(out, "### {}::{}\n\n{}.\n", suite.id(), sc.id.value, sc.title.trim_end_matches('.'));
    let expected = table::expected(suite, sc);
    let judged = seen.and_then(|s| s.judged.as_ref().ok()).and_then(|j| j.as_ref());
    let observed = judged.and_then(|j| j.observed.as_ref());
    match seen {
        None => out.push_str("Not in the recorded run.\n\n"),
        Some(s) => {
            let on = s.recorded.backend.map(|b| format!(" on the {} backend", b.name())).unwrap_or_default();
            let when = s.recorded.started_at.map(|t| format!(", {}", t.strftime("%Y-%m-%d %H:%M UTC"))).unwrap_or_default();
            let round = if s.recorded.round > 1 { format!(" (round {})", s.recorded.round) } else { String::new() };
            let _ = writeln!(out, "Observed{on}{when}{round}: **{}**.\n", verdict_words(s));
            match &s.judged {
                Ok(Some(_)) => {}
                Ok(None) => {
                    if let Some(why) = s.recorded.verdict.why() {
                        let _ = writeln!(out, "{}\n", why.trim());
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "The recording cannot be judged against today's suite: {e}\n");
                }
            }
        }
    }
    if let Some(why) = &expected.derived {
        let _ = writeln!(out, "Derived from the document's facts, not its table: {}\n", why.trim());
    }
    // The document's glyph; the observed one, marked where it is not what the suite expects
    // (the document's, or a recorded deviation's).
    out.push_str("| Operation | Documented | Observed | Note |\n| --- | --- | --- | --- |\n");
    for (op, row) in suite.spec.operations.iter().zip(&expected.rows) {
        let id = op.id.value.as_str();
        let doc = sc.documented_impact(id).map(|i| i.glyph()).unwrap_or("—");
        let seen_row = observed.and_then(|t| t.rows.iter().find(|r| r.operation == row.operation));
        let cell = match seen_row {
            Some(r) if r.impact.is_none() => format!("{} ({})", r.glyph(), table::escape(&r.note)),
            Some(r) if r.impact == row.impact => r.glyph().to_string(),
            Some(r) => format!("**{}** (expected {})", r.glyph(), row.glyph()),
            None => "—".into(),
        };
        let _ = writeln!(out, "| {} | {doc} | {cell} | {} |", table::escape(&row.operation), table::escape(&row.note));
    }
    let _ = writeln!(out, "\nRecovery, as the suite expects it: {}", expected.recovery.describe());
    for (op, why) in &expected.recovery.excluded {
        let _ = writeln!(out, "Not judged against the MTTR: {op} — {}", table::escape(why));
    }
    if let Some(t) = observed {
        let mttr = judged.and_then(|j| j.mttr).map(|m| format!(" (longest recovery {})", secs(m))).unwrap_or_default();
        let _ = writeln!(out, "\nRecovery observed: {}{mttr}", t.recovery.describe());
        for c in &t.recovery.claims {
            let _ = writeln!(out, "{}", c.describe());
        }
    }
    out.push('\n');
    if let Some(j) = judged {
        if let Verdict::Mismatch { diff } = &j.verdict {
            let _ = writeln!(out, "How the observation differs from the snapshot:\n\n```diff\n{diff}\n```\n");
        }
        for f in &j.findings {
            let _ = writeln!(out, "- finding: {f}");
        }
        if !j.findings.is_empty() {
            out.push('\n');
        }
    }
    let deviations = crate::runner::deviation_notes(sc);
    if !deviations.is_empty() {
        out.push_str("Deviations from the document, recorded in the suite with their evidence:\n\n");
        crate::report::markdown::deviations(out, &deviations);
    }
}
