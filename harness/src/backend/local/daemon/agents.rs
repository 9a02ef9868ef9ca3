//! The daemon's node agents: one per node, started fresh (as after a reboot) and stopped
//! with every process of the node's pods.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::{Daemon, kube_client};
use crate::backend::BackendError;
use crate::backend::local::agent::{self, NodeCtx};
use crate::backend::local::controlplane;
use crate::backend::local::process;
use crate::backend::local::state::ClusterInfo;
use crate::topology::NodeRole;

impl Daemon {
    pub(super) async fn start_agent(&self, c: &ClusterInfo, node: &str) -> Result<(), BackendError> {
        let key = format!("{}/{node}", c.name);
        let mut agents = self.agents.lock().await;
        if agents.get(&key).is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let n = c.node(node)?;
        let kubeconfig = controlplane::node_kubeconfig(c, node);
        let client = kube_client(&kubeconfig).await?;
        let api_host = c.server.trim_start_matches("https://").rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default();
        let ctx = Arc::new(NodeCtx {
            client,
            cluster: c.name.clone(),
            node: node.to_string(),
            role: n.role,
            labels: n.labels.clone(),
            ip: n.ip,
            netns: n.netns.clone(),
            run_dir: self.run.dir.clone(),
            pods_dir: c.dir.join("nodes").join(node).join("pods"),
            firedrill: self.run.firedrill.clone(),
            cgroup: self.run.cgroup.join(&c.name).join("nodes").join(node),
            images: self.images.clone(),
            apiserver: (api_host, 6443),
            kubelet_version: self.kubelet_version.clone(),
            ports: Default::default(),
            probe_http: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .map_err(|e| BackendError::Setup(format!("probe HTTP client: {e}")))?,
        });
        let cluster = c.name.clone();
        let node_name = node.to_string();
        let handle = tokio::spawn(async move {
            if let Err(e) = agent::run(ctx).await {
                tracing::error!(cluster, node = node_name, error = %crate::error::chain(&e), "node agent stopped");
            }
        });
        agents.insert(key, handle);
        drop(agents);
        // Only an admin may set node-role labels (NodeRestriction keeps them from nodes).
        if n.role == NodeRole::ControlPlane {
            let admin = kube_client(&c.admin_kubeconfig).await?;
            let api: Api<Node> = Api::all(admin);
            let node_name = node.to_string();
            tokio::spawn(async move {
                let patch = serde_json::json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}});
                for _ in 0..60 {
                    if api.patch(&node_name, &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        Ok(())
    }

    pub(super) async fn stop_agent(&self, c: &ClusterInfo, node: &str) {
        if let Some(h) = self.agents.lock().await.remove(&format!("{}/{node}", c.name)) {
            h.abort();
            let _ = h.await;
        }
        // The node's machine is gone: so are its pods' processes.
        let cg = self.run.cgroup.join(&c.name).join("nodes").join(node);
        process::kill_cgroup(&cg).await;
        process::remove_cgroup(&cg).await;
    }
}
