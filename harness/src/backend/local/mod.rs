//! The local backend: Docker-less clusters of real upstream binaries.
//!
//! `up` plans the run (names, addresses; `run.json`), starts the daemon
//! (`firedrill __daemon`) that brings the clusters up and keeps them running, and waits
//! until it reports every API server healthy and every node Ready. `down` asks the daemon
//! to stop and then sweeps whatever the run's ledger recorded, so it also cleans up after
//! a daemon that was killed.

pub mod agent;
pub mod controlplane;
pub mod daemon;
pub mod net;
pub mod pki;
pub mod process;
pub mod rpc;
pub mod shim;
pub mod state;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use state::{ClusterInfo, HostInfo, NodeInfo, RunInfo};

use super::{BackendError, Capabilities};
use crate::fixtures::{Binaries, Paths};
use crate::topology::Topology;
use crate::wait::{self, Deadline};

pub const CAPABILITIES: Capabilities = Capabilities {
    api_faults: true,
    stop_host: true,
    partition: true,
    stop_storage: true,
    lose_node: true,
    stop_cluster: true,
    control_plane_processes: true,
    extra_apiserver: true,
};

/// How long `up` waits for the daemon to report ready.
const UP_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything the local backend needs from the machine, checked before anything is made.
pub fn preflight(paths: &Paths) -> Result<Binaries, BackendError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(BackendError::Setup(
            "the local backend needs root (network namespaces, mounts, cgroups); run as root, or use --backend kind on a machine with Docker".into(),
        ));
    }
    for tool in ["ip", "nft"] {
        if which(tool).is_none() {
            return Err(BackendError::Setup(format!("`{tool}` is not installed; run `make setup`")));
        }
    }
    process::cgroup2_mount()?;
    let binaries = Binaries::locate(paths).map_err(|e| BackendError::Setup(e.to_string()))?;
    Ok(binaries)
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]).map(|d| d.join(tool)).find(|p| p.is_file())
}

/// A local run: its directory and plan. Cheap to clone; the daemon holds the processes.
#[derive(Clone, Debug)]
pub struct LocalRun {
    pub info: RunInfo,
}

/// What `up` brings up.
pub struct UpOptions<'a> {
    pub topology: &'a Topology,
    /// Hosts outside the clusters that components need (a load balancer, LDAP).
    pub hosts: Vec<String>,
    /// The firedrill executable (the daemon and the shim are subcommands of it).
    pub firedrill: PathBuf,
}

impl LocalRun {
    pub async fn up(paths: &Paths, opts: UpOptions<'_>) -> Result<LocalRun, BackendError> {
        preflight(paths)?;
        let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
        let id = format!("{}-{stamp}-{:04x}", opts.topology.topology, std::process::id() % 0x10000);
        let (dir, subnet) = state::allocate(&id)?;
        // After the claim: a `down` of the machine's last other run, which removes the
        // blackhole under the same lock, sees this run's number held.
        if let Err(e) = crate::backend::numbers::locked(net::ensure_test_range_blackhole).and_then(|r| r) {
            let _ = down(&dir).await;
            return Err(e);
        }
        let cgroup_root = process::cgroup_root()?;
        let info = RunInfo::plan(&id, &dir, opts.topology, &opts.hosts, subnet, &opts.firedrill, &cgroup_root);
        info.save()?;
        let run = LocalRun { info };
        if let Err(e) = run.start_daemon().await {
            let log = tail(&dir.join("daemon.log"), 30);
            let _ = down(&dir).await;
            return Err(BackendError::Setup(format!("{e}\nlast lines of the daemon's log:\n{log}")));
        }
        Ok(run)
    }

    async fn start_daemon(&self) -> Result<(), BackendError> {
        let dir = &self.info.dir;
        let log = std::fs::File::create(dir.join("daemon.log")).map_err(|e| BackendError::io(dir, e))?;
        let err = log.try_clone().map_err(|e| BackendError::io(dir, e))?;
        let mut cmd = std::process::Command::new(&self.info.firedrill);
        cmd.arg("__daemon").arg(dir).stdin(std::process::Stdio::null()).stdout(log).stderr(err);
        // Its own session: Ctrl-C in the terminal of `firedrill up` or of a test run does not
        // reach the daemon, which is stopped by `down` (and by the runner on every exit path).
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut child =
            cmd.spawn().map_err(|e| BackendError::Command { command: format!("{} __daemon", self.info.firedrill.display()), stderr: e.to_string() })?;
        let result = wait::until(Deadline::after(UP_TIMEOUT), "the local daemon to report every cluster ready", || {
            let status = daemon::read_status(dir);
            let exited = child.try_wait().ok().flatten();
            async move {
                match (status, exited) {
                    (Some(daemon::Status::Ready), _) => Some(Ok(())),
                    (Some(daemon::Status::Failed { error }), _) => Some(Err(BackendError::Setup(error))),
                    (_, Some(st)) => Some(Err(BackendError::Setup(format!("the local daemon exited ({st}) before it was ready")))),
                    _ => None,
                }
            }
        })
        .await;
        // The daemon is not our child to reap: it outlives this process by design.
        std::mem::forget(child);
        result?
    }

