//! The run directory: what a local run is (`run.json`, written before anything exists)
//! and everything it created (`ledger.jsonl`, appended *before* each creation), so that
//! `firedrill down` finds it all even after a crash.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::net::Subnet;
use crate::backend::BackendError;
use crate::topology::{NodeRole, Topology};

pub use crate::backend::state_root;

pub fn runs_dir() -> PathBuf {
    state_root().join("runs")
}

/// Every run directory on this machine, oldest first.
pub fn all_runs() -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> =
        std::fs::read_dir(runs_dir()).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("run.json").is_file()).collect();
    runs.sort();
    runs
}

/// A local run as planned: every name and address fixed before anything is created.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub dir: PathBuf,
    pub topology: Topology,
    pub subnet: u8,
    /// The firedrill executable that runs the daemon and the process shim.
    pub firedrill: PathBuf,
    /// cgroup (v2) directory holding every process of the run.
    pub cgroup: PathBuf,
    pub clusters: Vec<ClusterInfo>,
    pub hosts: Vec<HostInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    pub dir: PathBuf,
    /// The address clients use: the API server, or its load balancer.
    pub server: String,
    pub ca: PathBuf,
    /// Client-certificate admin kubeconfig (system:masters): the break-glass path.
    pub admin_kubeconfig: PathBuf,
    pub service_range: String,
    pub nodes: Vec<NodeInfo>,
    /// Nodes running an etcd member, in member order.
    pub etcd_nodes: Vec<String>,
    /// Nodes running an API server.
    pub apiserver_nodes: Vec<String>,
    /// The host balancing the API servers, when there is more than one.
    pub apiserver_lb: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub role: NodeRole,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub veth: u8,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A host outside every cluster (a load balancer, a directory server).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostInfo {
    pub name: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub veth: u8,
}

impl RunInfo {
    /// Fix names and addresses for `topology` plus `hosts` in run number `subnet`.
    pub fn plan(id: &str, dir: &Path, topology: &Topology, hosts: &[String], subnet: u8, firedrill: &Path, cgroup_root: &Path) -> RunInfo {
        let s = Subnet { index: subnet };
        let mut veth = 0u8;
        let mut next_veth = || {
            veth += 1;
            veth
        };
        let mut clusters = Vec::new();
        let mut all_hosts: Vec<HostInfo> = Vec::new();
        for (k, c) in topology.clusters.iter().enumerate() {
            let cdir = dir.join("clusters").join(&c.name);
            let nodes: Vec<NodeInfo> = c
                .nodes
                .iter()
                .enumerate()
                .map(|(n, node)| NodeInfo {
                    name: node.name.clone(),
                    role: node.role,
                    ip: s.host_ip(10 + 20 * k as u8 + n as u8),
                    netns: format!("fd{subnet}-{}-{}", c.name, node.name),
                    veth: next_veth(),
                    labels: node.labels.clone(),
                })
                .collect();
            let control: Vec<&NodeInfo> = nodes.iter().filter(|n| n.role == NodeRole::ControlPlane).collect();
            let etcd_nodes = control.iter().take(c.etcd as usize).map(|n| n.name.clone()).collect();
            let apiserver_nodes: Vec<String> = control.iter().take(c.apiservers as usize).map(|n| n.name.clone()).collect();
            let apiserver_lb = (c.apiservers > 1).then(|| {
                let name = format!("{}-api-lb", c.name);
                all_hosts.push(HostInfo { ip: s.host_ip(190 + k as u8), netns: format!("fd{subnet}-host-{name}"), veth: next_veth(), name: name.clone() });
                name
            });
            let server_ip = match &apiserver_lb {
                Some(lb) => all_hosts.iter().find(|h| &h.name == lb).expect("just added").ip,
                None => nodes.iter().find(|n| n.name == apiserver_nodes[0]).expect("validated topology").ip,
            };
            clusters.push(ClusterInfo {
                name: c.name.clone(),
                server: format!("https://{server_ip}:6443"),
                ca: cdir.join("pki/ca.crt"),
                admin_kubeconfig: cdir.join("admin.kubeconfig"),
                service_range: s.service_range(k),
                dir: cdir,
                nodes,
                etcd_nodes,
                apiserver_nodes,
                apiserver_lb,
            });
        }
        for (h, name) in hosts.iter().enumerate() {
            all_hosts.push(HostInfo { name: name.clone(), ip: s.host_ip(200 + h as u8), netns: format!("fd{subnet}-host-{name}"), veth: next_veth() });
        }
        RunInfo {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            topology: topology.clone(),
            subnet,
            firedrill: firedrill.to_path_buf(),
            cgroup: cgroup_root.join(id),
            clusters,
            hosts: all_hosts,
        }
    }

    pub fn load(dir: &Path) -> Result<RunInfo, BackendError> {
        let path = dir.join("run.json");
        let text = std::fs::read_to_string(&path).map_err(|e| BackendError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| BackendError::Setup(format!("{}: {e}", path.display())))
    }

    pub fn save(&self) -> Result<(), BackendError> {
        let text = serde_json::to_string_pretty(self).expect("run info serialises");
        super::pki::write_public(&self.dir.join("run.json"), &text)
    }

