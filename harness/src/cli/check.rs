//! `firedrill check`: re-judge a recorded run against the current suites and snapshots,
//! without touching a cluster. A report's `results.json` holds every probe attempt with
//! its time, the scenario's timeline and the claims' post-checks; the verdict is reached
//! from them by the same pure code a live run uses (`runner::verdict`), so editing a suite
//! (a cause, a settle time, a deviation) or a snapshot is checked in seconds. It leaves no
//! observation next to a snapshot for review; with `--report DIR` it writes the re-judged
//! run's reports there (the recorded run's own reports are never touched).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;

use super::select::{EXIT_HARNESS, EXIT_MATCH, EXIT_MISMATCH};
use crate::fixtures::Paths;
use crate::model::Sample;
use crate::recording::{self, Recording};
use crate::report::markdown::verdict_word;
use crate::runner::claims::ClaimResult;
use crate::runner::events::Timeline;
use crate::runner::{ScenarioResult, Verdict, verdict};
use crate::suite::{Claim, Suite};

/// What `results.json` records of one scenario, as far as judging (and `firedrill docs`)
/// needs it.
#[derive(Deserialize)]
pub(super) struct Recorded {
    pub suite: String,
    pub scenario: String,
    pub verdict: RecordedVerdict,
    #[serde(default)]
    pub round: u32,
    #[serde(default)]
    pub backend: Option<crate::backend::BackendKind>,
    #[serde(default)]
    pub started_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub took: std::time::Duration,
    #[serde(default)]
    pub phases: Vec<(String, std::time::Duration)>,
    #[serde(default)]
    timeline: Option<Timeline>,
    #[serde(default)]
    operations: Vec<RecordedOperation>,
    #[serde(default)]
    claims: Vec<RecordedClaim>,
    #[serde(default)]
    reverted: Vec<String>,
    /// Where it was read from: a report's `results.json` or a recording.
    #[serde(skip)]
    pub source: Source,
}

/// Where a recorded scenario was read from.
#[derive(Clone, Debug, Default)]
pub(super) enum Source {
    /// A report directory's `results.json`.
    #[default]
    Report,
    /// A recording (`firedrill record`), by its file.
    Recording(PathBuf),
}

impl From<(PathBuf, Recording)> for Recorded {
    fn from((path, r): (PathBuf, Recording)) -> Recorded {
        let b = r.body;
        let operations = b
            .operations
            .iter()
            .map(|o| RecordedOperation { id: o.id.clone(), samples: recording::Body::samples(o), not_observed: o.not_observed.clone() })
            .collect();
        Recorded {
            suite: b.suite,
            scenario: b.scenario,
            verdict: RecordedVerdict { verdict: b.verdict, error: None, reason: None },
            round: b.round,
            backend: Some(b.backend),
            started_at: b.started_at,
            took: b.took,
            phases: b.phases,
            timeline: Some(b.timeline),
            operations,
            claims: b.claims.into_iter().map(|c| RecordedClaim { claim: c.claim, holds: c.holds, detail: c.detail }).collect(),
            reverted: b.reverted,
            source: Source::Recording(path),
        }
    }
}

impl Recorded {
    /// The recording of this scenario, when the live run matched its document and left a
    /// timeline to judge again; else why it cannot be recorded.
    pub(super) fn to_recording(&self, recorded_from: &str) -> Result<Recording, String> {
        if self.verdict.verdict != "match" {
            let why = self.verdict.why().map(|w| format!(": {w}")).unwrap_or_default();
            return Err(format!("the live run's verdict is `{}`{why}; only a scenario that matched its document is recorded", self.verdict.verdict));
        }
        let timeline = self.timeline.clone().ok_or("the run recorded no timeline (a report older than recordings)")?;
        let backend = self.backend.ok_or("the run does not say which backend it ran on (a report older than recordings)")?;
        Ok(Recording::new(recording::Body {
            suite: self.suite.clone(),
            scenario: self.scenario.clone(),
            backend,
            verdict: self.verdict.verdict.clone(),
            started_at: self.started_at,
            round: self.round.max(1),
            recorded_from: recorded_from.to_string(),
            took: self.took,
            phases: self.phases.clone(),
            timeline,
            operations: self.operations.iter().map(|o| recording::Operation::new(o.id.clone(), o.not_observed.clone(), &o.samples)).collect(),
            claims: self.claims.iter().map(|c| recording::RecordedClaim { claim: c.claim, holds: c.holds, detail: c.detail.clone() }).collect(),
            reverted: self.reverted.clone(),
        }))
    }

