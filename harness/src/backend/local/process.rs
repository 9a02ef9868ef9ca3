//! Processes of a local run: started through the shim into their own cgroup, stopped
//! with SIGTERM, a grace period, then SIGKILL to the whole cgroup.
//!
//! Every process lives in a cgroup under the run's cgroup, so whatever a crash leaves
//! behind, `firedrill down` finds and kills it by walking that tree.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Child;

use super::shim::ExecSpec;
use crate::backend::BackendError;

/// The cgroup v2 mount point of this machine, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Result<PathBuf, BackendError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| BackendError::io(Path::new("/proc/self/mountinfo"), e))?;
    info.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            if post.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            pre.split_whitespace().nth(4).map(PathBuf::from)
        })
        .ok_or_else(|| BackendError::Setup("no cgroup v2 hierarchy is mounted; the local backend tracks every process it starts in one".into()))
}

/// The directory under which every run's cgroup is created.
pub fn cgroup_root() -> Result<PathBuf, BackendError> {
    Ok(cgroup2_mount()?.join("firedrill"))
}

/// A started process. The pid is the program's own (the shim `exec`s it).
pub struct Proc {
    pub name: String,
    pub pid: u32,
    pub cgroup: PathBuf,
    pub child: Child,
}

/// Start `spec` as `name`: its spec file and log go under `run_dir`, it joins `cgroup`.
pub fn spawn(firedrill: &Path, run_dir: &Path, name: &str, cgroup: &Path, mut spec: ExecSpec, log: &Path) -> Result<Proc, BackendError> {
    std::fs::create_dir_all(cgroup).map_err(|e| BackendError::io(cgroup, e))?;
    spec.cgroup = Some(cgroup.to_path_buf());
    let file_name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    let spec_path = run_dir.join("procs").join(format!("{file_name}.json"));
    std::fs::create_dir_all(spec_path.parent().expect("has parent")).map_err(|e| BackendError::io(&spec_path, e))?;
    super::pki::write_private(&spec_path, &serde_json::to_string_pretty(&spec).expect("serialises"))?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| BackendError::io(dir, e))?;
    }
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| BackendError::io(log, e))?;
    let err = out.try_clone().map_err(|e| BackendError::io(log, e))?;
    let child = tokio::process::Command::new(firedrill)
        .arg("__shim")
        .arg(&spec_path)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| BackendError::Command { command: format!("{} __shim ({name})", firedrill.display()), stderr: e.to_string() })?;
    let pid = child.id().ok_or_else(|| BackendError::Setup(format!("{name} exited before it could be tracked")))?;
    tracing::debug!(name, pid, "started");
    Ok(Proc { name: name.to_string(), pid, cgroup: cgroup.to_path_buf(), child })
}

impl Proc {
    /// SIGTERM, wait up to `grace`, then SIGKILL everything in the cgroup; with no grace,
    /// SIGKILL only (no graceful shutdown). Returns once the process has been reaped and
    /// its cgroup removed.
    pub async fn stop(&mut self, grace: Duration) {
        if !grace.is_zero() && self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
            if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
                tracing::debug!(name = %self.name, "grace period over; SIGKILL");
            }
        }
        kill_cgroup(&self.cgroup).await;
        // A process stopped right after it was spawned may not have joined its cgroup yet
        // (the shim moves itself in before it execs): the cgroup kill misses it, and
        // waiting for it would wait for the program it then runs, forever. Kill it by pid,
        // and the cgroup again, until it is reaped.
        for _ in 0..50 {
            if tokio::time::timeout(Duration::from_millis(200), self.child.wait()).await.is_ok() {
                break;
            }
            tracing::debug!(name = %self.name, "not reaped after the cgroup kill; SIGKILL by pid");
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
            kill_cgroup(&self.cgroup).await;
        }
        remove_cgroup(&self.cgroup).await;
    }
}

/// SIGKILL every process in a cgroup and its descendants (cgroup.kill), then wait until
/// they are gone. Absent is fine.
pub async fn kill_cgroup(cg: &Path) {
    if !cg.exists() {
        return;
    }
    if std::fs::write(cg.join("cgroup.kill"), "1").is_err() {
        // Kernels before 5.14 have no cgroup.kill: signal each process instead.
        for pid in cgroup_pids(cg) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    for _ in 0..200 {
        if cgroup_pids(cg).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::warn!(cgroup = %cg.display(), "processes still present 2 s after SIGKILL");
}

/// Send `signal` to every process of a cgroup subtree (SIGSTOP to pause it, SIGCONT to
/// resume it).
pub fn signal_cgroup(cg: &Path, signal: Signal) {
    for pid in cgroup_pids(cg) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Whether a cgroup has processes and every one is stopped by a signal (state `T` in
/// `/proc/<pid>/stat`).
pub fn paused(cg: &Path) -> bool {
    let pids = cgroup_pids(cg);
    !pids.is_empty()
        && pids.iter().all(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T'))).unwrap_or(false)
        })
}

/// Every pid in a cgroup subtree.
pub fn cgroup_pids(cg: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    let mut stack = vec![cg.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    pids
}

/// Remove a cgroup subtree, deepest first (a cgroup can only be removed once empty).
pub async fn remove_cgroup(cg: &Path) {
    fn dirs(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for p in rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()) {
                dirs(&p, out);
            }
        }
        out.push(d.to_path_buf());
    }
    let mut all = Vec::new();
    dirs(cg, &mut all);
    for d in all {
        for _ in 0..50 {
            match std::fs::remove_dir(&d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                // EBUSY while the last process is being reaped.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}
