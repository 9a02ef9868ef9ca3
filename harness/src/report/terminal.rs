//! The terminal reporter: progress on stderr, tables and per-operation numbers on stdout.
//!
//! On a terminal (stderr a TTY, `CI` unset, the log not JSON) progress is live: a spinner
//! under the progress lines shows what runs now — bringing an environment up, or a
//! scenario's phase (baseline → fault → revert → recovery …) — with the time it has taken.
//! Elsewhere (a pipe, a file, CI) the same progress lines are printed plain.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::secs;
use crate::runner::{Emit, RunEvent, ScenarioResult, Verdict};

/// The tracing target run events are logged under.
pub const EVENT_TARGET: &str = "firedrill::event";

static JSON_LOG: AtomicBool = AtomicBool::new(false);

/// The live display, while one is shown.
static LIVE: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Whether progress is shown live: a terminal, not CI, not a JSON log.
pub fn live() -> bool {
    !JSON_LOG.load(Ordering::Relaxed) && std::env::var_os("CI").is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("a valid template"));
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// What the live display says for an event, and whether its clock starts again.
fn status(ev: &RunEvent) -> Option<(String, bool)> {
    match ev {
        RunEvent::Plan { suite, .. } => Some((format!("{suite}: bringing the environment up"), true)),
        RunEvent::EnvironmentReady { suite, .. } => Some((format!("{suite}: environment ready"), true)),
        RunEvent::ScenarioStarted { name, .. } => Some((format!("{name}: starting"), true)),
        RunEvent::Phase { name, phase } => Some((format!("{name}: {phase}"), false)),
        RunEvent::FaultInjected { name, fault, .. } => Some((format!("{name}: {fault} in place"), false)),
        RunEvent::ScenarioFinished(r) => Some((format!("{}: {}", r.name(), super::markdown::verdict_word(&r.verdict)), false)),
        RunEvent::EnvironmentDown { suite, .. } => Some((format!("{suite}: environment torn down"), true)),
        RunEvent::FaultReverted { .. } | RunEvent::Warning { .. } => None,
    }
}

/// Print `line` above the live display, and move the display on to `ev`'s status.
fn show_live(ev: &RunEvent, line: &str) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let bar = live.get_or_insert_with(|| spinner(String::new()));
    bar.println(line);
    if let Some((message, restart)) = status(ev) {
        if restart {
            bar.reset_elapsed();
        }
        bar.set_message(message);
    }
}

/// Clear the live display, if one is shown (the run is over).
pub fn finish() {
    if let Some(bar) = LIVE.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bar.finish_and_clear();
    }
}

