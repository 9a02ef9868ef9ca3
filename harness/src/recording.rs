//! Recordings: one scenario of a real run, kept compact under `recordings/BACKEND/` and
//! committed, so that `firedrill check recordings/` reaches every scenario's verdict again
//! from what was observed — every probe attempt with its time and reason, the timeline,
//! the claims' post-checks — against today's suites and snapshots, without a cluster.
//!
//! A recording is written only by `firedrill record REPORT_DIR` from a live run's
//! `results.json`, and only for a scenario that matched its document. It carries a digest
//! of its content: a recording edited by hand no longer carries the digest of what it
//! says, and is refused when read. To change one, run the scenario live and record again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::BackendKind;
use crate::model::{Outcome, Sample};
use crate::runner::events::Timeline;
use crate::suite::Claim;

/// The format this code writes and reads.
pub const FORMAT: u32 = 1;

/// The file of a scenario's recording under `dir` (`recordings/`): one directory per
/// backend, one file per scenario, named as its snapshot is.
pub fn file(dir: &Path, backend: BackendKind, suite: &str, scenario: &str) -> PathBuf {
    dir.join(backend.name()).join(format!("{suite}__{scenario}.json"))
}

/// One recorded scenario, as written to its file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub format: u32,
    /// `sha256:` of [`Body`]'s JSON: what `firedrill record` wrote, not a hand edit.
    pub digest: String,
    #[serde(flatten)]
    pub body: Body,
}

/// What a recording holds of its scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub suite: String,
    pub scenario: String,
    pub backend: BackendKind,
    /// The live run's verdict (`match`): what replaying must reach again.
    pub verdict: String,
    /// The run it was recorded from: its start, its round, and the report it was taken from.
    pub started_at: Option<jiff::Timestamp>,
    pub round: u32,
    pub recorded_from: String,
    pub took: Duration,
    pub phases: Vec<(String, Duration)>,
    pub timeline: Timeline,
    pub operations: Vec<Operation>,
    pub claims: Vec<RecordedClaim>,
    /// What the run reverted, in its words.
    pub reverted: Vec<String>,
}

/// One operation's attempts. Each attempt is `[start ns, duration ns, outcome, reason]`
/// on the scenario's clock, the reason an index into `reasons` (null when it had none):
/// a reason is written once however many attempts gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_observed: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub attempts: Vec<(u64, u64, Outcome, Option<u32>)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedClaim {
    pub claim: Claim,
    pub holds: bool,
    pub detail: String,
}

/// Why a recording cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message} (expected a recording `firedrill record` writes)")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: format {found}, this firedrill reads format {FORMAT}; record the scenario again")]
    Format { path: PathBuf, found: u32 },
    #[error(
        "{path}: its content does not carry its digest ({expected}, the content's is {actual}): a recording is written by `firedrill record` from a live run, never edited (or this firedrill writes recordings differently); record {suite}::{scenario} again"
    )]
    Edited { path: PathBuf, expected: String, actual: String, suite: String, scenario: String },
    #[error("{path}: it records {what}, but its file name says {name}")]
    Misplaced { path: PathBuf, what: String, name: String },
}

