//! The daemon's processes: groups started and stopped together, extra API servers that
//! belong to one probe attempt, and the monitor that restarts what exits on its own.

use std::path::PathBuf;
use std::time::Duration;

use super::Daemon;
use crate::backend::BackendError;
use crate::backend::local::controlplane;
use crate::backend::local::process::{self, Proc};
use crate::backend::local::rpc::StopHow;
use crate::backend::local::shim::ExecSpec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Group {
    Storage(String),
    ControlPlane(String),
    Host(String),
    Extra(String),
}

pub(super) struct Managed {
    spec: ExecSpec,
    cgroup: PathBuf,
    log: PathBuf,
    group: Group,
    proc: Option<Proc>,
    /// Set when the process exited on its own: it is restarted then, as the kubelet
    /// restarts a crashed static pod. A process stopped on request is not.
    restart_at: Option<tokio::time::Instant>,
    /// Exits on its own in a row, each doubling the back-off; a start asked for, or a run
    /// of [`CRASH_FORGOTTEN`], begins again at 1 s.
    crashes: u32,
    since: tokio::time::Instant,
}

/// A process that ran this long before it exited has its earlier crashes forgotten (the
/// kubelet forgets a container's after 10 min; a drill's faults come seconds apart).
const CRASH_FORGOTTEN: Duration = Duration::from_secs(60);

impl Managed {
    pub(super) fn new(spec: ExecSpec, cgroup: PathBuf, log: PathBuf, group: Group) -> Managed {
        Managed { spec, cgroup, log, group, proc: None, restart_at: None, crashes: 0, since: tokio::time::Instant::now() }
    }
}

/// Ports of the extra API servers the cold-start probe starts.
const EXTRA_PORTS: std::ops::RangeInclusive<u16> = 6444..=6543;

/// API servers and their load balancer start before the rest of the control plane.
pub(super) fn is_api_front(name: &str) -> bool {
    name.contains("/kube-apiserver-") || name.ends_with("/haproxy")
}

impl Daemon {
    /// Start every stopped process of a group whose name passes `which`. Returns the
    /// names started.
    pub(super) async fn start_group(&self, g: &Group, which: impl Fn(&str) -> bool) -> Result<Vec<String>, BackendError> {
        let mut procs = self.procs.lock().await;
        let mut started = Vec::new();
        for (name, m) in procs.iter_mut().filter(|(n, m)| &m.group == g && which(n)) {
            m.restart_at = None;
            if m.proc.as_mut().is_some_and(|p| p.child.try_wait().ok().flatten().is_none()) {
                continue;
            }
            let p = process::spawn(&self.run.firedrill, &self.run.dir, name, &m.cgroup, m.spec.clone(), &m.log)?;
            m.proc = Some(p);
            m.crashes = 0;
            m.since = tokio::time::Instant::now();
            started.push(name.clone());
        }
        Ok(started)
    }

    /// Stop every running process of a group, last started first.
    pub(super) async fn stop_group(&self, g: &Group, grace: Duration) -> Vec<String> {
        let mut procs = self.procs.lock().await;
        let mut stopped = Vec::new();
        for (name, m) in procs.iter_mut().rev().filter(|(_, m)| &m.group == g) {
            m.restart_at = None;
            if let Some(mut p) = m.proc.take() {
                p.stop(grace).await;
                stopped.push(name.clone());
            }
        }
        stopped
    }

    /// One more kube-apiserver of `cluster`, on a port that no process of the run holds:
    /// only that server starts. Replies `[name, port]`.
    pub(super) async fn start_extra_apiserver(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        let c = self.run.cluster(cluster)?.clone();
        let node = c.node(&c.apiserver_nodes[0])?.clone();
        let mut procs = self.procs.lock().await;
        // A port is free when no managed extra server holds it and nothing answers on it.
        let mut chosen = None;
        for port in EXTRA_PORTS {
            let name = format!("{cluster}/kube-apiserver-extra-{port}");
            if procs.iter().any(|(n, _)| *n == name) {
                continue;
            }
            if std::net::TcpStream::connect_timeout(&(node.ip, port).into(), Duration::from_millis(200)).is_ok() {
                continue;
            }
            chosen = Some((name, port));
            break;
        }
        let (name, port) = chosen.ok_or_else(|| {
            BackendError::Setup(format!("every port for an extra API server of cluster {cluster} ({}–{}) is in use", EXTRA_PORTS.start(), EXTRA_PORTS.end()))
        })?;
        let mut argv = controlplane::apiserver_args(&c, &self.bins, &controlplane::etcd_servers(&c)?, &node.ip.to_string(), port);
        // A second server on the same address must not rewrite the `kubernetes` Service's
        // endpoints with its own port.
        argv.push("--endpoint-reconciler-type=none".into());
        let mut m = Managed::new(
            ExecSpec { argv, env: vec![("PATH".into(), "/usr/bin:/bin".into())], netns: Some(node.netns.clone()), ..Default::default() },
            self.run.cgroup.join(cluster).join("control-plane").join(format!("kube-apiserver-extra-{port}")),
            c.dir.join("logs").join(format!("kube-apiserver-extra-{port}.log")),
            Group::Extra(cluster.to_string()),
        );
        // A fresh log: the probe reads the authenticator's errors from it.
        let _ = std::fs::remove_file(&m.log);
        m.proc = Some(process::spawn(&self.run.firedrill, &self.run.dir, &name, &m.cgroup, m.spec.clone(), &m.log)?);
        procs.push((name.clone(), m));
        Ok(vec![name, port.to_string()])
    }

