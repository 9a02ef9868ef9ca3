//! Stop a cluster's etcd member(s), gracefully or killed: its API servers lose their
//! storage.

use super::{Expect, FaultError, Signal, backend_err};
use crate::env::Env;

pub async fn stop(env: &Env, cluster: &str, signal: Signal) -> Result<(), FaultError> {
    env.stop_storage(cluster, signal == Signal::Kill).await.map(|_| ()).map_err(backend_err(format!("stopping etcd of cluster {cluster}")))
}

/// Start the members again and wait until they report healthy.
pub async fn start(env: &Env, cluster: &str) -> Result<(), FaultError> {
    env.start_storage(cluster).await.map(|_| ()).map_err(backend_err(format!("starting etcd of cluster {cluster}")))
}

/// In effect: no etcd member of the cluster runs; undone: every one does.
pub async fn check(env: &Env, cluster: &str, expect: Expect) -> Result<(), String> {
    if let Some(run) = env.kind() {
        let up = run.storage_running(cluster).map_err(|e| e.to_string())?;
        return match (expect, up) {
            (Expect::InEffect, false) | (Expect::Reverted, true) => Ok(()),
            (Expect::InEffect, true) => Err(format!("etcd still runs in cluster {cluster}'s control-plane node")),
            (Expect::Reverted, false) => Err(format!("etcd does not run in cluster {cluster}'s control-plane node")),
        };
    }
    super::host::processes(env, &format!("{cluster}/etcd-"), expect).await
}
