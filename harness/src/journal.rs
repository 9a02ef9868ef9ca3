//! The fault journal: written before any change, replayed in reverse to undo.
//!
//! Each fault gets a `planned` line — the run, the scenario, the fault and the prior state
//! needed to undo it — flushed to disk *before* the fault touches anything, and a
//! `reverted` line once its undo succeeded. Whatever happens in between (a panic, Ctrl-C,
//! SIGKILL, a power cut), `pending()` lists what may still be in place and
//! `firedrill recover` undoes it. Undo is idempotent, so replaying an entry whose fault
//! never fully applied, or was already reverted, is harmless.
//!
//! A crash mid-write leaves a torn last line (no newline): it is ignored when read (a
//! torn `planned` line's fault was never started; a torn `reverted` line's fault is
//! reverted again, harmlessly) and cut off before the next line is appended, so that
//! line is never glued onto it. Anything else that cannot be read (an I/O error, bytes
//! that are not UTF-8, a complete line that does not parse) is an error, never an empty
//! journal: what it holds may be a fault in place.

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

/// How many bytes of `bytes` are complete lines: everything up to the last newline (a torn
/// last line is what follows it).
fn complete(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
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

    fn error(&self, source: std::io::Error) -> JournalError {
        JournalError { path: self.path.clone(), source }
    }

    /// Every complete line; a torn last line is left out. No journal is an empty one.
    fn lines(&self) -> Result<Vec<Line>, JournalError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(self.error(e)),
        };
        let text = std::str::from_utf8(&bytes[..complete(&bytes)]).map_err(|e| self.error(invalid(format!("not UTF-8 at byte {}", e.valid_up_to()))))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| self.error(invalid(format!("line {}: {e}", i + 1)))))
            .collect()
    }

    /// Append one line and sync it: a torn last line is cut off first; a journal this
    /// creates is made durable in its directory too.
    fn append(&self, line: &Line) -> Result<(), JournalError> {
        let err = |source| self.error(source);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let created = !self.path.exists();
        let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(&self.path).map_err(err)?;
        if f.metadata().map_err(err)?.len() > 0 {
            let bytes = std::fs::read(&self.path).map_err(err)?;
            let keep = complete(&bytes);
            if keep < bytes.len() {
                f.set_len(keep as u64).map_err(err)?;
            }
        }
        let mut text = serde_json::to_string(line).expect("journal lines serialise");
        text.push('\n');
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        if created {
            crate::files::sync_dir(dir).map_err(err)?;
        }
        Ok(())
    }

    /// Record a fault about to be injected; returns its sequence number.
    pub fn plan(&self, run: &str, scenario: &str, fault: &FaultSpec, undo: &Undo) -> Result<u64, JournalError> {
        let seq = self
            .lines()?
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

    /// Planned and not reverted, oldest first (revert them newest first). An error when
    /// the journal cannot be read: what it holds may be a fault in place.
    pub fn pending(&self) -> Result<Vec<Entry>, JournalError> {
        let lines = self.lines()?;
        let done: Vec<u64> = lines.iter().filter_map(|l| if let Line::Reverted { seq, .. } = l { Some(*seq) } else { None }).collect();
        Ok(lines.into_iter().filter_map(|l| if let Line::Planned(e) = l { Some(e) } else { None }).filter(|e| !done.contains(&e.seq)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault() -> (FaultSpec, Undo) {
        (FaultSpec::StopHost { host: "lb".into(), signal: Default::default() }, Undo::StartHost { host: "lb".into() })
    }

    fn seqs(j: &Journal) -> Vec<u64> {
        j.pending().unwrap().iter().map(|e| e.seq).collect()
    }

    #[test]
    fn planned_without_reverted_is_pending_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(dir.path());
        let (f, u) = fault();
        let a = j.plan("r", "s::a", &f, &u).unwrap();
        let b = j.plan("r", "s::b", &f, &u).unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(seqs(&j), vec![1, 2]);
        j.reverted(1).unwrap();
        assert_eq!(seqs(&j), vec![2]);
        j.reverted(2).unwrap();
        assert!(j.pending().unwrap().is_empty());
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
        assert_eq!(seqs(&j), vec![1]);
    }

    /// Before, the next line was glued onto the torn one and both were dropped as
    /// unparseable: `recover` missed the fault planned right after a crash.
    #[test]
    fn a_torn_last_line_is_cut_off_before_the_next_line_so_that_line_counts() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(dir.path());
        let (f, u) = fault();
        j.plan("r", "s::a", &f, &u).unwrap();
        // A crash while writing the revert of #1 (multi-byte text cut mid-character too).
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.path())
            .unwrap()
            .write_all("{\"event\":\"reverted\",\"at\":\"é".as_bytes().split_last().unwrap().1)
            .unwrap();
        let b = j.plan("r", "s::b", &f, &u).unwrap();
        assert_eq!(b, 2);
        assert_eq!(seqs(&j), vec![1, 2], "#1's revert was torn (reverted again, harmlessly); #2 is pending");
        let text = std::fs::read_to_string(j.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    /// Before, anything unreadable read as an empty journal: `run` went ahead and
    /// `recover` said "nothing to revert" with a fault in place.
    #[test]
    fn an_unreadable_journal_is_an_error_not_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(dir.path());
        let (f, u) = fault();
        j.plan("r", "s", &f, &u).unwrap();
        let mut bytes = std::fs::read(j.path()).unwrap();
        bytes.splice(0..0, b"{\"event\":\"planned\",\xff}\n".iter().copied());
        std::fs::write(j.path(), &bytes).unwrap();
        let e = j.pending().unwrap_err();
        assert!(crate::error::chain(&e).contains("not UTF-8"), "{}", crate::error::chain(&e));
        std::fs::write(j.path(), b"{\"event\":\"planned\"}\n").unwrap();
        let e = crate::error::chain(&j.pending().unwrap_err());
        assert!(e.contains("line 1"), "{e}");
        assert!(j.plan("r", "s", &f, &u).is_err(), "nothing is planned on a journal that cannot be read");
        std::fs::remove_file(j.path()).unwrap();
        std::fs::create_dir(j.path()).unwrap();
        assert!(j.pending().is_err(), "a read error is an error");
    }
}