/// Run `f` (which writes to the terminal) with the live display hidden meanwhile.
pub fn suspend<T>(f: impl FnOnce() -> T) -> T {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match live {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// A live display of `message` while a guard lives (bringing clusters up); nothing when
/// progress is not live.
pub fn working(message: String) -> Option<Working> {
    live().then(|| Working(spinner(message)))
}

pub struct Working(indicatif::ProgressBar);

impl Drop for Working {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// With a JSON log on stderr, run events are records of that log, not progress lines.
pub fn set_json_log(on: bool) {
    JSON_LOG.store(on, Ordering::Relaxed);
}

/// A line for the person running firedrill, on stderr: as it is, or a log record when the
/// log on stderr is JSON.
pub fn note(line: &str) {
    say(line, line, false);
}

/// An error for the person running firedrill (`error: …` on stderr, or an error record).
pub fn error(message: &str) {
    say(&format!("error: {message}"), message, true);
}

/// `plain` on stderr (above the live display), or `record` as an info or error record of
/// the JSON log.
fn say(plain: &str, record: &str, is_error: bool) {
    if !JSON_LOG.load(Ordering::Relaxed) {
        suspend(|| {
            let _ = writeln!(std::io::stderr(), "{plain}");
        });
    } else if is_error {
        tracing::error!("{record}");
    } else {
        tracing::info!("{record}");
    }
}

/// A run event as a log record's field: the event, with a finished scenario's name,
/// verdict and duration only (its samples are in results.json).
fn event_json(ev: &RunEvent) -> String {
    let v = match ev {
        RunEvent::ScenarioFinished(r) => {
            serde_json::json!({ "event": "scenario-finished", "name": r.name(), "verdict": r.verdict.tag(), "took_s": r.took.as_secs_f64() })
        }
        other => serde_json::to_value(other).unwrap_or_default(),
    };
    v.to_string()
}

/// The run events in a JSON-lines log (`run --report DIR` writes `DIR/firedrill.log`): the
/// records of target [`EVENT_TARGET`], each event as logged. Lines that are not JSON are
/// skipped.
pub fn logged_events(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["target"] == EVENT_TARGET)
        .filter_map(|r| serde_json::from_str(r["fields"]["event"].as_str()?).ok())
        .collect()
}

/// An emitter logging each run event (target [`EVENT_TARGET`]) and printing it as a
/// progress line to stderr, unless the log on stderr is JSON.
pub fn emitter() -> Emit {
    Arc::new(|ev: RunEvent| {
        tracing::info!(target: EVENT_TARGET, event = %event_json(&ev));
        if JSON_LOG.load(Ordering::Relaxed) {
            return;
        }
        let line = match &ev {
            RunEvent::Plan { suite, environment, clusters } => format!("firedrill: suite {suite} will fault clusters {} of {environment}", clusters.join(", ")),
            RunEvent::EnvironmentReady { suite, run_id, run_dir, took, bring_up, deploy } => {
                format!("firedrill: {suite}: environment {run_id} ready in {} (bring-up {}, deploy {}; {run_dir})", secs(*took), secs(*bring_up), secs(*deploy))
            }
            RunEvent::ScenarioStarted { name, title } => format!("firedrill: {name}: {title}"),
            RunEvent::Phase { name, phase } => format!("firedrill: {name}: {phase}"),
            RunEvent::FaultInjected { name, fault, journal_seq } => format!("firedrill: {name}: injected {fault} (journal #{journal_seq})"),
            RunEvent::FaultReverted { name, undo } => format!("firedrill: {name}: reverted: {undo}"),
            RunEvent::ScenarioFinished(r) => format!("firedrill: {}: {} in {}", r.name(), super::markdown::verdict_word(&r.verdict), secs(r.took)),
            RunEvent::EnvironmentDown { suite, took } => format!("firedrill: {suite}: environment torn down in {}", secs(*took)),
            RunEvent::Warning { message } => format!("firedrill: warning: {message}"),
        };
        if live() {
            show_live(&ev, &line);
        } else {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    })
}

/// The observed table of a scenario and the numbers behind it.
pub fn print_result(r: &ScenarioResult) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out);
    match &r.observed {
        Some(t) => {
            let _ = write!(out, "{}", t.render());
        }
        None => {
            let _ = writeln!(out, "### {}\n", r.title);
        }
    }
    for o in &r.operations {
        if let Some(c) = &o.classification {
            let _ = writeln!(
                out,
                "  {:<58} {} documented {}  ok {:>3.0}% of {:>3}  first failure {}  recovery {}{}",
                o.name,
                c.impact.glyph(),
                o.documented.glyph(),
                100.0 * c.success_ratio(),
                c.samples,
                super::first_failure_cell(o),
                super::recovery_cell(o),
                if o.derived.is_some() { "  [derived]" } else { "" }
            );
        }
    }
    for o in r.operations.iter().filter(|o| !o.recovery_failures.is_empty()) {
        let _ = writeln!(out, "  {} after revert: {}", o.name, super::reasons(&o.recovery_failures));
    }
    if let Some(m) = r.mttr {
        let _ = writeln!(out, "  MTTR measured {} (documented {})", secs(m), r.mttr_bound.map(secs).unwrap_or_else(|| "none".into()));
    }
    for c in &r.claims {
        let _ = writeln!(out, "  claim {}: {} — {}", c.claim.words(), crate::model::table::holds(c.holds), c.detail);
    }
    for d in &r.deviations {
        let _ = writeln!(out, "  deviation recorded for {} ({}): {}", d.operation, d.kind.words(), d.reason);
    }
    for f in &r.findings {
        let _ = writeln!(out, "  finding: {f}");
    }
    if !r.phases.is_empty() {
        let _ = writeln!(out, "  phases: {}", super::phases(r));
    }
    match &r.verdict {
        Verdict::Match => {
            let _ = writeln!(out, "=> {}: matches the document{}", r.name(), super::observed_rows(r));
        }
        Verdict::Mismatch { diff } => {
            let _ = writeln!(out, "=> {}: DIFFERS from the document\n{diff}", r.name());
        }
        Verdict::HarnessError { error } => {
            let _ = writeln!(out, "=> {}: harness error: {error}", r.name());
        }
        Verdict::NotRunnable { reason } => {
            let _ = writeln!(out, "=> {}: not runnable: {reason}", r.name());
        }
    }
}
