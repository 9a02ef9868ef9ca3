//! Stop a whole cluster: control plane, storage, node agents and pods.

use super::{FaultError, backend_err};
use crate::env::Env;

pub async fn stop(env: &Env, cluster: &str) -> Result<(), FaultError> {
    env.stop_cluster(cluster).await.map(|_| ()).map_err(backend_err(format!("stopping cluster {cluster}")))
}

/// Start storage, API servers, controllers and node agents again, each waited for.
pub async fn start(env: &Env, cluster: &str) -> Result<(), FaultError> {
    env.start_cluster(cluster).await.map(|_| ()).map_err(backend_err(format!("starting cluster {cluster}")))
}
