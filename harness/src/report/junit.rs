//! JUnit XML: one test case per scenario, for CI systems.

use std::fmt::Write as _;

use super::html::esc;
use crate::runner::{ScenarioResult, Verdict};

pub fn render(results: &[ScenarioResult]) -> String {
    let failures = results.iter().filter(|r| matches!(r.verdict, Verdict::Mismatch { .. })).count();
    let errors = results.iter().filter(|r| matches!(r.verdict, Verdict::HarnessError { .. })).count();
    let skipped = results.iter().filter(|r| matches!(r.verdict, Verdict::NotRunnable { .. })).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuite name=\"firedrill\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">", results.len());
    for r in results {
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.1}\">",
            esc(&r.suite),
            esc(&format!("{}{}", r.scenario, super::round_suffix(r, results))),
            r.took.as_secs_f64()
        );
        match &r.verdict {
            Verdict::Match => {}
            Verdict::Mismatch { diff } => {
                let _ = write!(out, "<failure message=\"observed table differs from the document\">{}</failure>", esc(diff));
            }
            Verdict::HarnessError { error } => {
                let _ = write!(out, "<error message=\"{}\"/>", esc(error));
            }
            Verdict::NotRunnable { reason } => {
                let _ = write!(out, "<skipped message=\"{}\"/>", esc(reason));
            }
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}
