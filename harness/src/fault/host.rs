//! Stop every process of a host outside the clusters (a load balancer, an LDAP server):
//! gracefully, or killed.

use super::{Expect, FaultError, Signal, backend_err};
use crate::env::Env;

pub async fn stop(env: &Env, host: &str, signal: Signal) -> Result<(), FaultError> {
    env.stop_host(host, signal == Signal::Kill).await.map(|_| ()).map_err(backend_err(format!("stopping host {host}")))
}

pub async fn start(env: &Env, host: &str) -> Result<(), FaultError> {
    env.start_host(host).await.map(|_| ()).map_err(backend_err(format!("starting host {host}")))
}

/// In effect: no process of the host runs; undone: every one does.
pub async fn check(env: &Env, host: &str, expect: Expect) -> Result<(), String> {
    processes(env, &format!("host/{host}/"), expect).await
}

/// Processes whose name starts with `prefix`: in effect when none runs (a stopped node
/// agent is not even listed), undone when there are some and all of them run.
pub async fn processes(env: &Env, prefix: &str, expect: Expect) -> Result<(), String> {
    let procs: Vec<(String, bool)> = env.processes().await.map_err(|e| e.to_string())?.into_iter().filter(|(n, _)| n.starts_with(prefix)).collect();
    if procs.is_empty() && expect == Expect::Reverted {
        return Err(format!("no process named {prefix}*"));
    }
    let wrong: Vec<&str> = procs.iter().filter(|(_, running)| *running == (expect == Expect::InEffect)).map(|(n, _)| n.as_str()).collect();
    match (wrong.is_empty(), expect) {
        (true, _) => Ok(()),
        (false, Expect::InEffect) => Err(format!("still running: {}", wrong.join(", "))),
        (false, Expect::Reverted) => Err(format!("not running: {}", wrong.join(", "))),
    }
}