    /// `suite::scenario`, with the backend when it was read from a recording.
    pub(super) fn name(&self) -> String {
        match (&self.source, self.backend) {
            (Source::Recording(_), Some(b)) => format!("{}::{} [{}]", self.suite, self.scenario, b.name()),
            _ => format!("{}::{}", self.suite, self.scenario),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RecordedVerdict {
    pub verdict: String,
    /// A harness error's message, a not-runnable scenario's reason.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl Recorded {
    /// What the recording says of the run beside the verdict: round, backend, start, time
    /// taken, phases.
    fn carry_into(&self, result: &mut ScenarioResult) {
        result.round = self.round.max(1);
        result.backend = self.backend;
        result.started_at = self.started_at;
        result.took = self.took;
        result.phases = self.phases.clone();
        result.reverted = self.reverted.clone();
    }
}

impl RecordedVerdict {
    /// A harness error's message or a not-runnable scenario's reason, as recorded.
    pub fn why(&self) -> Option<&str> {
        self.error.as_deref().or(self.reason.as_deref())
    }
}

#[derive(Deserialize, Clone)]
struct RecordedOperation {
    id: String,
    #[serde(default)]
    samples: Vec<Sample>,
    /// Why the backend could not observe it, if it could not.
    #[serde(default)]
    not_observed: Option<String>,
}

#[derive(Deserialize)]
struct RecordedClaim {
    claim: Claim,
    holds: bool,
    detail: String,
}

pub struct CheckArgs {
    /// A report directory (`--report DIR`) or its `results.json`.
    pub recorded: PathBuf,
    /// A suite file that replaces the suite of the same name.
    pub suite: Option<PathBuf>,
    pub suites: Option<PathBuf>,
    pub snapshots: Option<PathBuf>,
}

/// The suites of `suites` (default: the repository's), `suite` replacing the one of its name.
pub(super) fn load_suites(paths: &Paths, suites: Option<&Path>, suite: Option<&Path>) -> Result<Vec<Suite>, String> {
    let dir = suites.unwrap_or(&paths.suites);
    let mut suites = crate::suite::load_dir(dir, &paths.fixtures).map_err(|e| e.to_string())?;
    if let Some(file) = suite {
        let s = crate::suite::load_file(file, &paths.fixtures).map_err(|e| e.to_string())?;
        match suites.iter_mut().find(|x| x.id() == s.id()) {
            Some(slot) => *slot = s,
            None => suites.push(s),
        }
    }
    Ok(suites)
}

/// Re-judge one recorded scenario; `None` when the live run reached no verdict on the
/// system (a harness error — also one that came after the table, such as a failed revert —
/// or a scenario not runnable): that verdict stands as recorded.
pub(super) fn rejudge(r: &Recorded, suites: &[Suite], snapshots: &Path) -> Result<Option<ScenarioResult>, String> {
    if !matches!(r.verdict.verdict.as_str(), "match" | "mismatch") {
        return Ok(None);
    }
    let Some(timeline) = r.timeline.clone() else { return Ok(None) };
    let suite = suites.iter().find(|s| s.id() == r.suite).ok_or_else(|| format!("no suite `{}` in the suites checked against", r.suite))?;
    let sc = suite.spec.scenarios.iter().find(|s| s.id.value == r.scenario).ok_or_else(|| format!("suite {} has no scenario `{}`", r.suite, r.scenario))?;
    let samples: BTreeMap<String, Vec<Sample>> = r.operations.iter().map(|o| (o.id.clone(), o.samples.clone())).collect();
    let not_observed: BTreeMap<String, String> = r.operations.iter().filter_map(|o| Some((o.id.clone(), o.not_observed.clone()?))).collect();
    let operations = verdict::operations(suite, sc, &samples, &not_observed, &timeline)?;
    verdict::recovered(suite, &operations).map_err(|e| format!("not recovered, as judged now: {e}"))?;
    let claims = r.claims.iter().map(|c| ClaimResult { claim: c.claim, holds: c.holds, detail: c.detail.clone(), derived: None }).collect();
    let mut result = verdict::scenario(suite, sc, operations, claims, timeline);
    r.carry_into(&mut result);
    result.compare_with_snapshot(snapshots, false);
    Ok(Some(result))
}

/// The `results.json` of a report directory (or that file itself).
pub(super) fn results_file(recorded: &Path) -> PathBuf {
    if recorded.is_dir() { recorded.join("results.json") } else { recorded.to_path_buf() }
}

/// The scenarios a report directory records, or a directory of recordings (`recordings/`,
/// or one backend's part of it), or one recording; else `file: why not`.
pub(super) fn load_recorded(recorded: &Path) -> Result<Vec<Recorded>, String> {
    if recorded.is_dir() && !recorded.join("results.json").exists() {
        return load_recordings(recorded);
    }
    if recorded.is_file() && is_recording(recorded) {
        return Ok(vec![(recorded.to_path_buf(), Recording::read(recorded).map_err(|e| e.to_string())?).into()]);
    }
    let file = results_file(recorded);
    std::fs::read_to_string(&file)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("{e} (expected the results.json `firedrill run --report` writes)")))
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// A recording's JSON is an object with its `format`; a report's `results.json` is a list.
fn is_recording(file: &Path) -> bool {
    std::fs::read(file).is_ok_and(|b| b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{'))
}

/// Every recording under `dir`: `BACKEND/SUITE__SCENARIO.json`, or the files of `dir` when
/// it is one backend's directory.
fn load_recordings(dir: &Path) -> Result<Vec<Recorded>, String> {
    let in_backend_dir = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| crate::backend::BackendKind::from_name(n).is_some());
    let files = if in_backend_dir {
        let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        f.sort();
        f
    } else {
        recording::files(dir).map_err(|e| format!("{}: {e}", dir.display()))?
    };
    if files.is_empty() {
        return Err(format!(
            "{}: no results.json and no recording (BACKEND/SUITE__SCENARIO.json): expected a report directory or the recordings `firedrill record` writes",
            dir.display()
        ));
    }
    files.into_iter().map(|f| Recording::read(&f).map(|r| (f, r).into()).map_err(|e| e.to_string())).collect()
}

/// The recorded verdict of a scenario that is not judged again, as a result for a report.
pub(super) fn as_recorded(r: &Recorded, suites: &[Suite]) -> Option<ScenarioResult> {
    let suite = suites.iter().find(|s| s.id() == r.suite)?;
    let sc = suite.spec.scenarios.iter().find(|s| s.id.value == r.scenario)?;
    let why = r.verdict.why().unwrap_or_default().to_string();
    let verdict = match r.verdict.verdict.as_str() {
        "not-runnable" => Verdict::NotRunnable { reason: why },
        "match" => Verdict::Match,
        "mismatch" => Verdict::Mismatch { diff: "recorded as a mismatch; the recording holds no timeline to judge again".into() },
        _ => Verdict::HarnessError { error: why },
    };
    let mut result = ScenarioResult::without_table(suite, sc, verdict);
    r.carry_into(&mut result);
    Some(result)
}

pub fn check(paths: Paths, args: CheckArgs, report: Option<PathBuf>) -> ExitCode {
    // The recording is evidence: its reports are never written over.
    if let Some(dir) = &report {
        let recorded_dir =
            results_file(&args.recorded).parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        if dir.canonicalize().ok().is_some_and(|d| recorded_dir.canonicalize().ok() == Some(d)) {
            eprintln!("error: --report {}: that is the recorded run's own report directory; name another", dir.display());
            return ExitCode::from(EXIT_HARNESS);
        }
    }
    let recorded = match load_recorded(&args.recorded) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    let suites = match load_suites(&paths, args.suites.as_deref(), args.suite.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    let snapshots = args.snapshots.clone().unwrap_or_else(|| paths.snapshots.clone());
    let (mut matched, mut differs, mut harness) = (0, 0, 0);
    let mut changed = 0;
    let mut results = Vec::new();
    for r in &recorded {
        let repeated = matches!(r.source, Source::Report) && recorded.iter().any(|x| x.round > 1);
        let name = format!("{}{}", r.name(), if repeated { format!(" (round {})", r.round) } else { String::new() });
        match rejudge(r, &suites, &snapshots) {
            Ok(Some(result)) => {
                let now = result.verdict.tag();
                let same = now == r.verdict.verdict;
                changed += usize::from(!same);
                let live = match &r.source {
                    Source::Report if same => " (as the live run)".to_string(),
                    Source::Report => format!(" (the live run: {})", r.verdict.verdict),
                    Source::Recording(_) if same => " (as recorded)".to_string(),
                    Source::Recording(file) => format!(
                        " (recorded: {}): re-record {}::{} — run it live and `firedrill record` the report into {}, or the change to its suite or snapshot is wrong",
                        r.verdict.verdict,
                        r.suite,
                        r.scenario,
                        file.parent().and_then(Path::parent).unwrap_or(Path::new("recordings")).display()
                    ),
                };
                // As the live run says it: a match in the rows this backend observes.
                let rows = if matches!(result.verdict, Verdict::Match) { crate::report::observed_rows(&result) } else { String::new() };
                println!("=> {name}: {}{rows}{live}", verdict_word(&result.verdict));
                if let Verdict::Mismatch { diff } = &result.verdict {
                    println!("{diff}");
                }
                match result.verdict {
                    Verdict::Match => matched += 1,
                    Verdict::Mismatch { .. } => differs += 1,
                    _ => harness += 1,
                }
                results.push(result);
            }
            Ok(None) => {
                println!("=> {name}: {} (as recorded: the live run reached no verdict on the system to judge again)", r.verdict.verdict);
                match r.verdict.verdict.as_str() {
                    "match" => matched += 1,
                    "mismatch" => differs += 1,
                    _ => harness += 1,
                }
                results.extend(as_recorded(r, &suites));
            }
            Err(e) => {
                let advice = if matches!(r.source, Source::Recording(_)) { format!(" (re-record {}::{})", r.suite, r.scenario) } else { String::new() };
                println!("=> {name}: cannot be judged again: {e}{advice}");
                harness += 1;
                results.extend(as_recorded(r, &suites).map(|mut x| {
                    x.verdict = Verdict::HarnessError { error: format!("cannot be judged again: {e}") };
                    x
                }));
            }
        }
    }
    println!(
        "firedrill check: {matched} of {} scenarios match; {differs} differ; {harness} without a verdict; {changed} verdict(s) differ from the live run's{}",
        recorded.len(),
        if recorded.iter().any(|r| matches!(r.source, Source::Recording(_))) { " as recorded" } else { "" }
    );
    if let Some(dir) = report {
        match crate::report::write_all(&dir, &results, None) {
            Ok(()) => println!("reports of the re-judged run in {}", dir.display()),
            Err(e) => {
                eprintln!("error: writing the reports into {}: {e}", dir.display());
                return ExitCode::from(EXIT_HARNESS);
            }
        }
    }
    if harness > 0 {
        ExitCode::from(EXIT_HARNESS)
    } else if differs > 0 {
        ExitCode::from(EXIT_MISMATCH)
    } else {
        ExitCode::from(EXIT_MATCH)
    }
}
