//! Stop a cluster's etcd member(s): its API servers lose their storage.

use super::{FaultError, backend_err};
use crate::env::Env;

pub async fn stop(env: &Env, cluster: &str) -> Result<(), FaultError> {
    env.stop_storage(cluster).await.map(|_| ()).map_err(backend_err(format!("stopping etcd of cluster {cluster}")))
}

/// Start the members again and wait until they report healthy.
pub async fn start(env: &Env, cluster: &str) -> Result<(), FaultError> {
    env.start_storage(cluster).await.map(|_| ()).map_err(backend_err(format!("starting etcd of cluster {cluster}")))
}
