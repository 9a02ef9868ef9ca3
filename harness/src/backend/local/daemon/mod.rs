//! `firedrill __daemon RUN_DIR`: keeps a local run alive after `firedrill up` returns.
//!
//! Brings up the network, the control planes and the node agents of `run.json`, reports
//! `ready` (or `failed`) in `status.json`, then serves the control socket until told to
//! shut down or sent SIGTERM/SIGINT, when it stops everything it started and removes the
//! namespaces, links and cgroups it recorded in the ledger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::backend::images::ImageMap;
use crate::backend::local::controlplane;
use crate::backend::local::net;
use crate::backend::local::process;
use crate::backend::local::rpc::{Reply, Request};
use crate::backend::local::shim::ExecSpec;

mod agents;
mod supervisor;

use crate::backend::BackendError;
use crate::backend::local::state::{ClusterInfo, Ledger, RunInfo};
use crate::fixtures::{Binaries, Paths};
use crate::wait::{self, Deadline};
use supervisor::{Group, Managed, is_api_front};

/// `status.json`: what `firedrill up` waits for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Status {
    Starting { step: String },
    Ready,
    Failed { error: String },
    Down,
}

pub fn write_status(run_dir: &Path, s: &Status) {
    let _ = super::pki::write_public(&run_dir.join("status.json"), &serde_json::to_string(s).expect("serialises"));
}

pub fn read_status(run_dir: &Path) -> Option<Status> {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("status.json")).ok()?).ok()
}

struct Daemon {
    run: RunInfo,
    ledger: Ledger,
    bins: Binaries,
    images: Arc<ImageMap>,
    /// Processes in start order.
    procs: Mutex<Vec<(String, Managed)>>,
    /// Ports each host serves on, by host: starting the host waits for them.
    listens: Mutex<BTreeMap<String, std::collections::BTreeSet<u16>>>,
    agents: Mutex<BTreeMap<String, JoinHandle<()>>>,
    kubelet_version: String,
}

/// Entry point of `firedrill __daemon`.
pub async fn main(run_dir: PathBuf) -> Result<(), BackendError> {
    let run = RunInfo::load(&run_dir)?;
    std::fs::write(run_dir.join("daemon.pid"), std::process::id().to_string()).map_err(|e| BackendError::io(&run_dir, e))?;
    let paths = Paths::discover();
    let bins = Binaries::locate(&paths).map_err(|e| BackendError::Setup(e.to_string()))?;
    let images = Arc::new(ImageMap::load(&paths.fixtures, &bins, &run.firedrill).map_err(|e| BackendError::Setup(e.to_string()))?);
    let versions = crate::fixtures::Versions::load(&paths.fixtures).map_err(|e| BackendError::Setup(e.to_string()))?;
    let d = Arc::new(Daemon {
        ledger: Ledger::at(&run_dir),
        run,
        bins,
        images,
        procs: Mutex::new(Vec::new()),
        listens: Mutex::new(BTreeMap::new()),
        agents: Mutex::new(BTreeMap::new()),
        kubelet_version: format!("{}-firedrill", versions.kubernetes),
    });

    let listener = {
        let sock = super::rpc::socket(&run_dir);
        let _ = std::fs::remove_file(&sock);
        tokio::net::UnixListener::bind(&sock).map_err(|e| BackendError::io(&sock, e))?
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| BackendError::Setup(e.to_string()))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(|e| BackendError::Setup(e.to_string()))?;

    let up = {
        let d = d.clone();
        tokio::spawn(async move { d.bring_up().await })
    };
    tokio::select! {
        r = up => match r {
            Ok(Ok(())) => write_status(&run_dir, &Status::Ready),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "bring-up failed");
                write_status(&run_dir, &Status::Failed { error: e.to_string() });
                d.teardown().await;
                return Err(e);
            }
            Err(e) => {
                write_status(&run_dir, &Status::Failed { error: format!("bring-up panicked: {e}") });
                d.teardown().await;
                return Err(BackendError::Setup(format!("bring-up panicked: {e}")));
            }
        },
        _ = term.recv() => { d.teardown().await; return Ok(()) }
        _ = int.recv() => { d.teardown().await; return Ok(()) }
    }
    tracing::info!(run = %d.run.id, "ready");

    let monitor = {
        let d = d.clone();
        tokio::spawn(async move { d.monitor().await })
    };
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let (r, mut w) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(r).read_line(&mut line).await.is_err() { continue; }
                let req: Request = match serde_json::from_str(&line) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = w.write_all(format!("{}\n", serde_json::json!({"ok": false, "error": format!("bad request: {e}")})).as_bytes()).await;
                        continue;
                    }
                };
                if req == Request::Shutdown {
                    monitor.abort();
                    d.teardown().await;
                    let reply = Reply { ok: true, error: None, affected: vec![] };
                    let _ = w.write_all(format!("{}\n", serde_json::to_string(&reply).expect("serialises")).as_bytes()).await;
                    return Ok(());
                }
                let d = d.clone();
                tokio::spawn(async move {
                    let reply = match d.handle(req.clone()).await {
                        Ok(affected) => Reply { ok: true, error: None, affected },
                        Err(e) => Reply { ok: false, error: Some(e.to_string()), affected: vec![] },
                    };
                    tracing::info!(?req, ok = reply.ok, error = ?reply.error, "request");
                    let _ = w.write_all(format!("{}\n", serde_json::to_string(&reply).expect("serialises")).as_bytes()).await;
                });
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    monitor.abort();
    d.teardown().await;
    Ok(())
}

