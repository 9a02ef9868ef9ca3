//! The kind backend: real kind clusters, one Docker container per node, for machines with a
//! Docker engine — laptops and GitHub Actions, and this machine once `make setup` has
//! started one. Driven through kind's CLI (pinned, built by `ci/setup.sh`) with the node
//! image `ci/kind-image.sh` assembles offline.
//!
//! `up` plans the run first — the Docker network, every cluster's kind name, pod and
//! service subnets (the address plan's kind blocks) — and writes the plan (`kind-run.json`)
//! before it creates anything, so that `down` removes everything a run may have made even
//! when the process creating it was killed half-way.
//!
//! What runs on kind: bringing topologies up and down, with the components' images
//! (`fixtures/images.yaml`) built offline and loaded into every cluster ([`images`]); hosts
//! outside the clusters as containers on the run's network ([`hosts`]); faults with kind's
//! own mechanisms ([`ops`]); the cold-start probe's extra API server in the control-plane
//! node's network namespace ([`apiserver`]). Every control-plane node mounts the run's
//! `clusters/<name>/authn` directory, whose structured authentication configuration the
//! API server reads and reloads, so components that bring an issuer can set it.

pub mod apiserver;
pub mod engine;
mod freezer;
pub mod hosts;
pub mod images;
pub mod ops;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BackendError, Capabilities, addresses};
use crate::fixtures::{Binaries, Paths, Versions};
use crate::topology::{NodeRole, Topology};
use crate::wait::{self, Deadline};

/// What faults can do to kind clusters ([`ops`], [`hosts`], [`apiserver`]): everything
/// through the API, hosts' processes stopped, partitions (nftables in the node and host
/// containers' namespaces), etcd stopped in the control-plane node, a node's container
/// killed, every node container of a cluster stopped, and extra API servers started.
pub const CAPABILITIES: Capabilities = Capabilities {
    api_faults: true,
    stop_host: true,
    partition: true,
    stop_storage: true,
    lose_node: true,
    stop_cluster: true,
    control_plane_processes: false,
    extra_apiserver: true,
};

/// Where a control-plane node sees its cluster's `authn` directory.
const AUTHN_IN_NODE: &str = "/etc/kubernetes/firedrill";

/// How long every node of a new cluster may take to turn Ready after `kind create`.
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// The label kind puts on every node container.
const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// The prefix of every kind cluster and Docker network firedrill creates.
const PREFIX: &str = "fd-k";

/// A kind run as planned.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KindRunInfo {
    pub id: String,
    pub dir: PathBuf,
    /// The run's number in the address plan (`addresses::KIND_RUNS`).
    pub number: u8,
    pub topology: String,
    /// The Docker network every node of the run is on, and its subnet.
    pub network: String,
    pub subnet: String,
    pub image: String,
    /// The Docker engine the run is on (`DOCKER_HOST`; null: the CLI's default). Absent in
    /// plans from before it was recorded.
    #[serde(default, deserialize_with = "engine::deserialize_recorded", skip_serializing_if = "Option::is_none")]
    pub engine: Option<Option<String>>,
    pub clusters: Vec<KindCluster>,
    /// Hosts outside the clusters ([`hosts`]).
    #[serde(default)]
    pub hosts: Vec<KindHost>,
}

/// A host outside the clusters: the container holding its network namespace, at its
/// fixed address.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KindHost {
    pub name: String,
    pub ip: String,
    pub container: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KindCluster {
    /// The topology's name for it.
    pub name: String,
    /// kind's name for it (and the prefix of its node containers).
    pub kind_name: String,
    pub kubeconfig: PathBuf,
    pub pods: String,
    pub services: String,
    pub nodes: Vec<KindNode>,
}

/// A topology node and the container (and Kubernetes node) kind makes of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KindNode {
    pub name: String,
    pub container: String,
    pub role: NodeRole,
    /// Its address on the run's network, once created (kept across restarts).
    #[serde(default)]
    pub ip: Option<String>,
}

/// What the backend needs from the machine.
pub struct Tools {
    pub kind: PathBuf,
    pub kubectl: PathBuf,
    pub image: String,
}

