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
    super::host::processes(env, &format!("{cluster}/"), expect).await?;
    super::host::processes(env, &format!("agent/{cluster}/"), expect).await
}