impl Daemon {
    fn step(&self, s: &str) {
        tracing::info!("{s}");
        write_status(&self.run.dir, &Status::Starting { step: s.to_string() });
    }

    async fn bring_up(self: &Arc<Self>) -> Result<(), BackendError> {
        let run = &self.run;
        self.step("network");
        net::create_bridge(&self.ledger, run.subnet())?;
        net::let_bridge_through(&self.ledger, run.subnet())?;
        for c in &run.clusters {
            for n in &c.nodes {
                net::create_host(&self.ledger, run.subnet(), &n.netns, n.veth, n.ip)?;
            }
        }
        for h in &run.hosts {
            net::create_host(&self.ledger, run.subnet(), &h.netns, h.veth, h.ip)?;
        }
        self.ledger.record("cgroup", &run.cgroup.display().to_string())?;
        std::fs::create_dir_all(&run.cgroup).map_err(|e| BackendError::io(&run.cgroup, e))?;

        self.step("control planes");
        let ups = run.clusters.iter().map(|c| self.start_cluster_control_plane(c));
        futures::future::try_join_all(ups).await?;

        self.step("node agents");
        for c in &run.clusters {
            for n in &c.nodes {
                self.start_agent(c, &n.name).await?;
            }
        }
        self.step("nodes ready");
        let waits = run.clusters.iter().map(|c| wait_nodes_ready(c));
        futures::future::try_join_all(waits).await?;
        Ok(())
    }

    /// etcd, then API servers (and their load balancer), then controller-manager and
    /// scheduler; each waited for before the next.
    async fn start_cluster_control_plane(&self, c: &ClusterInfo) -> Result<(), BackendError> {
        controlplane::prepare(&self.run, c)?;
        let comps = controlplane::components(c, &self.bins)?;
        {
            let mut procs = self.procs.lock().await;
            for comp in comps {
                if procs.iter().any(|(n, _)| *n == comp.name) {
                    continue;
                }
                let cg = self.run.cgroup.join(&c.name).join("control-plane").join(comp.name.rsplit('/').next().unwrap_or("x"));
                let group = if comp.storage { Group::Storage(c.name.clone()) } else { Group::ControlPlane(c.name.clone()) };
                procs.push((comp.name, Managed::new(comp.spec, cg, comp.log, group)));
            }
            if let Some(lb) = &c.apiserver_lb {
                let host = self.run.host(lb)?;
                let cfg = c.dir.join("apiserver-lb.cfg");
                let servers: String = c
                    .apiserver_nodes
                    .iter()
                    .filter_map(|n| c.node(n).ok())
                    .map(|n| format!("  server {} {}:6443 check inter 1s fall 2 rise 1\n", n.name, n.ip))
                    .collect();
                let text = format!(
                    "global\n  maxconn 2000\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\nfrontend apiserver\n  bind {}:6443\n  default_backend apiservers\nbackend apiservers\n{servers}",
                    host.ip
                );
                super::pki::write_public(&cfg, &text)?;
                let name = format!("host/{lb}/haproxy");
                if !procs.iter().any(|(n, _)| *n == name) {
                    procs.push((
                        name,
                        Managed::new(
                            ExecSpec {
                                argv: vec!["/usr/sbin/haproxy".into(), "-db".into(), "-f".into(), cfg.display().to_string()],
                                env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
                                netns: Some(host.netns.clone()),
                                ..Default::default()
                            },
                            self.run.cgroup.join("hosts").join(lb).join("haproxy"),
                            self.run.dir.join("hosts").join(lb).join("haproxy.log"),
                            Group::ControlPlane(c.name.clone()),
                        ),
                    ));
                }
            }
        }
        self.start_control_plane(c).await?;
        Ok(())
    }

