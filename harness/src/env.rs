//! A provisioned environment: the clusters and hosts of one topology on one backend, and
//! the backend operations faults and probes use. Environment lifecycle (once per suite)
//! is kept apart from scenario lifecycle (once per scenario, in `runner`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::backend::existing::ExistingRun;
use crate::backend::kind::KindRun;
use crate::backend::local::{self, LocalRun, UpOptions, rpc::Request};
use crate::backend::{BackendError, BackendKind, Capabilities};
use crate::fixtures::Paths;
use crate::topology::Topology;

/// One cluster as the harness uses it.
#[derive(Clone)]
pub struct ClusterHandle {
    pub name: String,
    /// The API server address clients use.
    pub server: String,
    pub ca_pem: String,
    /// Client-certificate admin kubeconfig (the break-glass path).
    pub admin_kubeconfig: PathBuf,
    /// Admin client, retrying 429, 503 and 504 answers as kube-rs does by default: for
    /// deploying, faults and claims.
    pub client: kube::Client,
    /// The same identity without retries: probes. One attempt is one request, so an
    /// answer the API gave is never hidden by a retry that succeeded after it.
    pub probe_client: kube::Client,
    /// The local backend's view of the cluster (nodes, namespaces, files).
    pub local: Option<local::ClusterInfo>,
}

enum Provider {
    Local(LocalRun),
    Kind(KindRun),
    Existing(ExistingRun),
}

pub struct Env {
    pub backend: BackendKind,
    pub capabilities: Capabilities,
    pub paths: Paths,
    pub run_id: String,
    /// Where the journal, certificates and logs of the run live.
    pub run_dir: PathBuf,
    pub clusters: Vec<ClusterHandle>,
    pub hosts: BTreeMap<String, Ipv4Addr>,
    /// Set by a second Ctrl-C: reverts skip waiting for grace periods.
    pub hurry: Arc<AtomicBool>,
    provider: Provider,
}

impl Env {
    /// Whether `backend` can create environments here; checked before anything is
    /// planned or printed. The local backend's own checks (root, tools) run in `up`.
    pub fn can_provision(backend: BackendKind, hosts: &[String]) -> Result<(), BackendError> {
        match backend {
            BackendKind::Local => Ok(()),
            // Docker, kind and the node image are checked when the run comes up.
            BackendKind::Kind if hosts.len() <= usize::from(crate::backend::addresses::KIND_HOSTS_PER_RUN) => Ok(()),
            BackendKind::Kind => Err(BackendError::Unsupported(format!(
                "not runnable on kind: the components need {} hosts outside the clusters; a kind run holds at most {}",
                hosts.len(),
                crate::backend::addresses::KIND_HOSTS_PER_RUN
            ))),
            BackendKind::Existing if hosts.is_empty() => Ok(()),
            BackendKind::Existing => Err(BackendError::Unsupported(format!(
                "not runnable on existing: the components need hosts outside the clusters ({}), which clusters named by context do not have",
                hosts.join(", ")
            ))),
        }
    }

    /// Whether `backend` can build `topology` (kind has no highly available control plane).
    pub fn can_build(backend: BackendKind, topology: &Topology) -> Result<(), BackendError> {
        match backend {
            BackendKind::Kind => crate::backend::kind::topology_supported(topology),
            BackendKind::Local | BackendKind::Existing => Ok(()),
        }
    }

    /// Bring up `topology` with `hosts` on `backend`.
    pub async fn provision(paths: &Paths, backend: BackendKind, topology: &Topology, hosts: Vec<String>, firedrill: &Path) -> Result<Env, BackendError> {
        Env::can_provision(backend, &hosts)?;
        match backend {
            BackendKind::Kind => return Env::provision_kind(paths, topology, &hosts, firedrill).await,
            BackendKind::Existing => {
                return Err(BackendError::Setup("the existing backend provisions nothing: name the clusters with --context ROLE=CONTEXT".into()));
            }
            BackendKind::Local => {}
        }
        let run = LocalRun::up(paths, UpOptions { topology, hosts, firedrill: firedrill.to_path_buf() }).await?;
        Env::from_local(paths, run).await
    }

