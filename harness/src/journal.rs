//! The fault journal: written before any change, replayed in reverse to undo.
//!
//! Each fault gets a `planned` line — the run, the scenario, the fault and the prior state
//! needed to undo it — flushed to disk *before* the fault touches anything, and a
//! `reverted` line once its undo succeeded. Whatever happens in between (a panic, Ctrl-C,
//! SIGKILL, a power cut), `pending()` lists what may still be in place and
//! `firedrill recover` undoes it. Undo is idempotent, so replaying an entry whose fault
//! never fully applied, or was already reverted, is harmless.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fault::{FaultSpec, Undo};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub run: String,
    pub scenario: String,
    pub fault: FaultSpec,
    pub undo: Undo,
    pub at: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
enum Line {
    Planned(Entry),
    Reverted { seq: u64, at: String },
}

#[derive(Debug, thiserror::Error)]
#[error("fault journal {path}")]
pub struct JournalError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

#[derive(Clone, Debug)]
pub struct Journal {
    path: PathBuf,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Journal {
    pub fn at(run_dir: &Path) -> Journal {
        Journal { path: run_dir.join("journal.jsonl") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lines(&self) -> Vec<Line> {
        // A torn last line (crash mid-write) is skipped: its fault was never started.
        std::fs::read_to_string(&self.path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn append(&self, line: &Line) -> Result<(), JournalError> {
        let err = |source| JournalError { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(err)?;
        let mut text = serde_json::to_string(line).expect("journal lines serialise");
        text.push('\n');
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)
    }

    /// Record a fault about to be injected; returns its sequence number.
    pub fn plan(&self, run: &str, scenario: &str, fault: &FaultSpec, undo: &Undo) -> Result<u64, JournalError> {
        let seq = self
            .lines()
            .iter()
            .map(|l| match l {
                Line::Planned(e) => e.seq,
                Line::Reverted { seq, .. } => *seq,
            })
            .max()
            .unwrap_or(0)
            + 1;
        let entry = Entry { seq, run: run.into(), scenario: scenario.into(), fault: fault.clone(), undo: undo.clone(), at: now() };
        self.append(&Line::Planned(entry))?;
        Ok(seq)
    }

    pub fn reverted(&self, seq: u64) -> Result<(), JournalError> {
        self.append(&Line::Reverted { seq, at: now() })
    }

    /// Planned and not reverted, oldest first (revert them newest first).
    pub fn pending(&self) -> Vec<Entry> {
        let lines = self.lines();
        let done: Vec<u64> = lines.iter().filter_map(|l| if let Line::Reverted { seq, .. } = l { Some(*seq) } else { None }).collect();
        lines.into_iter().filter_map(|l| if let Line::Planned(e) = l { Some(e) } else { None }).filter(|e| !done.contains(&e.seq)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault() -> (FaultSpec, Undo) {
        (FaultSpec::StopHost { host: "lb".into(), signal: Default::default() }, Undo::StartHost { host: "lb".into() })
    }

    #[test]
    fn planned_without_reverted_is_pending_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(dir.path());
        let (f, u) = fault();
        let a = j.plan("r", "s::a", &f, &u).unwrap();
        let b = j.plan("r", "s::b", &f, &u).unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(j.pending().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        j.reverted(1).unwrap();
        assert_eq!(j.pending().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
        j.reverted(2).unwrap();
        assert!(j.pending().is_empty());
        // Numbers keep increasing after everything was reverted.
        assert_eq!(j.plan("r", "s::c", &f, &u).unwrap(), 3);
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(dir.path());
        let (f, u) = fault();
        j.plan("r", "s", &f, &u).unwrap();
        std::fs::OpenOptions::new().append(true).open(j.path()).unwrap().write_all(b"{\"event\":\"reverted\",\"se").unwrap();
        assert_eq!(j.pending().len(), 1);
    }
}
