//! Lose a node: its agent stops heartbeating and its pods' processes die; the real
//! node-lifecycle controller notices and evicts. Restoring is a reboot: a fresh agent.

use super::{FaultError, backend_err};
use crate::env::Env;

pub async fn lose(env: &Env, cluster: &str, node: &str) -> Result<(), FaultError> {
    env.lose_node(cluster, node).await.map(|_| ()).map_err(backend_err(format!("losing node {cluster}/{node}")))
}

pub async fn restore(env: &Env, cluster: &str, node: &str) -> Result<(), FaultError> {
    env.restore_node(cluster, node).await.map(|_| ()).map_err(backend_err(format!("restoring node {cluster}/{node}")))
}