    /// Bring up `topology` with `hosts` on the kind backend.
    pub async fn provision_kind(paths: &Paths, topology: &Topology, hosts: &[String], firedrill: &Path) -> Result<Env, BackendError> {
        let run = KindRun::up(paths, topology, hosts, firedrill).await?;
        match Env::from_kind(paths, run.clone()).await {
            Ok(env) => Ok(env),
            Err(e) => {
                let _ = run.down().await;
                Err(e)
            }
        }
    }

    /// The environment of a kind run that is up. Clients reach each API server at its
    /// control-plane container's address on the run's network (which other clusters'
    /// nodes reach too), not at the port kind publishes on the host's loopback.
    pub async fn from_kind(paths: &Paths, run: KindRun) -> Result<Env, BackendError> {
        let mut clusters = Vec::new();
        for c in &run.info.clusters {
            let ca_pem = crate::backend::kubeconfig_ca(&c.kubeconfig)?
                .ok_or_else(|| BackendError::Setup(format!("{}: no certificate-authority-data", c.kubeconfig.display())))?;
            let cp = c
                .nodes
                .iter()
                .find(|n| n.role == crate::topology::NodeRole::ControlPlane)
                .and_then(|n| n.ip.clone())
                .ok_or_else(|| BackendError::Setup(format!("kind cluster {}: no control-plane address recorded", c.kind_name)))?;
            let server = format!("https://{cp}:6443");
            // The admin kubeconfig, pointed at that address (kind's own stays as kind wrote it).
            let admin = c.kubeconfig.with_file_name("admin.kubeconfig");
            let text = std::fs::read_to_string(&c.kubeconfig).map_err(|e| BackendError::io(&c.kubeconfig, e))?;
            let rewritten: String =
                text.lines()
                    .map(|l| {
                        if l.trim_start().starts_with("server: ") { format!("{}server: {server}", &l[..l.len() - l.trim_start().len()]) } else { l.to_string() }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
            local::pki::write_private(&admin, &rewritten)?;
            clusters.push(ClusterHandle {
                name: c.name.clone(),
                server,
                ca_pem,
                admin_kubeconfig: admin.clone(),
                client: crate::backend::kube_client(&admin).await?,
                probe_client: crate::backend::kube_client_without_retry(&admin).await?,
                local: None,
            });
        }
        Ok(Env {
            backend: BackendKind::Kind,
            capabilities: crate::backend::kind::CAPABILITIES,
            paths: paths.clone(),
            run_id: run.info.id.clone(),
            run_dir: run.info.dir.clone(),
            hosts: run
                .info
                .hosts
                .iter()
                .map(|h| h.ip.parse().map(|ip| (h.name.clone(), ip)))
                .collect::<Result<_, _>>()
                .map_err(|e| BackendError::Setup(format!("a host address in the run's plan: {e}")))?,
            clusters,
            hurry: Arc::new(AtomicBool::new(false)),
            provider: Provider::Kind(run),
        })
    }

    /// The environment of a local run that is already up.
    pub async fn from_local(paths: &Paths, run: LocalRun) -> Result<Env, BackendError> {
        let mut clusters = Vec::new();
        for c in &run.info.clusters {
            let ca_pem = std::fs::read_to_string(&c.ca).map_err(|e| BackendError::io(&c.ca, e))?;
            clusters.push(ClusterHandle {
                name: c.name.clone(),
                server: c.server.clone(),
                ca_pem,
                admin_kubeconfig: c.admin_kubeconfig.clone(),
                client: local::daemon::kube_client(&c.admin_kubeconfig).await?,
                probe_client: crate::backend::kube_client_without_retry(&c.admin_kubeconfig).await?,
                local: Some(c.clone()),
            });
        }
        Ok(Env {
            backend: BackendKind::Local,
            capabilities: local::CAPABILITIES,
            paths: paths.clone(),
            run_id: run.info.id.clone(),
            run_dir: run.info.dir.clone(),
            hosts: run.info.hosts.iter().map(|h| (h.name.clone(), h.ip)).collect(),
            clusters,
            hurry: Arc::new(AtomicBool::new(false)),
            provider: Provider::Local(run),
        })
    }

    /// The environment of clusters named by context ([`crate::backend::existing`]).
    pub async fn from_existing(paths: &Paths, run: ExistingRun) -> Result<Env, BackendError> {
        let mut clusters = Vec::new();
        for c in &run.info.clusters {
            // A context may trust the system's CAs instead of naming one.
            let ca_pem = crate::backend::kubeconfig_ca(&c.kubeconfig)?.unwrap_or_default();
            clusters.push(ClusterHandle {
                name: c.name.clone(),
                server: c.server.clone(),
                ca_pem,
                admin_kubeconfig: c.kubeconfig.clone(),
                client: crate::backend::kube_client(&c.kubeconfig).await?,
                probe_client: crate::backend::kube_client_without_retry(&c.kubeconfig).await?,
                local: None,
            });
        }
        Ok(Env {
            backend: BackendKind::Existing,
            capabilities: crate::backend::existing::CAPABILITIES,
            paths: paths.clone(),
            run_id: run.info.id.clone(),
            run_dir: run.info.dir.clone(),
            hosts: BTreeMap::new(),
            clusters,
            hurry: Arc::new(AtomicBool::new(false)),
            provider: Provider::Existing(run),
        })
    }

    pub async fn teardown(&self) -> Result<(), BackendError> {
        match &self.provider {
            Provider::Local(run) => run.down().await,
            Provider::Kind(run) => run.down().await,
            Provider::Existing(run) => run.down().await.map(|_| ()),
        }
    }

    pub fn cluster(&self, name: &str) -> Result<&ClusterHandle, BackendError> {
        self.clusters.iter().find(|c| c.name == name).ok_or_else(|| BackendError::Setup(format!("no cluster `{name}` in this environment")))
    }

    /// The Kubernetes names of topology nodes of `cluster` (kind names its nodes after
    /// their containers; the other backends keep the topology's names).
    pub fn node_names(&self, cluster: &str, nodes: &[String]) -> Result<Vec<String>, String> {
        match self.kind() {
            Some(run) => nodes.iter().map(|n| run.node(cluster, n).map(|k| k.container.clone()).map_err(|e| e.to_string())).collect(),
            None => Ok(nodes.to_vec()),
        }
    }

    pub fn host(&self, name: &str) -> Result<Ipv4Addr, BackendError> {
        self.hosts.get(name).copied().ok_or_else(|| BackendError::Setup(format!("no host `{name}` in this environment")))
    }

    pub fn local(&self) -> Option<&LocalRun> {
        match &self.provider {
            Provider::Local(r) => Some(r),
            _ => None,
        }
    }

    pub fn kind(&self) -> Option<&KindRun> {
        match &self.provider {
            Provider::Kind(r) => Some(r),
            _ => None,
        }
    }

    pub fn existing(&self) -> Option<&ExistingRun> {
        match &self.provider {
            Provider::Existing(r) => Some(r),
            _ => None,
        }
    }

    /// The image a manifest's `firedrill.local/NAME:TAG` stands for here: itself, or on the
    /// existing backend with `--registry`, `REGISTRY/NAME:TAG`.
    pub fn image(&self, image: &str) -> String {
        match self.existing().and_then(|r| r.info.registry.as_deref()) {
            Some(registry) => crate::backend::existing::rename_image(image, registry),
            None => image.to_string(),
        }
    }

    /// Apply a component's manifests to `cluster`. On the existing backend the images are
    /// renamed for `--registry`, an object of the same name that is not the run's (no label
    /// of it) is refused before anything is applied, every object is labelled with the
    /// run, and every object that does not exist yet is written to the run's ledger before
    /// it is created, so that `down` removes it.
    pub async fn apply(&self, cluster: &ClusterHandle, name: &str, yaml: &str) -> Result<Vec<String>, String> {
        let Some(run) = self.existing() else {
            return crate::apply::apply(&cluster.client, name, yaml).await;
        };
        let yaml = match &run.info.registry {
            Some(registry) => crate::backend::existing::rename_images(yaml, registry),
            None => yaml.to_string(),
        };
        let note = |obj: &crate::apply::Created| run.note_created(&cluster.name, obj).map_err(|e| e.to_string());
        crate::apply::apply_as(&cluster.client, name, &yaml, Some(&crate::apply::Guest { run: &run.info.id, note: &note })).await
    }

    /// The run's harness CA directory (signs components' serving certificates).
    pub fn harness_pki(&self) -> PathBuf {
        self.run_dir.join("pki").join("harness")
    }

    async fn daemon(&self, req: Request) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Local(run) => run.call(req).await,
            _ => Err(BackendError::Unsupported(format!("{} is not implemented on the {} backend", request_name(&req), self.backend.name()))),
        }
    }