impl Body {
    fn digest(&self) -> String {
        let json = serde_json::to_vec(self).expect("a recording serialises");
        let hash = Sha256::digest(&json);
        format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub fn name(&self) -> String {
        format!("{}::{}", self.suite, self.scenario)
    }

    /// The attempts of `operation`, as the sampler took them.
    pub fn samples(op: &Operation) -> Vec<Sample> {
        op.attempts
            .iter()
            .map(|&(at, took, outcome, reason)| Sample {
                at: Duration::from_nanos(at),
                took: Duration::from_nanos(took),
                outcome,
                detail: reason.and_then(|i| op.reasons.get(i as usize).cloned()),
            })
            .collect()
    }
}

impl Operation {
    /// An operation's attempts in the compact form, every reason written once.
    pub fn new(id: String, not_observed: Option<String>, samples: &[Sample]) -> Operation {
        let mut reasons: Vec<String> = Vec::new();
        let attempts = samples
            .iter()
            .map(|s| {
                let reason = s.detail.as_ref().map(|d| match reasons.iter().position(|r| r == d) {
                    Some(i) => i as u32,
                    None => {
                        reasons.push(d.clone());
                        (reasons.len() - 1) as u32
                    }
                });
                (nanos(s.at), nanos(s.took), s.outcome, reason)
            })
            .collect();
        Operation { id, not_observed, reasons, attempts }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Recording {
    pub fn new(body: Body) -> Recording {
        Recording { format: FORMAT, digest: body.digest(), body }
    }

    /// The recording's JSON as written to its file: one attempt per line, so that a
    /// re-recording's diff reads as attempts that changed.
    pub fn to_json(&self) -> String {
        let pretty = serde_json::to_string_pretty(self).expect("a recording serialises");
        // serde_json writes each attempt's four fields on lines of their own; fold them.
        let mut out = String::with_capacity(pretty.len());
        let mut lines = pretty.lines().peekable();
        while let Some(line) = lines.next() {
            let opens_attempt = line.trim_end().ends_with('[') && lines.peek().is_some_and(|l| l.trim().chars().next().is_some_and(|c| c.is_ascii_digit()));
            if opens_attempt {
                out.push_str(line.trim_end());
                for inner in lines.by_ref() {
                    let t = inner.trim();
                    if t.starts_with(']') {
                        out.push_str(t);
                        break;
                    }
                    out.push_str(t);
                    if t.ends_with(',') {
                        out.push(' ');
                    }
                }
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    }

    /// Read and verify one recording: its format, its digest, and that its file is named
    /// for the scenario and backend it records.
    pub fn read(path: &Path) -> Result<Recording, RecordingError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecordingError::Read { path: path.into(), source })?;
        let r = Self::parse(path, &text)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let in_dir = path.parent().and_then(Path::file_name).map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
        let expected = format!("{}__{}.json", r.body.suite, r.body.scenario);
        if name != expected || in_dir != r.body.backend.name() {
            return Err(RecordingError::Misplaced {
                path: path.into(),
                what: format!("{} on the {} backend", r.body.name(), r.body.backend.name()),
                name: format!("{in_dir}/{name}"),
            });
        }
        Ok(r)
    }

    /// Parse and verify a recording's text (its format and digest).
    pub fn parse(path: &Path, text: &str) -> Result<Recording, RecordingError> {
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head = serde_json::from_str(text).map_err(|e| RecordingError::Parse { path: path.into(), message: e.to_string() })?;
        if head.format != FORMAT {
            return Err(RecordingError::Format { path: path.into(), found: head.format });
        }
        let r: Recording = serde_json::from_str(text).map_err(|e| RecordingError::Parse { path: path.into(), message: e.to_string() })?;
        let actual = r.body.digest();
        if actual != r.digest {
            return Err(RecordingError::Edited {
                path: path.into(),
                expected: r.digest.clone(),
                actual,
                suite: r.body.suite.clone(),
                scenario: r.body.scenario.clone(),
            });
        }
        Ok(r)
    }
}

/// Every recording file under `dir` (`BACKEND/SUITE__SCENARIO.json`), sorted.
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for backend in std::fs::read_dir(dir)? {
        let backend = backend?.path();
        if !backend.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&backend)? {
            let f = f?.path();
            if f.extension().is_some_and(|e| e == "json") {
                out.push(f);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Body {
        let samples = vec![
            Sample { at: Duration::from_nanos(1_000_000_001), took: Duration::from_millis(3), outcome: Outcome::Ok, detail: None },
            Sample { at: Duration::from_millis(1500), took: Duration::from_millis(4), outcome: Outcome::Failed, detail: Some("connection refused".into()) },
            Sample { at: Duration::from_millis(2000), took: Duration::from_millis(5), outcome: Outcome::Failed, detail: Some("connection refused".into()) },
            Sample { at: Duration::from_millis(2500), took: Duration::from_millis(5), outcome: Outcome::Partial, detail: Some("east: timed out".into()) },
        ];
        Body {
            suite: "s".into(),
            scenario: "a".into(),
            backend: BackendKind::Local,
            verdict: "match".into(),
            started_at: None,
            round: 1,
            recorded_from: "reports/latest".into(),
            took: Duration::from_secs(90),
            phases: vec![("fault".into(), Duration::from_secs(20))],
            timeline: Timeline::default(),
            operations: vec![Operation::new("op".into(), None, &samples)],
            claims: vec![],
            reverted: vec!["scale restored".into()],
        }
    }

    #[test]
    fn attempts_come_back_exactly_with_each_reason_written_once() {
        let b = body();
        let op = &b.operations[0];
        assert_eq!(op.reasons, vec!["connection refused".to_string(), "east: timed out".to_string()]);
        let back = Body::samples(op);
        assert_eq!(back[0].at, Duration::from_nanos(1_000_000_001));
        assert_eq!(back[2].detail.as_deref(), Some("connection refused"));
        assert_eq!(back[3].outcome, Outcome::Partial);
        let r = Recording::new(b);
        let text = r.to_json();
        assert!(text.contains("[1000000001, 3000000, \"ok\", null]"), "one attempt a line:\n{text}");
        assert_eq!(Recording::parse(Path::new("x.json"), &text).expect("reads back"), r);
    }

    #[test]
    fn a_recording_edited_by_hand_is_refused() {
        let text = Recording::new(body()).to_json().replace("\"failed\", 0]", "\"ok\", 0]");
        let e = Recording::parse(Path::new("x.json"), &text).expect_err("an edited attempt");
        assert!(e.to_string().contains("never edited") && e.to_string().contains("record s::a again"), "{e}");
    }

    #[test]
    fn another_format_is_named() {
        let text = Recording::new(body()).to_json().replacen("\"format\": 1", "\"format\": 9", 1);
        let e = Recording::parse(Path::new("x.json"), &text).expect_err("format 9");
        assert!(e.to_string().contains("format 9, this firedrill reads format 1"), "{e}");
    }
}