/// Docker answers, kind and kubectl are built, and the node image is in the engine's store.
pub fn preflight(paths: &Paths) -> Result<Tools, BackendError> {
    let info = run("docker", &["info", "--format", "{{.ServerVersion}}"]);
    match info {
        Ok(_) => {}
        Err(BackendError::Command { stderr, .. }) => {
            return Err(BackendError::Unsupported(format!(
                "the kind backend needs a running Docker engine (`make setup` starts one); `docker info` against {}: {stderr}",
                engine::describe(engine::in_effect().as_deref())
            )));
        }
        Err(e) => return Err(e),
    }
    let v = Versions::load(&paths.fixtures).map_err(|e| BackendError::Setup(e.to_string()))?;
    let b = Binaries::in_cache(&crate::fixtures::cache_dir(), &v);
    for p in [&b.kind, &b.kubectl] {
        if !p.is_file() {
            return Err(BackendError::Setup(format!("{} is not built; run `make setup`", p.display())));
        }
    }
    let marker = crate::fixtures::cache_dir().join("kind/node-image");
    let image = std::fs::read_to_string(&marker)
        .map_err(|_| BackendError::Setup(format!("no kind node image is built ({} is missing); run `make setup` (ci/kind-image.sh)", marker.display())))?
        .trim()
        .to_string();
    if run("docker", &["image", "inspect", "--format", "{{.Id}}", &image]).is_err() {
        return Err(BackendError::Setup(format!("the kind node image {image} is not in the Docker engine's store; run `make setup` (ci/kind-image.sh)")));
    }
    Ok(Tools { kind: b.kind, kubectl: b.kubectl, image })
}

/// About how many inotify instances a kind node's systemd, kubelet and containerd hold
/// (measured here: with `fs.inotify.max_user_instances` at 128, the ninth node of the
/// engine failed to start, its systemd "Too many open files").
const INOTIFY_PER_NODE: usize = 15;

/// Warn, before creating anything, when this run's nodes and the engine's running kind
/// nodes need more inotify instances than the machine allows its root user (kind's known
/// issue); the setting is the machine's, left as it is.
fn warn_inotify(new_nodes: usize) {
    let Some(limit) = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances").ok().and_then(|v| v.trim().parse::<usize>().ok()) else {
        return;
    };
    let running = run("docker", &["ps", "-q", "--filter", &format!("label={CLUSTER_LABEL}")]).map(|o| o.lines().count()).unwrap_or(0);
    if (running + new_nodes) * INOTIFY_PER_NODE > limit {
        tracing::warn!(
            "kind: this run adds {new_nodes} node(s) to {running} kind node(s) running on the engine; fs.inotify.max_user_instances is {limit}, about {} nodes' worth: a node beyond that fails to start (\"Too many open files\"). Raise it (sysctl fs.inotify.max_user_instances=512, as kind's known issues say) or take down other runs",
            limit / INOTIFY_PER_NODE
        );
    }
}

/// Run a command to its end; its stdout, or an error carrying its output.
fn run(program: &str, args: &[&str]) -> Result<String, BackendError> {
    run_env(program, args, &[])
}

fn run_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, BackendError> {
    let mut cmd = engine::expression(program, args).stdout_capture().stderr_capture().unchecked();
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let out = cmd.run().map_err(|e| BackendError::Command { command: format!("{program} {}", args.join(" ")), stderr: e.to_string() })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(BackendError::Command { command: format!("{program} {}", args.join(" ")), stderr })
    }
}

async fn run_async(program: &str, args: Vec<String>, env: Vec<(String, String)>) -> Result<String, BackendError> {
    let program = program.to_string();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_env(&program, &args, &env)
    })
    .await
    .map_err(|e| BackendError::Setup(format!("a command's thread failed: {e}")))?
}

/// Where kind runs keep their plan and kubeconfigs.
pub fn runs_dir() -> PathBuf {
    super::state_root().join("kind-runs")
}

/// Every kind run directory on this machine, oldest first.
pub fn all_runs() -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> =
        std::fs::read_dir(runs_dir()).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("kind-run.json").is_file()).collect();
    runs.sort();
    runs
}

/// Whether `dir` holds a kind run.
pub fn is_run(dir: &Path) -> bool {
    dir.join("kind-run.json").is_file()
}