    /// Run `argv` on `host` as its process `name` (on kind: from the image whose binary is
    /// `argv[0]`); it is up when the host accepts connections on each port of `listen`,
    /// then and whenever the host is started again.
    pub async fn add_host_process(&self, host: &str, name: &str, argv: Vec<String>, env: Vec<(String, String)>, listen: &[u16]) -> Result<(), BackendError> {
        match &self.provider {
            Provider::Kind(run) => {
                let v = crate::fixtures::Versions::load(&self.paths.fixtures).map_err(|e| BackendError::Setup(e.to_string()))?;
                let binaries = crate::fixtures::Binaries::in_cache(&crate::fixtures::cache_dir(), &v);
                let firedrill = std::env::current_exe().map_err(|e| BackendError::Setup(format!("the harness's own path: {e}")))?;
                let images =
                    crate::backend::images::ImageMap::load(&self.paths.fixtures, &binaries, &firedrill).map_err(|e| BackendError::Setup(e.to_string()))?;
                run.add_host_process(&images, host, name, &argv, &env, listen).await
            }
            Provider::Local(_) | Provider::Existing(_) => {
                self.daemon(Request::AddHostProcess { host: host.into(), name: name.into(), argv, env, listen: listen.to_vec() }).await.map(|_| ())
            }
        }
    }
    /// Stop a host's processes: gracefully, or with `kill` by SIGKILL.
    pub async fn stop_host(&self, host: &str, kill: bool) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Kind(run) => run.stop_host(host, kill).await,
            Provider::Local(_) | Provider::Existing(_) => self.daemon(Request::StopHost { host: host.into(), kill }).await,
        }
    }
    pub async fn start_host(&self, host: &str) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Kind(run) => run.start_host(host).await,
            Provider::Local(_) | Provider::Existing(_) => self.daemon(Request::StartHost { host: host.into() }).await,
        }
    }
    pub async fn stop_storage(&self, cluster: &str, kill: bool) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Kind(run) => run.stop_storage(cluster, kill).await,
            Provider::Local(_) | Provider::Existing(_) => self.daemon(Request::StopStorage { cluster: cluster.into(), kill }).await,
        }
    }
    pub async fn start_storage(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Kind(run) => run.start_storage(cluster).await,
            Provider::Local(_) | Provider::Existing(_) => self.daemon(Request::StartStorage { cluster: cluster.into() }).await,
        }
    }
    pub async fn lose_node(&self, cluster: &str, node: &str) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Kind(run) => run.lose_node(cluster, node).await,
            Provider::Local(_) | Provider::Existing(_) => self.daemon(Request::LoseNode { cluster: cluster.into(), node: node.into() }).await,
        }
    }
    pub async fn restore_node(&self, cluster: &str, node: &str) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Kind(run) => run.restore_node(cluster, node).await,
            Provider::Local(_) | Provider::Existing(_) => self.daemon(Request::RestoreNode { cluster: cluster.into(), node: node.into() }).await,
        }
    }
    pub async fn stop_cluster(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Kind(run) => run.stop_cluster(cluster).await,
            Provider::Local(_) | Provider::Existing(_) => self.daemon(Request::StopCluster { cluster: cluster.into() }).await,
        }
    }
    pub async fn start_cluster(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Kind(run) => run.start_cluster(cluster).await,
            Provider::Local(_) | Provider::Existing(_) => self.daemon(Request::StartCluster { cluster: cluster.into() }).await,
        }
    }

    /// Start one more kube-apiserver of `cluster` on a free port. The returned guard owns
    /// it: dropping the guard on any path (cancellation included) kills it.
    pub async fn start_extra_apiserver(&self, cluster: &str) -> Result<ExtraApiserver, BackendError> {
        if let Provider::Kind(run) = &self.provider {
            let v = crate::fixtures::Versions::load(&self.paths.fixtures).map_err(|e| BackendError::Setup(e.to_string()))?;
            let binary = crate::fixtures::Binaries::in_cache(&crate::fixtures::cache_dir(), &v).kube_apiserver;
            let s = run.start_extra_apiserver(cluster, &binary).await?;
            return Ok(ExtraApiserver {
                url: s.url,
                name: s.name,
                port: s.port,
                log: s.log,
                owner: Owner::Process { child: s.child, pid_file: s.pid_file },
                stopped: false,
            });
        }
        let c = self.cluster(cluster)?;
        let info = c.local.as_ref().ok_or_else(|| BackendError::Unsupported("starting an extra API server needs the local backend".into()))?;
        let node = info.node(&info.apiserver_nodes[0])?;
        let reply = self.daemon(Request::StartExtraApiserver { cluster: cluster.into() }).await?;
        let [name, port] = reply.as_slice() else { return Err(BackendError::Daemon(format!("unexpected reply to starting an extra API server: {reply:?}"))) };
        let port: u16 = port.parse().map_err(|_| BackendError::Daemon(format!("unexpected port in {reply:?}")))?;
        Ok(ExtraApiserver {
            url: format!("https://{}:{port}", node.ip),
            name: name.clone(),
            port,
            log: info.dir.join("logs").join(format!("kube-apiserver-extra-{port}.log")),
            owner: Owner::Daemon { run_dir: self.run_dir.clone() },
            stopped: false,
        })
    }

    /// Stop every extra API server of the run; returns the names of those that ran.
    pub async fn stop_extra_apiservers(&self) -> Result<Vec<String>, BackendError> {
        match &self.provider {
            Provider::Kind(run) => Ok(crate::backend::kind::apiserver::stop_all(&run.info.dir)),
            // It cannot start one (no `extra_apiserver` capability): none to stop.
            Provider::Existing(_) => Ok(vec![]),
            Provider::Local(_) => self.daemon(Request::StopExtraApiservers).await,
        }
    }

    /// The daemon's processes and node agents, by name, and whether each runs.
    pub async fn processes(&self) -> Result<Vec<(String, bool)>, BackendError> {
        if let Provider::Kind(run) = &self.provider {
            return run.processes();
        }
        Ok(self.process_states().await?.into_iter().map(|(n, s)| (n, s == "running")).collect())
    }

    /// The local daemon's processes and node agents, by name, with their state: `running`,
    /// `paused` or `stopped`.
    pub async fn process_states(&self) -> Result<Vec<(String, String)>, BackendError> {
        Ok(self.daemon(Request::Processes).await?.into_iter().filter_map(|l| l.split_once('\t').map(|(n, s)| (n.to_string(), s.to_string()))).collect())
    }

    /// The pids left in a node's cgroup (its agent's pods' processes).
    pub fn node_pids(&self, cluster: &str, node: &str) -> Vec<i32> {
        match self.local() {
            Some(run) => local::process::cgroup_pids(&run.info.cgroup.join(cluster).join("nodes").join(node)),
            None => vec![],
        }
    }

    /// Stop (or pause) one process of the local daemon by name.
    pub async fn stop_process(&self, name: &str, how: local::rpc::StopHow) -> Result<(), BackendError> {
        self.daemon(Request::StopProcess { name: name.into(), how }).await.map(|_| ())
    }

    /// Start one stopped process of the local daemon, or resume a paused one.
    pub async fn start_process(&self, name: &str) -> Result<(), BackendError> {
        self.daemon(Request::StartProcess { name: name.into() }).await.map(|_| ())
    }

    /// Replace a cluster's structured authentication configuration (the API server
    /// reloads it).
    pub fn set_authentication_config(&self, cluster: &str, yaml: &str) -> Result<(), BackendError> {
        if let Provider::Kind(run) = &self.provider {
            return local::pki::write_public(&crate::backend::kind::authentication_config(run.info.cluster(cluster)?), yaml);
        }
        let c = self.cluster(cluster)?;
        let info =
            c.local.as_ref().ok_or_else(|| BackendError::Unsupported("authentication configuration is set at cluster creation on this backend".into()))?;
        local::pki::write_public(&local::controlplane::authentication_config(info), yaml)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_takes_hosts_up_to_its_address_plan_and_refuses_more_before_planning() {
        let hosts = |n: usize| (0..n).map(|i| format!("h{i}")).collect::<Vec<_>>();
        let most = usize::from(crate::backend::addresses::KIND_HOSTS_PER_RUN);
        assert!(Env::can_provision(BackendKind::Kind, &hosts(most)).is_ok());
        let e = Env::can_provision(BackendKind::Kind, &hosts(most + 1)).unwrap_err().to_string();
        assert!(e.starts_with("not runnable on kind:") && e.contains(&format!("at most {most}")), "{e}");
        assert!(Env::can_provision(BackendKind::Existing, &[]).is_ok());
        let e = Env::can_provision(BackendKind::Existing, &hosts(2)).unwrap_err().to_string();
        assert!(e.starts_with("not runnable on existing:") && e.contains("h0, h1"), "{e}");
    }
}