    /// The run in `dir`, as `up` left it.
    pub fn attach(dir: &Path) -> Result<LocalRun, BackendError> {
        Ok(LocalRun { info: RunInfo::load(dir)? })
    }

    pub fn dir(&self) -> &Path {
        &self.info.dir
    }

    /// Whether the run's daemon (and so its clusters) is still running. A run whose daemon
    /// is gone (killed with its session, a reboot) has nothing left to fault or revert.
    pub fn alive(&self) -> bool {
        daemon_alive(&self.info.dir)
    }

    pub async fn call(&self, req: rpc::Request) -> Result<Vec<String>, BackendError> {
        Ok(rpc::call(&self.info.dir, &req, Duration::from_secs(180)).await?.affected)
    }

    pub async fn down(&self) -> Result<(), BackendError> {
        down(&self.info.dir).await
    }
}

/// Tear down the run in `dir`: ask its daemon to stop, stop it by signal if it does not
/// answer, sweep the ledger, remove the directory. A second call finds nothing and
/// succeeds.
pub async fn down(dir: &Path) -> Result<(), BackendError> {
    if !dir.exists() {
        return Ok(());
    }
    let pid = std::fs::read_to_string(dir.join("daemon.pid")).ok().and_then(|s| s.trim().parse::<i32>().ok());
    let alive = |pid: i32| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() && is_daemon(pid, dir);
    if let Some(pid) = pid.filter(|p| alive(*p)) {
        if rpc::call(dir, &rpc::Request::Shutdown, Duration::from_secs(60)).await.is_err() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        let gone =
            wait::until(Deadline::after(Duration::from_secs(30)), &format!("local daemon {pid} to exit"), || async move { (!alive(pid)).then_some(()) }).await;
        if gone.is_err() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    daemon::sweep(dir).await;
    std::fs::remove_dir_all(dir).map_err(|e| BackendError::io(dir, e))?;
    crate::backend::numbers::release(dir);
    crate::backend::numbers::locked(net::release_test_range_blackhole)?
}

/// Whether the daemon of the run in `dir` is running.
pub fn daemon_alive(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("daemon.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .is_some_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() && is_daemon(pid, dir))
}

/// Whether `pid` is the daemon of the run in `dir` (and not a recycled pid).
fn is_daemon(pid: i32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let args: Vec<String> = c.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            args.iter().any(|a| a == "__daemon") && args.iter().any(|a| Path::new(a) == dir)
        })
        .unwrap_or(false)
}

/// Tear down every local run this state directory records, reservations of runs cut short
/// included (what they created is in their ledger). Nothing else: a namespace, link or
/// process group of another state directory's run is that run's; `sweep` lists them.
pub async fn down_all() -> Result<Vec<PathBuf>, BackendError> {
    let mut done = Vec::new();
    for dir in std::fs::read_dir(state::runs_dir()).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())) {
        let recorded = RunInfo::load(&dir).is_ok();
        down(&dir).await?;
        if recorded {
            done.push(dir);
        }
    }
    Ok(done)
}

/// What carries the local backend's names on this machine and no run of this state
/// directory records in its ledger: namespaces and links `fd<N>…`, and process groups
/// under firedrill's cgroup.
pub fn strays() -> Vec<super::Stray> {
    let mut recorded = std::collections::BTreeSet::new();
    for dir in std::fs::read_dir(state::runs_dir()).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())) {
        recorded.extend(state::Ledger::at(&dir).entries().into_iter().map(|e| e.name));
    }
    let (netns, links) = net::firedrill_names();
    let mut out: Vec<super::Stray> =
        netns.into_iter().filter(|n| !recorded.contains(n)).map(|name| super::Stray { kind: super::StrayKind::Namespace, name }).collect();
    out.extend(links.into_iter().filter(|n| !recorded.contains(n)).map(|name| super::Stray { kind: super::StrayKind::Link, name }));
    if let Ok(root) = process::cgroup_root() {
        for group in std::fs::read_dir(&root).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()) {
            if !recorded.iter().any(|r| Path::new(r).starts_with(&group)) {
                out.push(super::Stray { kind: super::StrayKind::ProcessGroup, name: group.display().to_string() });
            }
        }
    }
    out
}

/// Remove what [`strays`] listed: the processes of a group first, then namespaces, links.
pub async fn remove_strays(strays: &[super::Stray]) -> Result<(), BackendError> {
    use super::StrayKind;
    for s in strays.iter().filter(|s| s.kind == StrayKind::ProcessGroup) {
        process::kill_cgroup(Path::new(&s.name)).await;
        process::remove_cgroup(Path::new(&s.name)).await;
    }
    for s in strays {
        match s.kind {
            StrayKind::Namespace => net::delete_netns(&s.name)?,
            StrayKind::Link => net::delete_link(&s.name)?,
            StrayKind::ProcessGroup => {}
            other => return Err(BackendError::Setup(format!("the local backend does not remove a {other} ({})", s.name))),
        }
    }
    Ok(())
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
