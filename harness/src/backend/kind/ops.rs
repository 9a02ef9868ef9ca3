//! What faults do to kind clusters, with kind's own mechanisms: a lost node is its container
//! killed (`docker kill`: the machine is gone, its address with it), a stopped cluster is
//! every node container stopped (`docker stop`, which shuts systemd down: the machines and
//! their addresses are gone, so connections time out rather than being refused), stopped
//! storage is etcd's static-pod manifest moved
//! out of the control-plane node's manifest directory (the kubelet stops the pod; with
//! `kill`, etcd is SIGKILLed first), and partitions are nftables tables inside the node
//! containers. Every operation is idempotent, and each revert tolerates an inject that
//! never ran or stopped half-way (the fault contract of `crate::fault`).
//!
//! Containers keep their addresses across a restart: before a node container starts again
//! it is reconnected to the run's network with the address it was created with, so
//! kubeconfigs that name it (the directory's, in other clusters) stay true.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;

use super::{KindCluster, KindNode, KindRun, run, run_async};
use crate::backend::BackendError;
use crate::topology::NodeRole;
use crate::wait::{self, Deadline};

/// Where etcd's manifest is parked while storage is stopped.
const PARKED_ETCD: &str = "/etc/kubernetes/etcd.yaml.firedrill-stopped";
const ETCD_MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";
const READY_AGAIN: Duration = Duration::from_secs(180);

impl KindRun {
    pub fn kind_cluster(&self, cluster: &str) -> Result<&KindCluster, BackendError> {
        self.info.cluster(cluster)
    }

    pub fn node(&self, cluster: &str, node: &str) -> Result<&KindNode, BackendError> {
        let c = self.info.cluster(cluster)?;
        c.nodes.iter().find(|n| n.name == node || n.container == node).ok_or_else(|| BackendError::Setup(format!("cluster {cluster} has no node `{node}`")))
    }

    pub(super) fn control_plane(&self, cluster: &str) -> Result<&KindNode, BackendError> {
        let c = self.info.cluster(cluster)?;
        c.nodes.iter().find(|n| n.role == NodeRole::ControlPlane).ok_or_else(|| BackendError::Setup(format!("cluster {cluster} has no control-plane node")))
    }

    /// Lose a node: its container is killed (SIGKILL to everything in it, as a power cut).
    pub async fn lose_node(&self, cluster: &str, node: &str) -> Result<Vec<String>, BackendError> {
        let n = self.node(cluster, node)?;
        if running(&n.container)? {
            super::freezer::end_containers(vec!["kill".into(), n.container.clone()], std::slice::from_ref(&n.container)).await?;
        }
        Ok(vec![n.container.clone()])
    }

    /// Start the node's container again and wait until its Node is Ready.
    pub async fn restore_node(&self, cluster: &str, node: &str) -> Result<Vec<String>, BackendError> {
        let n = self.node(cluster, node)?.clone();
        let since = jiff::Timestamp::now();
        self.start_containers(std::slice::from_ref(&n)).await?;
        self.wait_ready(cluster, std::slice::from_ref(&n.container), since).await?;
        Ok(vec![n.container])
    }

    /// Stop every node container of the cluster (systemd shuts down in each).
    pub async fn stop_cluster(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        let c = self.info.cluster(cluster)?;
        let mut args = vec!["stop".to_string(), "--time".into(), "10".into()];
        let containers: Vec<String> = c.nodes.iter().map(|n| n.container.clone()).collect();
        args.extend(containers.iter().cloned());
        super::freezer::end_containers(args, &containers).await?;
        Ok(containers)
    }

    /// Start every node container of the cluster and wait until every Node is Ready.
    pub async fn start_cluster(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        let c = self.info.cluster(cluster)?.clone();
        let since = jiff::Timestamp::now();
        self.start_containers(&c.nodes).await?;
        let containers: Vec<String> = c.nodes.iter().map(|n| n.container.clone()).collect();
        self.wait_ready(cluster, &containers, since).await?;
        Ok(containers)
    }

    /// Stop the cluster's etcd: its manifest leaves the kubelet's manifest directory, and
    /// with `kill` the etcd process is SIGKILLed at once rather than stopped by the kubelet.
    pub async fn stop_storage(&self, cluster: &str, kill: bool) -> Result<Vec<String>, BackendError> {
        let cp = self.control_plane(cluster)?;
        let mut script = format!("if [ -f {ETCD_MANIFEST} ]; then mv {ETCD_MANIFEST} {PARKED_ETCD}; fi");
        if kill {
            script.push_str("; pkill -KILL -x etcd || true");
        }
        run_async("docker", vec!["exec".into(), cp.container.clone(), "sh".into(), "-c".into(), script], vec![]).await?;
        Ok(vec![format!("{}/etcd", cp.container)])
    }