/// The daemon request's name, for "not on this backend" errors.
fn request_name(req: &Request) -> String {
    let debug = format!("{req:?}");
    debug.split([' ', '{', '(']).next().unwrap_or_default().to_string()
}

/// An extra kube-apiserver started for one probe attempt, owned by it: [`Self::stop`] on
/// the normal path, and on every other path (an error, the attempt's deadline, the sampler
/// aborting it) the drop kills it — synchronously, since a drop cannot await.
pub struct ExtraApiserver {
    pub url: String,
    pub name: String,
    pub port: u16,
    log: PathBuf,
    owner: Owner,
    stopped: bool,
}

/// Who stops an extra API server: the local run's daemon, or the harness itself (kind).
enum Owner {
    Daemon { run_dir: PathBuf },
    Process { child: std::process::Child, pid_file: PathBuf },
}

impl ExtraApiserver {
    pub async fn stop(mut self) -> Result<(), BackendError> {
        self.stopped = true;
        match &mut self.owner {
            Owner::Daemon { run_dir } => {
                local::rpc::call(run_dir, &Request::StopExtraApiserver { name: self.name.clone() }, std::time::Duration::from_secs(10)).await.map(|_| ())
            }
            Owner::Process { child, pid_file } => {
                crate::backend::kind::apiserver::stop(child, pid_file);
                Ok(())
            }
        }
    }

    /// Why the server rejected a bearer token, from its log (the authenticator's error,
    /// never the token).
    pub fn auth_error(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let line = log.lines().rev().find(|l| l.contains("invalid bearer token"))?;
        let reason = line.split("invalid bearer token, ").nth(1).unwrap_or(line);
        // Keep it short: the HTML body of an error page adds nothing.
        Some(reason.split(" <!DOCTYPE").next().unwrap_or(reason).trim_end_matches(']').chars().take(200).collect())
    }
}

impl Drop for ExtraApiserver {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        match &mut self.owner {
            Owner::Daemon { run_dir } => {
                let req = Request::StopExtraApiserver { name: self.name.clone() };
                if let Err(e) = local::rpc::call_blocking(run_dir, &req, std::time::Duration::from_secs(10)) {
                    tracing::warn!(name = %self.name, error = %e, "could not stop an extra API server its attempt left");
                }
            }
            Owner::Process { child, pid_file } => crate::backend::kind::apiserver::stop(child, pid_file),
        }
    }
}
