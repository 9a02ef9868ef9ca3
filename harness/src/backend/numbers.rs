//! Run numbers claimed machine-wide. A run's number decides its addresses and the names of
//! what it creates (`fd3br`, `fd-kind-2`), so two runs must never hold the same one, even
//! when they are recorded in different state directories (a developer's kept run and a
//! test's temporary one). Each claim is a symlink `BACKEND-N` in [`machine_dir`] pointing
//! at the run directory that holds it, made under one lock; a claim whose run directory
//! is gone (taken down, or its state directory removed) is free again.

use std::path::{Path, PathBuf};

use super::BackendError;

/// `/run/firedrill` for root (cleared at boot, like the namespaces and links a number
/// names), else `$XDG_RUNTIME_DIR/firedrill`, else a directory of the user's in `/tmp`.
pub fn machine_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/firedrill");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(p) => PathBuf::from(p).join("firedrill"),
        None => PathBuf::from(format!("/tmp/firedrill-{}", nix::unistd::geteuid())),
    }
}

/// Claim the lowest number of `candidates` that no live claim holds and `taken` does not
/// reject (what is on the machine already: a bridge, a Docker network), for `run_dir`.
pub fn claim(backend: &str, candidates: impl Iterator<Item = u8>, run_dir: &Path, taken: impl Fn(u8) -> bool) -> Result<Option<u8>, BackendError> {
    claim_in(&machine_dir(), backend, candidates, run_dir, taken)
}

/// Create `run_dir` and [`claim`] a number for it; when none is free (or the claim fails)
/// the directory is removed again and the error says so, `what` naming the numbers
/// (`backend`: "local", "kind") and `count` how many there are.
pub fn reserve(backend: &str, count: usize, candidates: impl Iterator<Item = u8>, run_dir: &Path, taken: impl Fn(u8) -> bool) -> Result<u8, BackendError> {
    std::fs::create_dir_all(run_dir).map_err(|e| BackendError::io(run_dir, e))?;
    match claim(backend, candidates, run_dir, taken) {
        Ok(Some(n)) => Ok(n),
        other => {
            let _ = std::fs::remove_dir(run_dir);
            other?;
            Err(BackendError::Setup(format!(
                "all {count} {backend} run numbers are in use on this machine; `firedrill down --all` takes down this state directory's runs, `firedrill sweep` lists what no run records"
            )))
        }
    }
}

fn lock(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, BackendError> {
    std::fs::create_dir_all(dir).map_err(|e| BackendError::io(dir, e))?;
    let lock_path = dir.join("lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| BackendError::io(&lock_path, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| BackendError::Setup(format!("locking {}: {e}", lock_path.display())))
}

/// `f`, holding the lock claims are made under (not to be nested with [`claim`]).
pub fn locked<T>(f: impl FnOnce() -> T) -> Result<T, BackendError> {
    let _lock = lock(&machine_dir())?;
    Ok(f())
}

/// How many numbers of `backend` live runs hold on this machine.
pub fn held(backend: &str) -> usize {
    let prefix = format!("{backend}-");
    std::fs::read_dir(machine_dir())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|holder| holder.exists()))
        .count()
}

fn claim_in(dir: &Path, backend: &str, candidates: impl Iterator<Item = u8>, run_dir: &Path, taken: impl Fn(u8) -> bool) -> Result<Option<u8>, BackendError> {
    let _lock = lock(dir)?;
    for n in candidates {
        let link = dir.join(format!("{backend}-{n}"));
        if let Ok(holder) = std::fs::read_link(&link) {
            if holder.exists() {
                continue;
            }
            std::fs::remove_file(&link).map_err(|e| BackendError::io(&link, e))?;
        }
        if taken(n) {
            continue;
        }
        std::os::unix::fs::symlink(run_dir, &link).map_err(|e| BackendError::io(&link, e))?;
        return Ok(Some(n));
    }
    Ok(None)
}

/// Give back what `run_dir` holds (its `down`); another run's claim is left. A claim left
/// behind (a run directory removed by hand) is free all the same.
pub fn release(run_dir: &Path) {
    release_in(&machine_dir(), run_dir)
}

fn release_in(dir: &Path, run_dir: &Path) {
    for link in std::fs::read_dir(dir).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())) {
        if std::fs::read_link(&link).is_ok_and(|holder| holder == run_dir) {
            let _ = std::fs::remove_file(&link);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two state directories' runs never share a number; a claim whose run is gone is free.
    #[test]
    fn a_number_is_held_across_state_directories_until_its_run_is_gone() {
        let numbers = tempfile::tempdir().unwrap();
        let m = numbers.path();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let run_a = a.path().join("runs/x");
        let run_b = b.path().join("runs/x");
        std::fs::create_dir_all(&run_a).unwrap();
        std::fs::create_dir_all(&run_b).unwrap();
        assert_eq!(claim_in(m, "local", 1..=3, &run_a, |_| false).unwrap(), Some(1));
        assert_eq!(claim_in(m, "local", 1..=3, &run_b, |n| n == 2).unwrap(), Some(3), "1 is a's, 2 is taken on the machine");
        assert_eq!(claim_in(m, "kind", 1..=3, &run_b, |_| false).unwrap(), Some(1), "each backend has its own numbers");
        assert_eq!(claim_in(m, "local", 1..=3, &run_b, |_| false).unwrap(), Some(2), "no longer taken");
        assert_eq!(claim_in(m, "local", 1..=3, &run_b, |_| false).unwrap(), None, "every number held");
        release_in(m, &run_b);
        assert_eq!(claim_in(m, "local", 1..=3, &run_b, |_| false).unwrap(), Some(2), "b gave back 2 and 3, not a's 1");
        std::fs::remove_dir_all(&run_a).unwrap();
        assert_eq!(claim_in(m, "local", 1..=3, &run_b, |_| false).unwrap(), Some(1), "a's run is gone: its number is free");
    }
}