    /// Put etcd's manifest back and wait until its container runs again.
    pub async fn start_storage(&self, cluster: &str) -> Result<Vec<String>, BackendError> {
        let cp = self.control_plane(cluster)?.clone();
        let script = format!("if [ -f {PARKED_ETCD} ]; then mv {PARKED_ETCD} {ETCD_MANIFEST}; fi");
        run_async("docker", vec!["exec".into(), cp.container.clone(), "sh".into(), "-c".into(), script], vec![]).await?;
        let container = cp.container.clone();
        wait::until(Deadline::after(READY_AGAIN), &format!("etcd of kind cluster {cluster} to run again"), || {
            let container = container.clone();
            async move { etcd_running(&container).ok()?.then_some(()) }
        })
        .await?;
        Ok(vec![format!("{}/etcd", cp.container)])
    }

    /// Whether etcd runs in the cluster's control-plane node.
    pub fn storage_running(&self, cluster: &str) -> Result<bool, BackendError> {
        etcd_running(&self.control_plane(cluster)?.container)
    }

    /// Reconnect each stopped container to the run's network with its first address, then
    /// start them all.
    async fn start_containers(&self, nodes: &[KindNode]) -> Result<(), BackendError> {
        let mut stopped = Vec::new();
        for n in nodes {
            if running(&n.container)? {
                continue;
            }
            if let Some(ip) = &n.ip {
                let _ = run("docker", &["network", "disconnect", "--force", &self.info.network, &n.container]);
                run("docker", &["network", "connect", "--ip", ip, &self.info.network, &n.container])?;
            }
            stopped.push(n.container.clone());
        }
        if !stopped.is_empty() {
            let mut args = vec!["start".to_string()];
            args.extend(stopped);
            run_async("docker", args, vec![]).await?;
        }
        Ok(())
    }

    /// Every one of `nodes` Ready, reported by a kubelet heartbeat from `since` on: a
    /// Node's status outlives its kubelet, so a Ready written before the restart proves
    /// nothing.
    async fn wait_ready(&self, cluster: &str, nodes: &[String], since: jiff::Timestamp) -> Result<(), BackendError> {
        // Status times have whole seconds.
        let since = since - jiff::SignedDuration::from_secs(1);
        let c = self.info.cluster(cluster)?;
        let client = crate::backend::kube_client(&c.kubeconfig).await?;
        let api: kube::Api<Node> = kube::Api::all(client);
        wait::until(Deadline::after(READY_AGAIN), &format!("node(s) {} of kind cluster {cluster} to be Ready", nodes.join(", ")), || {
            let api = api.clone();
            async move {
                for name in nodes {
                    let n = api.get(name).await.ok()?;
                    let ready = n
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True" && c.last_heartbeat_time.as_ref().is_some_and(|t| t.0 >= since));
                    if !ready {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await?;
        Ok(())
    }
}

/// Whether a container runs (and is not paused).
pub fn running(container: &str) -> Result<bool, BackendError> {
    let state = run("docker", &["inspect", "--format", "{{.State.Running}} {{.State.Paused}}", container])?;
    Ok(state.trim() == "true false")
}

/// Whether a container's network namespace still exists: the container runs, paused or
/// not. A container that is stopped or removed has none (`false`); any other failure to
/// tell (the engine not answering) is an error, never taken for "gone".
pub fn has_netns(container: &str) -> Result<bool, BackendError> {
    match run("docker", &["inspect", "--type", "container", "--format", "{{.State.Running}}", container]) {
        Ok(state) => Ok(state.trim() == "true"),
        Err(BackendError::Command { stderr, .. }) if is_no_such_container(&stderr) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a pod's container (`id`, containerd's, without its `containerd://`) still runs
/// in node container `node`: crictl's state of it, and not found is not running. A node
/// that cannot be asked is an error, never taken for "stopped".
pub fn pod_container_running(node: &str, id: &str) -> Result<bool, BackendError> {
    match run("docker", &["exec", node, "crictl", "inspect", "-o", "go-template", "--template", "{{.status.state}}", id]) {
        Ok(state) => Ok(state.trim() == "CONTAINER_RUNNING"),
        Err(BackendError::Command { stderr, .. }) if stderr.contains("NotFound") || stderr.contains("not found") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Docker's answer to `inspect` of a container that does not exist.
pub fn is_no_such_container(stderr: &str) -> bool {
    stderr.contains("No such container") || stderr.contains("No such object")
}

/// The process id of a running container's first process, whose network namespace is the
/// container's.
pub fn pid(container: &str) -> Result<i32, BackendError> {
    let out = run("docker", &["inspect", "--format", "{{.State.Pid}}", container])?;
    out.trim().parse().ok().filter(|p| *p > 0).ok_or_else(|| BackendError::Setup(format!("container {container} is not running")))
}

fn etcd_running(container: &str) -> Result<bool, BackendError> {
    if !running(container)? {
        return Ok(false);
    }
    let out = run("docker", &["exec", container, "crictl", "ps", "--state", "running", "--name", "^etcd$", "-q"])?;
    Ok(!out.trim().is_empty())
}