    /// Restart processes that exit without being asked to, with a back-off doubling from
    /// 1 s to 30 s (from 1 s again after a start asked for or a run of [`CRASH_FORGOTTEN`]) (extra API servers are the cold-start probe's to manage: not restarted).
    pub(super) async fn monitor(&self) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut procs = self.procs.lock().await;
            for (name, m) in procs.iter_mut() {
                if let Some(p) = m.proc.as_mut()
                    && let Ok(Some(st)) = p.child.try_wait()
                {
                    let cg = p.cgroup.clone();
                    m.proc = None;
                    process::kill_cgroup(&cg).await;
                    process::remove_cgroup(&cg).await;
                    if matches!(m.group, Group::Extra(_)) {
                        continue;
                    }
                    if m.since.elapsed() >= CRASH_FORGOTTEN {
                        m.crashes = 0;
                    }
                    let backoff = Duration::from_secs(1 << m.crashes.min(5)).min(Duration::from_secs(30));
                    m.crashes += 1;
                    m.restart_at = Some(tokio::time::Instant::now() + backoff);
                    tracing::warn!(name, status = %st, log = %m.log.display(), ?backoff, "process exited on its own; restarting");
                }
                if m.proc.is_none() && m.restart_at.is_some_and(|t| t <= tokio::time::Instant::now()) {
                    m.restart_at = None;
                    match process::spawn(&self.run.firedrill, &self.run.dir, name, &m.cgroup, m.spec.clone(), &m.log) {
                        Ok(p) => {
                            m.proc = Some(p);
                            m.since = tokio::time::Instant::now();
                        }
                        Err(e) => tracing::error!(name, error = %e, "restart failed"),
                    }
                }
            }
        }
    }

    /// Stop the extra API server `name` (every one, without a name) at once; they are
    /// forgotten. Returns the names of those that ran.
    pub(super) async fn stop_extra_apiservers(&self, name: Option<&str>) -> Vec<String> {
        let mut procs = self.procs.lock().await;
        let mut out = vec![];
        let mine = |n: &str, m: &Managed| matches!(m.group, Group::Extra(_)) && name.is_none_or(|x| x == n);
        for (n, m) in procs.iter_mut() {
            if mine(n, m)
                && let Some(mut p) = m.proc.take()
            {
                p.stop(Duration::ZERO).await;
                out.push(n.clone());
            }
        }
        procs.retain(|(n, m)| !mine(n, m));
        out
    }

    /// `name<TAB>running|stopped` for every process and node agent.
    pub(super) async fn processes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, m) in self.procs.lock().await.iter_mut() {
            let state = match m.proc.as_mut() {
                Some(p) => match p.child.try_wait() {
                    Ok(None) if process::paused(&p.cgroup) => "paused",
                    Ok(None) => "running",
                    _ => "stopped",
                },
                None => "stopped",
            };
            out.push(format!("{name}\t{state}"));
        }
        for (key, h) in self.agents.lock().await.iter() {
            out.push(format!("agent/{key}\t{}", if h.is_finished() { "stopped" } else { "running" }));
        }
        out
    }

    /// Stop one process (SIGTERM and 2 s grace, or SIGKILL), or pause it (SIGSTOP to its
    /// cgroup); it stays known, to be started or resumed again.
    pub(super) async fn stop_process(&self, name: &str, how: StopHow) -> Result<Vec<String>, BackendError> {
        let mut procs = self.procs.lock().await;
        let Some((_, m)) = procs.iter_mut().find(|(n, _)| n == name) else {
            return Err(BackendError::Setup(format!("no process named {name} in this run")));
        };
        m.restart_at = None;
        if how == StopHow::Pause {
            return Ok(match &m.proc {
                Some(p) => {
                    process::signal_cgroup(&p.cgroup, nix::sys::signal::Signal::SIGSTOP);
                    vec![name.to_string()]
                }
                None => vec![],
            });
        }
        let mut out = vec![];
        if let Some(mut p) = m.proc.take() {
            // A paused process cannot act on SIGTERM: let it run again first.
            process::signal_cgroup(&p.cgroup, nix::sys::signal::Signal::SIGCONT);
            p.stop(if how == StopHow::Kill { Duration::ZERO } else { Duration::from_secs(2) }).await;
            out.push(name.to_string());
        }
        Ok(out)
    }

    /// Start one known process that is stopped, or resume it when it is paused.
    pub(super) async fn start_process(&self, name: &str) -> Result<Vec<String>, BackendError> {
        if let Some((_, m)) = self.procs.lock().await.iter().find(|(n, _)| n == name)
            && let Some(p) = &m.proc
            && process::paused(&p.cgroup)
        {
            process::signal_cgroup(&p.cgroup, nix::sys::signal::Signal::SIGCONT);
            return Ok(vec![name.to_string()]);
        }
        let group = self.procs.lock().await.iter().find(|(n, _)| n == name).map(|(_, m)| m.group.clone());
        match group {
            Some(g) => self.start_group(&g, |n| n == name).await,
            None => Err(BackendError::Setup(format!("no process named {name} in this run"))),
        }
    }

    /// Stop every process, last started first.
    pub(super) async fn stop_all(&self) {
        let mut procs = self.procs.lock().await;
        for (_, m) in procs.iter_mut().rev() {
            if let Some(mut p) = m.proc.take() {
                p.stop(Duration::from_secs(2)).await;
            }
        }
    }
}
