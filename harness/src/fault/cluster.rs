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
        // kind: no node container of the cluster runs; undone: every one does.
        let c = run.kind_cluster(cluster).map_err(|e| e.to_string())?;
        let mut wrong = Vec::new();
        for n in &c.nodes {
            let up = crate::backend::kind::ops::running(&n.container).map_err(|e| e.to_string())?;
            if up != (expect == Expect::Reverted) {
                wrong.push(format!("{} {}", n.container, if up { "runs" } else { "is stopped" }));
            }
        }
        return if wrong.is_empty() { Ok(()) } else { Err(wrong.join(", ")) };
    }
    super::host::processes(env, &format!("{cluster}/"), expect).await?;
    super::host::processes(env, &format!("agent/{cluster}/"), expect).await
}