/// Whether the kind backend can build `topology`: not too many clusters, and no highly
/// available control plane.
pub fn topology_supported(topology: &Topology) -> Result<(), BackendError> {
    if topology.clusters.len() > usize::from(addresses::KIND_CLUSTERS_PER_RUN) {
        return Err(BackendError::Unsupported(format!(
            "topology {} has {} clusters; a kind run holds at most {}",
            topology.topology,
            topology.clusters.len(),
            addresses::KIND_CLUSTERS_PER_RUN
        )));
    }
    match topology.clusters.iter().find(|c| c.etcd > 1 || c.apiservers > 1) {
        Some(c) => Err(BackendError::Unsupported(format!(
            "not runnable on kind: cluster {} of topology {} has {} etcd members and {} API servers; kind's highly available control plane needs its load-balancer image (Envoy), which cannot be pulled here and has no Debian package",
            c.name, topology.topology, c.etcd, c.apiservers
        ))),
        None => Ok(()),
    }
}

/// The kind names and container names of a topology, in run `number`.
pub fn plan(id: &str, dir: &Path, number: u8, topology: &Topology, hosts: &[String], image: &str) -> Result<KindRunInfo, BackendError> {
    if hosts.len() > usize::from(addresses::KIND_HOSTS_PER_RUN) {
        return Err(BackendError::Unsupported(format!("{} hosts; a kind run holds at most {}", hosts.len(), addresses::KIND_HOSTS_PER_RUN)));
    }
    topology_supported(topology)?;
    let mut clusters = Vec::new();
    for (k, c) in topology.clusters.iter().enumerate() {
        let kind_name = format!("{PREFIX}{number}-{}", c.name);
        let (pods, services) = addresses::kind_cluster(number, k as u8);
        // kind names containers <cluster>-control-plane, -control-plane2, …, -worker, -worker2, …
        let (mut cps, mut workers) = (0, 0);
        let nodes = c
            .nodes
            .iter()
            .map(|n| {
                let (role, count) = match n.role {
                    NodeRole::ControlPlane => ("control-plane", &mut cps),
                    NodeRole::Worker => ("worker", &mut workers),
                };
                *count += 1;
                let suffix = if *count == 1 { String::new() } else { count.to_string() };
                KindNode { name: n.name.clone(), container: format!("{kind_name}-{role}{suffix}"), role: n.role, ip: None }
            })
            .collect();
        if cps != 1 {
            return Err(BackendError::Unsupported(format!("cluster {} needs exactly one control-plane node on kind (it has {cps})", c.name)));
        }
        clusters.push(KindCluster {
            name: c.name.clone(),
            kubeconfig: dir.join("clusters").join(&c.name).join("kubeconfig"),
            kind_name,
            pods: pods.to_string(),
            services: services.to_string(),
            nodes,
        });
    }
    Ok(KindRunInfo {
        id: id.to_string(),
        dir: dir.to_path_buf(),
        number,
        topology: topology.topology.clone(),
        network: format!("fd-kind-{number}"),
        subnet: addresses::kind_network(number).to_string(),
        image: image.to_string(),
        engine: Some(engine::in_effect()),
        clusters,
        hosts: hosts
            .iter()
            .enumerate()
            .map(|(i, h)| KindHost { name: h.clone(), ip: addresses::kind_host(number, i as u8).to_string(), container: format!("{PREFIX}{number}-host-{h}") })
            .collect(),
    })
}

