//! Stop every process of a host outside the clusters (a load balancer, an LDAP server).

use super::{FaultError, backend_err};
use crate::env::Env;

pub async fn stop(env: &Env, host: &str) -> Result<(), FaultError> {
    env.stop_host(host).await.map(|_| ()).map_err(backend_err(format!("stopping host {host}")))
}

pub async fn start(env: &Env, host: &str) -> Result<(), FaultError> {
    env.start_host(host).await.map(|_| ()).map_err(backend_err(format!("starting host {host}")))
}