    pub fn subnet(&self) -> Subnet {
        Subnet { index: self.subnet }
    }

    pub fn cluster(&self, name: &str) -> Result<&ClusterInfo, BackendError> {
        self.clusters.iter().find(|c| c.name == name).ok_or_else(|| BackendError::Setup(format!("run {} has no cluster `{name}`", self.id)))
    }

    pub fn host(&self, name: &str) -> Result<&HostInfo, BackendError> {
        self.hosts.iter().find(|h| h.name == name).ok_or_else(|| BackendError::Setup(format!("run {} has no host `{name}`", self.id)))
    }
}

impl ClusterInfo {
    pub fn node(&self, name: &str) -> Result<&NodeInfo, BackendError> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| BackendError::Setup(format!("cluster {} has no node `{name}`", self.name)))
    }
    pub fn workers(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter(|n| n.role == NodeRole::Worker)
    }
    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
}

/// Append-only record of what a run created, one JSON object per line, flushed before
/// the thing is created.
#[derive(Clone, Debug)]
pub struct Ledger {
    path: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub kind: String,
    pub name: String,
}

impl Ledger {
    pub fn at(run_dir: &Path) -> Ledger {
        Ledger { path: run_dir.join("ledger.jsonl") }
    }

    pub fn record(&self, kind: &str, name: &str) -> Result<(), BackendError> {
        let entry = LedgerEntry { kind: kind.into(), name: name.into() };
        if self.entries().contains(&entry) {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(|e| BackendError::io(&self.path, e))?;
        let mut line = serde_json::to_string(&entry).expect("serialises");
        line.push('\n');
        f.write_all(line.as_bytes()).and_then(|_| f.sync_data()).map_err(|e| BackendError::io(&self.path, e))
    }

    /// Entries in creation order; a torn last line (crash mid-write) is skipped.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        std::fs::read_to_string(&self.path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// Take the lowest free run number under an exclusive lock on the state directory,
/// reserving it by creating the run directory with a `run.json` placeholder.
pub fn allocate(id: &str) -> Result<(PathBuf, u8), BackendError> {
    let root = state_root();
    std::fs::create_dir_all(runs_dir()).map_err(|e| BackendError::io(&runs_dir(), e))?;
    let lock_path = root.join("lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| BackendError::io(&lock_path, e))?;
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| BackendError::Setup(format!("locking {}: {e}", lock_path.display())))?;
    let used: Vec<u8> = all_runs().iter().filter_map(|d| RunInfo::load(d).ok()).map(|r| r.subnet).collect();
    let runs = crate::backend::addresses::LOCAL_RUNS;
    let dir = runs_dir().join(id);
    // Machine-wide: a run of another state directory holds its number too.
    let free = crate::backend::numbers::reserve("local", runs.clone().count(), runs.filter(|i| !used.contains(i)), &dir, |i| {
        super::net::link_exists(&Subnet { index: i }.bridge_name())
    })?;
    // Reserve the number until the real run.json replaces this.
    let placeholder = serde_json::json!({ "id": id, "subnet": free, "reserved": true });
    super::pki::write_public(&dir.join("run.json"), &placeholder.to_string())?;
    Ok((dir, free))
}

/// The subnet recorded in a run directory, even when run.json is only a reservation.
pub fn reserved_subnet(dir: &Path) -> Option<u8> {
    let text = std::fs::read_to_string(dir.join("run.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("subnet")?.as_u64().map(|s| s as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_appends_once_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::at(dir.path());
        l.record("netns", "fd1-a").unwrap();
        l.record("netns", "fd1-a").unwrap();
        l.record("link", "fd1br").unwrap();
        std::fs::OpenOptions::new().append(true).open(dir.path().join("ledger.jsonl")).unwrap().write_all(b"{\"kind\":\"ne").unwrap();
        assert_eq!(l.entries().len(), 2);
    }

    #[test]
    fn plan_gives_distinct_addresses_inside_the_test_range() {
        let topo: Topology = serde_saphyr::from_str(
            "topology: t\nclusters:\n  - name: a\n    nodes: [{name: cp, role: control-plane}, {name: w}]\n  - name: b\n    etcd: 3\n    apiservers: 2\n    nodes: [{name: c1, role: control-plane}, {name: c2, role: control-plane}, {name: c3, role: control-plane}]\n",
        )
        .unwrap();
        let run = RunInfo::plan("r", Path::new("/tmp/r"), &topo, &["lb".into()], 7, Path::new("/x"), Path::new("/cg"));
        let mut ips: Vec<Ipv4Addr> = run.clusters.iter().flat_map(|c| c.nodes.iter().map(|n| n.ip)).collect();
        ips.extend(run.hosts.iter().map(|h| h.ip));
        let n = ips.len();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), n, "addresses are distinct");
        assert!(ips.iter().all(|ip| ip.octets()[0] == 198 && ip.octets()[1] == 18 && ip.octets()[2] == 7));
        assert!(run.cluster("b").unwrap().apiserver_lb.is_some());
        assert!(run.cluster("b").unwrap().server.starts_with("https://198.18.7.191:"));
        assert_eq!(run.cluster("b").unwrap().etcd_nodes.len(), 3);
    }
}
