//! Lose a node: its agent stops heartbeating and its pods' processes die; the real
//! node-lifecycle controller notices and evicts. Restoring is a reboot: a fresh agent.
//! On kind, the node's container is killed and started again.

use k8s_openapi::api::core::v1::Node;
use kube::Api;

use super::{Expect, FaultError, backend_err};
use crate::env::Env;

pub async fn lose(env: &Env, cluster: &str, node: &str) -> Result<(), FaultError> {
    env.lose_node(cluster, node).await.map(|_| ()).map_err(backend_err(format!("losing node {cluster}/{node}")))
}

pub async fn restore(env: &Env, cluster: &str, node: &str) -> Result<(), FaultError> {
    env.restore_node(cluster, node).await.map(|_| ()).map_err(backend_err(format!("restoring node {cluster}/{node}")))
}

/// In effect: the node's agent is stopped and no process of its pods is left; undone: the
/// agent runs and the Node is Ready again.
pub async fn check(env: &Env, cluster: &str, node: &str, expect: Expect) -> Result<(), String> {
    if let Some(run) = env.kind() {
        // kind: the node's container is not running (so nothing of its pods is); undone:
        // it runs and the Node is Ready again.
        let n = run.node(cluster, node).map_err(|e| e.to_string())?;
        let up = crate::backend::kind::ops::running(&n.container).map_err(|e| e.to_string())?;
        match (expect, up) {
            (Expect::InEffect, false) => return Ok(()),
            (Expect::InEffect, true) => return Err(format!("container {} still runs", n.container)),
            (Expect::Reverted, false) => return Err(format!("container {} not running", n.container)),
            (Expect::Reverted, true) => return ready(env, cluster, &n.container).await,
        }
    }
    super::host::processes(env, &format!("agent/{cluster}/{node}"), expect).await?;
    match expect {
        Expect::InEffect => {
            let left = env.node_pids(cluster, node);
            if left.is_empty() { Ok(()) } else { Err(format!("{} process(es) of the node's pods still alive", left.len())) }
        }
        Expect::Reverted => ready(env, cluster, node).await,
    }
}

/// The Node named `node` (Kubernetes' name for it) is Ready.
async fn ready(env: &Env, cluster: &str, node: &str) -> Result<(), String> {
    let c = env.cluster(cluster).map_err(|e| e.to_string())?;
    let n = Api::<Node>::all(c.client.clone()).get(node).await.map_err(|e| format!("reading node {node}: {}", crate::error::kube_message(&e)))?;
    let ready = n.status.and_then(|s| s.conditions).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if ready { Ok(()) } else { Err(format!("node {cluster}/{node} not Ready")) }
}