/// The kind configuration of `cluster`: `fixtures/kind/cluster.yaml` with the cluster's
/// nodes and subnets (JSON, which kind's YAML reader takes).
pub fn cluster_config(fixtures: &Path, cluster: &KindCluster) -> Result<String, BackendError> {
    let path = fixtures.join("kind/cluster.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| BackendError::io(&path, e))?;
    let mut config: serde_json::Value = serde_saphyr::from_str(&text).map_err(|e| BackendError::Setup(format!("{}: {e}", path.display())))?;
    let networking = config
        .as_object_mut()
        .ok_or_else(|| BackendError::Setup(format!("{}: expected a mapping", path.display())))?
        .entry("networking")
        .or_insert_with(|| serde_json::json!({}));
    networking["podSubnet"] = cluster.pods.clone().into();
    networking["serviceSubnet"] = cluster.services.clone().into();
    config["nodes"] = cluster
        .nodes
        .iter()
        .map(|n| match n.role {
            NodeRole::ControlPlane => serde_json::json!({
                "role": "control-plane",
                "extraMounts": [{ "hostPath": authn_dir(cluster).display().to_string(), "containerPath": AUTHN_IN_NODE, "readOnly": true }],
            }),
            NodeRole::Worker => serde_json::json!({ "role": "worker" }),
        })
        .collect();
    Ok(serde_json::to_string_pretty(&config).expect("a kind configuration serialises"))
}

/// The directory a cluster's control-plane node mounts at [`AUTHN_IN_NODE`].
fn authn_dir(cluster: &KindCluster) -> PathBuf {
    cluster.kubeconfig.with_file_name("authn")
}

/// The cluster's structured authentication configuration, as the harness writes it.
pub fn authentication_config(cluster: &KindCluster) -> PathBuf {
    authn_dir(cluster).join("authentication-config.yaml")
}

impl KindRunInfo {
    pub fn load(dir: &Path) -> Result<KindRunInfo, BackendError> {
        let path = dir.join("kind-run.json");
        let text = std::fs::read_to_string(&path).map_err(|e| BackendError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| BackendError::Setup(format!("{}: {e}", path.display())))
    }

    fn save(&self) -> Result<(), BackendError> {
        let path = self.dir.join("kind-run.json");
        let text = serde_json::to_string_pretty(self).expect("a kind run serialises");
        crate::files::write_atomic(&path, text.as_bytes(), 0o644).map_err(|e| BackendError::io(&path, e))
    }

    pub fn cluster(&self, name: &str) -> Result<&KindCluster, BackendError> {
        self.clusters.iter().find(|c| c.name == name).ok_or_else(|| BackendError::Setup(format!("run {} has no cluster `{name}`", self.id)))
    }
}

/// A kind run that is up.
#[derive(Clone, Debug)]
pub struct KindRun {
    pub info: KindRunInfo,
}

impl KindRun {
    /// Plan, record, then create the network and every cluster, wait until every node is
    /// Ready, and load the components' images (`firedrill` is the executable the
    /// workspace's binaries sit next to). On any failure whatever was made is removed
    /// before the error returns (with the end of the control-plane node's log in it).
    pub async fn up(paths: &Paths, topology: &Topology, hosts: &[String], firedrill: &Path) -> Result<KindRun, BackendError> {
        let tools = preflight(paths)?;
        tracing::info!("kind: Docker engine: {}", engine::describe(engine::in_effect().as_deref()));
        warn_inotify(topology.clusters.iter().map(|c| c.nodes.len()).sum());
        let v = Versions::load(&paths.fixtures).map_err(|e| BackendError::Setup(e.to_string()))?;
        let binaries = Binaries::in_cache(&crate::fixtures::cache_dir(), &v);
        let image_map = crate::backend::images::ImageMap::load(&paths.fixtures, &binaries, firedrill).map_err(|e| BackendError::Setup(e.to_string()))?;
        images::check(&image_map)?;
        images::build_all(&image_map)?;
        let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
        let id = format!("{}-{stamp}-{:04x}", topology.topology, std::process::id() % 0x10000);
        let (dir, number) = allocate(&id)?;
        let info = match plan(&id, &dir, number, topology, hosts, &tools.image) {
            Ok(i) => i,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        info.save()?;
        let mut run = KindRun { info };
        let created = match run.create(paths, &tools).await {
            Ok(()) => match run.record_addresses() {
                Ok(()) => images::load(&run.info, &tools.kind, &image_map).await.map(|_| ()),
                Err(e) => Err(e),
            },
            Err(e) => Err(BackendError::Setup(format!("{e}{}", run.diagnostics()))),
        };
        if let Err(e) = created {
            let _ = down(&run.info.dir).await;
            return Err(e);
        }
        Ok(run)
    }

    async fn create(&self, paths: &Paths, tools: &Tools) -> Result<(), BackendError> {
        let i = &self.info;
        let gateway = std::net::Ipv4Addr::from(addresses::kind_network(i.number).first() + 1).to_string();
        run_async(
            "docker",
            [
                "network",
                "create",
                "--driver=bridge",
                &format!("--subnet={}", i.subnet),
                &format!("--ip-range={}", addresses::kind_nodes(i.number)),
                &format!("--gateway={gateway}"),
                "--opt=com.docker.network.bridge.enable_ip_masquerade=false",
                &format!("--opt=com.docker.network.bridge.name={}", i.network),
                &format!("--label=firedrill.run={}", i.id),
                &i.network,
            ]
            .map(String::from)
            .to_vec(),
            vec![],
        )
        .await?;
        hosts::create(i).await?;
        for c in &i.clusters {
            let cdir = c.kubeconfig.parent().expect("a kubeconfig path has a parent");
            std::fs::create_dir_all(authn_dir(c)).map_err(|e| BackendError::io(&authn_dir(c), e))?;
            let auth = authentication_config(c);
            if !auth.is_file() {
                crate::backend::local::pki::write_public(&auth, crate::backend::local::controlplane::EMPTY_AUTHENTICATION_CONFIG)?;
            }
            let config = cdir.join("kind.json");
            std::fs::write(&config, cluster_config(&paths.fixtures, c)?).map_err(|e| BackendError::io(&config, e))?;
            let args = [
                "create",
                "cluster",
                "--name",
                &c.kind_name,
                "--image",
                &i.image,
                "--config",
                &config.display().to_string(),
                "--kubeconfig",
                &c.kubeconfig.display().to_string(),
                "--retain",
                "--wait",
                "0s",
            ]
            .map(String::from)
            .to_vec();
            // kind's own name for the network is fixed ("kind"); this one makes it use the run's.
            let env = vec![("KIND_EXPERIMENTAL_DOCKER_NETWORK".to_string(), i.network.clone())];
            run_async(&tools.kind.display().to_string(), args, env).await?;
        }
        for c in &i.clusters {
            wait_ready(c).await?;
        }
        Ok(())
    }

    /// Every node's address on the run's network, into the plan.
    fn record_addresses(&mut self) -> Result<(), BackendError> {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", self.info.network);
        for c in &mut self.info.clusters {
            for n in &mut c.nodes {
                let ip = run("docker", &["inspect", "--format", &format, &n.container])?;
                n.ip = Some(ip.trim().to_string()).filter(|ip| !ip.is_empty());
            }
        }
        self.info.save()
    }

    /// The run in `dir`, as `up` left it.
    pub fn attach(dir: &Path) -> Result<KindRun, BackendError> {
        let info = KindRunInfo::load(dir)?;
        engine::check(&info.id, info.engine.clone())?;
        Ok(KindRun { info })
    }

    /// Whether every node container of the run still exists.
    pub fn alive(&self) -> bool {
        self.info.clusters.iter().flat_map(|c| &c.nodes).all(|n| run("docker", &["inspect", "--format", "{{.Id}}", &n.container]).is_ok())
    }

    /// The end of each control-plane node's log and of its kubelet's journal.
    fn diagnostics(&self) -> String {
        let mut out = String::new();
        for c in &self.info.clusters {
            for n in c.nodes.iter().filter(|n| n.role == NodeRole::ControlPlane) {
                if let Ok(log) = run("docker", &["logs", "--tail", "15", &n.container]) {
                    out.push_str(&format!("\nlast lines of node {}'s console:\n{log}", n.container));
                }
                if let Ok(log) = run("docker", &["exec", &n.container, "journalctl", "--no-pager", "-n", "15", "-u", "kubelet", "-u", "containerd"]) {
                    out.push_str(&format!("\nlast lines of its kubelet and containerd:\n{log}"));
                }
            }
        }
        out
    }

    pub async fn down(&self) -> Result<(), BackendError> {
        down(&self.info.dir).await
    }
}

/// Every node of `c` registered and Ready.
async fn wait_ready(c: &KindCluster) -> Result<(), BackendError> {
    use k8s_openapi::api::core::v1::Node;
    let client = super::kube_client(&c.kubeconfig).await?;
    let nodes: kube::Api<Node> = kube::Api::all(client);
    let want: Vec<String> = c.nodes.iter().map(|n| n.container.clone()).collect();
    wait::until(Deadline::after(READY_TIMEOUT), &format!("every node of kind cluster {} to be Ready", c.kind_name), || {
        let nodes = nodes.clone();
        let want = want.clone();
        async move {
            let list = nodes.list(&Default::default()).await.ok()?;
            let ready = |name: &str| {
                list.items.iter().any(|n| {
                    n.metadata.name.as_deref() == Some(name)
                        && n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
            };
            want.iter().all(|w| ready(w)).then_some(())
        }
    })
    .await?;
    Ok(())
}

/// Take the lowest free kind run number under the state directory's lock, reserving it by
/// creating the run directory with a placeholder plan.
fn allocate(id: &str) -> Result<(PathBuf, u8), BackendError> {
    let root = super::state_root();
    std::fs::create_dir_all(runs_dir()).map_err(|e| BackendError::io(&runs_dir(), e))?;
    let lock_path = root.join("lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| BackendError::io(&lock_path, e))?;
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| BackendError::Setup(format!("locking {}: {e}", lock_path.display())))?;
    let used: Vec<u8> = std::fs::read_dir(runs_dir()).into_iter().flatten().filter_map(|e| e.ok()).filter_map(|e| reserved_number(&e.path())).collect();
    let networks = run("docker", &["network", "ls", "--format", "{{.Name}}"]).unwrap_or_default();
    let dir = runs_dir().join(id);
    // Machine-wide: a run of another state directory holds its number too.
    let free = super::numbers::reserve("kind", addresses::KIND_RUNS.count(), addresses::KIND_RUNS.filter(|n| !used.contains(n)), &dir, |n| {
        networks.lines().any(|l| l == format!("fd-kind-{n}"))
    })?;
    let placeholder = serde_json::json!({ "id": id, "number": free, "reserved": true, "engine": engine::in_effect() });
    let path = dir.join("kind-run.json");
    crate::files::write_atomic(&path, placeholder.to_string().as_bytes(), 0o644).map_err(|e| BackendError::io(&path, e))?;
    Ok((dir, free))
}

fn reserved_number(dir: &Path) -> Option<u8> {
    plan_json(dir)?.get("number")?.as_u64().and_then(|n| u8::try_from(n).ok())
}

/// The engine a plan, or a placeholder plan, records; None when it records none.
fn recorded_engine(dir: &Path) -> Option<Option<String>> {
    plan_json(dir)?.get("engine").map(|e| e.as_str().map(str::to_string))
}

fn plan_json(dir: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("kind-run.json")).ok()?).ok()
}

/// Tear down the kind run in `dir`: every cluster of its plan (`kind delete`, then any
/// container still carrying the cluster's label, with its volumes), its network, its
/// directory. Works from a placeholder plan too; a second call finds nothing and succeeds.
pub async fn down(dir: &Path) -> Result<(), BackendError> {
    if !dir.exists() {
        return Ok(());
    }
    let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    engine::check(&id, recorded_engine(dir))?;
    let number = reserved_number(dir);
    let clusters: Vec<String> = match KindRunInfo::load(dir) {
        Ok(info) => info.clusters.iter().map(|c| c.kind_name.clone()).collect(),
        Err(_) => vec![],
    };
    let mut prefixes = clusters.clone();
    if clusters.is_empty()
        && let Some(n) = number
    {
        prefixes.push(format!("{PREFIX}{n}-"));
    }
    remove_clusters(|name| prefixes.iter().any(|p| name == p || (p.ends_with('-') && name.starts_with(p.as_str())))).await?;
    if let Some(n) = number {
        apiserver::stop_all(dir);
        hosts::remove(Some(n)).await?;
        remove_network(&format!("fd-kind-{n}"))?;
    }
    std::fs::remove_dir_all(dir).map_err(|e| BackendError::io(dir, e))?;
    super::numbers::release(dir);
    Ok(())
}

/// Remove every node container whose kind cluster label `matches`, with its volumes.
async fn remove_clusters(matches: impl Fn(&str) -> bool) -> Result<(), BackendError> {
    let listing = run(
        "docker",
        &["ps", "-a", "--filter", &format!("label={CLUSTER_LABEL}"), "--format", &format!("{{{{.Names}}}}\t{{{{.Label \"{CLUSTER_LABEL}\"}}}}")],
    )?;
    let containers: Vec<String> =
        listing.lines().filter_map(|l| l.split_once('\t')).filter(|(_, cluster)| matches(cluster)).map(|(name, _)| name.to_string()).collect();
    if containers.is_empty() {
        return Ok(());
    }
    let mut args = vec!["rm".to_string(), "--force".into(), "--volumes".into()];
    args.extend(containers.iter().cloned());
    freezer::end_containers(args, &containers).await
}

fn remove_network(name: &str) -> Result<(), BackendError> {
    let exists = run("docker", &["network", "ls", "--filter", &format!("name=^{name}$"), "--format", "{{.Name}}"])?;
    if exists.lines().any(|l| l == name) {
        run("docker", &["network", "rm", name])?;
    }
    Ok(())
}

/// Tear down every kind run this state directory records, reservations included. Nothing
/// else: a kind cluster, container or network of another state directory's run, or of
/// the user's, is theirs; `sweep` lists what carries firedrill's names. A run that cannot
/// be taken down (on another engine, an engine that does not answer) is reported with its
/// reason, and the others are taken down all the same.
pub async fn down_all() -> (Vec<PathBuf>, Vec<String>) {
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for dir in std::fs::read_dir(runs_dir()).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())) {
        let recorded = is_run(&dir);
        match down(&dir).await {
            Ok(()) if recorded => done.push(dir),
            Ok(()) => {}
            Err(e) => failed.push(format!("{}: {e}", dir.display())),
        }
    }
    (done, failed)
}

