//! Stop a whole cluster: control plane, storage, node agents and pods.

use super::{Expect, FaultError, backend_err};
use crate::env::Env;

pub async fn stop(env: &Env, cluster: &str) -> Result<(), FaultError> {
    env.stop_cluster(cluster).await.map(|_| ()).map_err(backend_err(format!("stopping cluster {cluster}")))
}

/// Start storage, API servers, controllers and node agents again, each waited for.
pub async fn start(env: &Env, cluster: &str) -> Result<(), FaultError> {
    env.start_cluster(cluster).await.map(|_| ()).map_err(backend_err(format!("starting cluster {cluster}")))
}

/// In effect: no control-plane process and no node agent of the cluster runs; undone:
/// every one does.
pub async fn check(env: &Env, cluster: &str, expect: Expect) -> Result<(), String> {
    if let Some(run) = env.kind() {
        // kind: no kubelet, containerd or container shim runs in any node of the cluster;
        // undone: every node is Ready again.
        return match expect {
            Expect::InEffect => {
                let busy = run.cluster_processes(cluster).map_err(|e| e.to_string())?;
                if busy.is_empty() { Ok(()) } else { Err(format!("still running in {}", busy.join(", "))) }
            }
            Expect::Reverted => {
                let c = run.kind_cluster(cluster).map_err(|e| e.to_string())?;
                for n in &c.nodes {
                    super::node::ready(env, cluster, &n.container).await?;
                }
                Ok(())
            }
        };
    }
    super::host::processes(env, &format!("{cluster}/"), expect).await?;
    super::host::processes(env, &format!("agent/{cluster}/"), expect).await
}