    /// etcd and API servers together, waited for; then controller-managers and schedulers. Returns the
    /// names started.
    async fn start_control_plane(&self, c: &ClusterInfo) -> Result<Vec<String>, BackendError> {
        let mut started = self.start_group(&Group::Storage(c.name.clone()), |_| true).await?;
        // The API servers start while etcd does (they retry their storage until it answers):
        // their own start-up overlaps etcd's instead of following it.
        started.extend(self.start_group(&Group::ControlPlane(c.name.clone()), is_api_front).await?);
        wait_etcd(c).await?;
        wait_apiserver(c).await?;
        started.extend(self.start_group(&Group::ControlPlane(c.name.clone()), |n| !is_api_front(n)).await?);
        Ok(started)
    }

    /// Start every process of a host, and wait until it accepts connections on its ports.
    async fn start_host(&self, host: &str) -> Result<Vec<String>, BackendError> {
        let ip = self.run.host(host)?.ip;
        let started = self.start_group(&Group::Host(host.to_string()), |_| true).await?;
        let ports = self.listens.lock().await.get(host).cloned().unwrap_or_default();
        crate::backend::wait_listening(host, ip, ports).await?;
        Ok(started)
    }

    async fn handle(&self, req: Request) -> Result<Vec<String>, BackendError> {
        match req {
            Request::Status => Ok(vec![]),
            Request::AddHostProcess { host, name, argv, env, listen } => {
                let h = self.run.host(&host)?.clone();
                let full = format!("host/{host}/{name}");
                {
                    let mut procs = self.procs.lock().await;
                    if !procs.iter().any(|(n, _)| *n == full) {
                        procs.push((
                            full.clone(),
                            Managed::new(
                                ExecSpec { argv, env, netns: Some(h.netns.clone()), ..Default::default() },
                                self.run.cgroup.join("hosts").join(&host).join(&name),
                                self.run.dir.join("hosts").join(&host).join(format!("{name}.log")),
                                Group::Host(host.clone()),
                            ),
                        ));
                    }
                }
                self.listens.lock().await.entry(host.clone()).or_default().extend(listen);
                self.start_host(&host).await
            }
            Request::StopHost { host, kill } => {
                self.run.host(&host)?;
                Ok(self.stop_group(&Group::Host(host), if kill { Duration::ZERO } else { Duration::from_secs(5) }).await)
            }
            Request::StartHost { host } => self.start_host(&host).await,
            Request::StopStorage { cluster, kill } => {
                self.run.cluster(&cluster)?;
                Ok(self.stop_group(&Group::Storage(cluster), if kill { Duration::ZERO } else { Duration::from_secs(5) }).await)
            }
            Request::StartStorage { cluster } => {
                let c = self.run.cluster(&cluster)?.clone();
                let started = self.start_group(&Group::Storage(cluster), |_| true).await?;
                wait_etcd(&c).await?;
                Ok(started)
            }
            Request::LoseNode { cluster, node } => {
                let c = self.run.cluster(&cluster)?.clone();
                c.node(&node)?;
                self.stop_agent(&c, &node).await;
                Ok(vec![format!("{cluster}/{node}")])
            }
            Request::RestoreNode { cluster, node } => {
                let c = self.run.cluster(&cluster)?.clone();
                self.start_agent(&c, &node).await?;
                Ok(vec![format!("{cluster}/{node}")])
            }
            Request::StopCluster { cluster } => {
                let c = self.run.cluster(&cluster)?.clone();
                let mut affected = Vec::new();
                for n in &c.nodes {
                    self.stop_agent(&c, &n.name).await;
                    affected.push(format!("{cluster}/{}", n.name));
                }
                affected.extend(self.stop_group(&Group::Extra(cluster.clone()), Duration::from_secs(2)).await);
                affected.extend(self.stop_group(&Group::ControlPlane(cluster.clone()), Duration::from_secs(5)).await);
                affected.extend(self.stop_group(&Group::Storage(cluster), Duration::from_secs(5)).await);
                Ok(affected)
            }
            Request::StartCluster { cluster } => {
                let c = self.run.cluster(&cluster)?.clone();
                let mut affected = self.start_control_plane(&c).await?;
                for n in &c.nodes {
                    self.start_agent(&c, &n.name).await?;
                    affected.push(format!("{cluster}/{}", n.name));
                }
                Ok(affected)
            }
            Request::StartExtraApiserver { cluster } => self.start_extra_apiserver(&cluster).await,
            Request::StopExtraApiserver { name } => Ok(self.stop_extra_apiservers(Some(&name)).await),
            Request::StopExtraApiservers => Ok(self.stop_extra_apiservers(None).await),
            Request::Processes => Ok(self.processes().await),
            Request::StopProcess { name, how } => self.stop_process(&name, how).await,
            Request::StartProcess { name } => self.start_process(&name).await,
            Request::Shutdown => Ok(vec![]),
        }
    }