/// Whether a kind cluster's name is one firedrill gives (`fd-k<N>-<cluster>`).
fn is_firedrill_cluster(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(n, cluster)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !cluster.is_empty())
}

/// What carries the kind backend's names and no kind run of this state directory records:
/// kind clusters named `fd-k<N>-…`, host containers and networks labelled with a kind run
/// number. Nothing when no Docker engine answers.
pub fn strays() -> Vec<super::Stray> {
    if run("docker", &["info"]).is_err() {
        return vec![];
    }
    let mut numbers = Vec::new();
    let mut clusters = Vec::new();
    for dir in std::fs::read_dir(runs_dir()).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())) {
        numbers.extend(reserved_number(&dir));
        if let Ok(info) = KindRunInfo::load(&dir) {
            clusters.extend(info.clusters.into_iter().map(|c| c.kind_name));
        }
    }
    let ours = |n: u8| numbers.contains(&n);
    let mut out = Vec::new();
    let listing = run("docker", &["ps", "-a", "--filter", &format!("label={CLUSTER_LABEL}"), "--format", &format!("{{{{.Label \"{CLUSTER_LABEL}\"}}}}")])
        .unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    for cluster in listing.lines().filter(|c| is_firedrill_cluster(c)) {
        let number = cluster[PREFIX.len()..].split_once('-').and_then(|(n, _)| n.parse().ok());
        if !clusters.iter().any(|c| c == cluster) && !number.is_some_and(ours) && seen.insert(cluster.to_string()) {
            out.push(super::Stray { kind: super::StrayKind::KindCluster, name: cluster.to_string() });
        }
    }
    let hosts = run(
        "docker",
        &["ps", "-a", "--filter", &format!("label={}", hosts::RUN_LABEL), "--format", &format!("{{{{.Names}}}}\t{{{{.Label \"{}\"}}}}", hosts::RUN_LABEL)],
    )
    .unwrap_or_default();
    for (name, number) in hosts.lines().filter_map(|l| l.split_once('\t')) {
        if !number.parse().is_ok_and(ours) {
            out.push(super::Stray { kind: super::StrayKind::HostContainer, name: name.to_string() });
        }
    }
    let networks = run("docker", &["network", "ls", "--filter", "label=firedrill.run", "--format", "{{.Name}}"]).unwrap_or_default();
    for name in networks.lines() {
        if name.strip_prefix("fd-kind-").and_then(|n| n.parse::<u8>().ok()).is_some_and(|n| !ours(n)) {
            out.push(super::Stray { kind: super::StrayKind::DockerNetwork, name: name.to_string() });
        }
    }
    out
}

/// Remove what [`strays`] listed: clusters and containers (with their volumes), then networks.
pub async fn remove_strays(strays: &[super::Stray]) -> Result<(), BackendError> {
    let clusters: Vec<&str> = strays.iter().filter(|s| s.kind == super::StrayKind::KindCluster).map(|s| s.name.as_str()).collect();
    if !clusters.is_empty() {
        remove_clusters(|name| clusters.contains(&name)).await?;
    }
    let containers: Vec<String> = strays.iter().filter(|s| s.kind == super::StrayKind::HostContainer).map(|s| s.name.clone()).collect();
    if !containers.is_empty() {
        let mut args = vec!["rm".to_string(), "--force".into(), "--volumes".into()];
        args.extend(containers);
        run_async("docker", args, vec![]).await?;
    }
    for s in strays.iter().filter(|s| s.kind == super::StrayKind::DockerNetwork) {
        remove_network(&s.name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(yaml: &str) -> Topology {
        serde_saphyr::from_str(yaml).unwrap()
    }

    /// Before, a plan made on the CLI's default engine (`"engine": null`) read back as a
    /// plan that records no engine, and attaching to it checked nothing.
    #[test]
    fn a_plan_reads_back_the_engine_it_recorded_the_default_one_included() {
        let t = topology("topology: t\nclusters:\n  - name: a\n    nodes: [{name: cp, role: control-plane}]\n");
        let mut p = plan("r", Path::new("/tmp/r"), 0, &t, &[], "img").unwrap();
        for recorded in [None, Some("unix:///x.sock".to_string())] {
            p.engine = Some(recorded.clone());
            let back: KindRunInfo = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(back.engine, Some(recorded));
        }
        let mut old = serde_json::to_value(&p).unwrap();
        old.as_object_mut().unwrap().remove("engine");
        assert_eq!(serde_json::from_value::<KindRunInfo>(old).unwrap().engine, None, "a plan from before engines were recorded");
    }

    #[test]
    fn plan_names_nodes_as_kind_does_and_takes_the_runs_subnets() {
        let t = topology(
            "topology: t\nclusters:\n  - name: a\n    nodes: [{name: cp, role: control-plane}, {name: w1}, {name: w2}]\n  - name: b\n    nodes: [{name: cp, role: control-plane}]\n",
        );
        let p = plan("r", Path::new("/tmp/r"), 2, &t, &["lb".into()], "img").unwrap();
        let a = p.cluster("a").unwrap();
        assert_eq!(a.kind_name, "fd-k2-a");
        let containers: Vec<&str> = a.nodes.iter().map(|n| n.container.as_str()).collect();
        assert_eq!(containers, ["fd-k2-a-control-plane", "fd-k2-a-worker", "fd-k2-a-worker2"]);
        assert_eq!(p.network, "fd-kind-2");
        assert_eq!(p.subnet, "198.18.226.0/24");
        assert_eq!(p.hosts[0].ip, "198.18.226.200");
        assert_eq!(p.hosts[0].container, "fd-k2-host-lb");
        let (pods, services) = addresses::kind_cluster(2, 1);
        assert_eq!(p.cluster("b").unwrap().pods, pods.to_string());
        assert_eq!(p.cluster("b").unwrap().services, services.to_string());
    }

    #[test]
    fn an_ha_control_plane_is_declared_not_runnable() {
        let t = topology(
            "topology: ha\nclusters:\n  - name: main\n    etcd: 3\n    apiservers: 2\n    nodes: [{name: c1, role: control-plane}, {name: c2, role: control-plane}, {name: c3, role: control-plane}]\n",
        );
        let e = plan("r", Path::new("/tmp/r"), 0, &t, &[], "img").unwrap_err().to_string();
        assert!(e.starts_with("not runnable on kind:"), "{e}");
        assert!(e.contains("load-balancer image"), "{e}");
    }

    #[test]
    fn the_cluster_configuration_keeps_the_fixture_and_adds_nodes_and_subnets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("fixtures");
        let t = topology("topology: t\nclusters:\n  - name: a\n    nodes: [{name: cp, role: control-plane}, {name: w1}]\n");
        let p = plan("r", Path::new("/tmp/r"), 0, &t, &[], "img").unwrap();
        let c: serde_json::Value = serde_json::from_str(&cluster_config(&root, &p.clusters[0]).unwrap()).unwrap();
        assert_eq!(c["kind"], "Cluster");
        assert_eq!(c["networking"]["podSubnet"], "198.19.128.0/22");
        assert_eq!(c["networking"]["serviceSubnet"], "198.19.192.0/22");
        assert_eq!(c["networking"]["kubeProxyMode"], "nftables");
        assert_eq!(c["nodes"][1], serde_json::json!({ "role": "worker" }));
        assert_eq!(c["nodes"][0]["role"], "control-plane");
        assert_eq!(c["nodes"][0]["extraMounts"][0]["hostPath"], "/tmp/r/clusters/a/authn");
        assert_eq!(c["nodes"][0]["extraMounts"][0]["containerPath"], AUTHN_IN_NODE);
        assert!(c["kubeadmConfigPatches"][0].as_str().unwrap().contains("failCgroupV1: false"));
        assert!(c["kubeadmConfigPatches"][1].as_str().unwrap().contains(&format!("{AUTHN_IN_NODE}/authentication-config.yaml")));
    }
}