    /// Stop everything and remove what the ledger recorded. Safe to call twice.
    async fn teardown(&self) {
        tracing::info!(run = %self.run.id, "tearing down");
        let agents: Vec<JoinHandle<()>> = std::mem::take(&mut *self.agents.lock().await).into_values().collect();
        for h in agents {
            h.abort();
            let _ = h.await;
        }
        self.stop_all().await;
        sweep(&self.run.dir).await;
        write_status(&self.run.dir, &Status::Down);
    }
}

/// Remove what a run's ledger recorded, newest first: kill and remove cgroups, delete
/// namespaces and links. Idempotent; used by the daemon and by `firedrill down`.
pub async fn sweep(run_dir: &Path) {
    let entries = Ledger::at(run_dir).entries();
    for e in entries.iter().rev().filter(|e| e.kind == "cgroup") {
        let cg = Path::new(&e.name);
        process::kill_cgroup(cg).await;
        process::remove_cgroup(cg).await;
    }
    for e in entries.iter().rev() {
        let r = match e.kind.as_str() {
            "netns" => net::delete_netns(&e.name),
            "link" => net::delete_link(&e.name),
            "forward-rule" => net::delete_forward_rule(&e.name),
            _ => Ok(()),
        };
        if let Err(err) = r {
            tracing::warn!(kind = %e.kind, name = %e.name, error = %err, "could not remove");
        }
    }
}

pub use crate::backend::kube_client;

async fn wait_etcd(c: &ClusterInfo) -> Result<(), BackendError> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().map_err(|e| BackendError::Setup(e.to_string()))?;
    for n in &c.etcd_nodes {
        let node = c.node(n)?;
        let url = format!("http://{}:2379/health", node.ip);
        wait::until(Deadline::after(Duration::from_secs(60)), &format!("etcd {} of cluster {} to report healthy at {url}", n, c.name), || {
            let http = http.clone();
            let url = url.clone();
            async move {
                let r = http.get(&url).send().await.ok()?;
                let body = r.text().await.ok()?;
                body.contains("\"health\":\"true\"").then_some(())
            }
        })
        .await?;
    }
    Ok(())
}

/// Until the cluster's API server front answers `/readyz` (at most 120 s).
pub async fn wait_apiserver(c: &ClusterInfo) -> Result<(), BackendError> {
    let http = controlplane::admin_http(c)?;
    let url = format!("{}/readyz", c.server);
    wait::until(Deadline::after(Duration::from_secs(120)), &format!("kube-apiserver of cluster {} to be ready at {url}", c.name), || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http.get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await?;
    Ok(())
}

async fn wait_nodes_ready(c: &ClusterInfo) -> Result<(), BackendError> {
    let client = kube_client(&c.admin_kubeconfig).await?;
    let api: Api<Node> = Api::all(client);
    let want = c.nodes.len();
    wait::until(Deadline::after(Duration::from_secs(120)), &format!("all {want} nodes of cluster {} to be Ready", c.name), || {
        let api = api.clone();
        async move {
            let nodes = api.list(&Default::default()).await.ok()?;
            let ready = nodes
                .items
                .iter()
                .filter(|n| n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")))
                .count();
            (ready >= want).then_some(())
        }
    })
    .await?;
    Ok(())
}
