//! Kill one pod of a Deployment: deleted with no grace period, as an instance that
//! fails. The Deployment replaces it; there is nothing to put back, and the revert waits
//! for the Deployment to be at full strength again.
//!
//! In effect means the instance stopped, not only its API object gone (a kubelet that
//! does not act on the deletion leaves the process serving): each of the pod's
//! containers, as the API listed them at planning, is seen stopped where the backend can
//! see it — on the local backend the container's process (`firedrill://PID`, the same
//! process by its start time), on kind the container in its node (crictl). On clusters
//! firedrill did not create (the existing backend) nothing but the API can be asked.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Preconditions};

use serde::{Deserialize, Serialize};

use super::{FaultError, Undo, kube_err};
use crate::backend::BackendKind;
use crate::env::Env;

/// One container of the pod to kill: its runtime's id as the API gives it
/// (`firedrill://PID`, `containerd://ID`), and for a process of this machine its start
/// time (clock ticks since boot, `/proc/PID/stat`), so that a pid reused is not taken for
/// it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    #[serde(default)]
    pub started: Option<u64>,
}

/// A process's start time (field 22 of `/proc/PID/stat`) and whether it is a zombie.
fn process(pid: &str) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's closing parenthesis: state is field 3, starttime field 22.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(19)?.parse().ok()?, fields.first() == Some(&"Z")))
}

/// Pick the Deployment's first Ready pod (by name) to kill.
pub async fn plan(env: &Env, cluster: &str, namespace: &str, deployment: &str) -> Result<Undo, FaultError> {
    let c = env.cluster(cluster).map_err(super::backend_err(format!("kill-pod: cluster {cluster}")))?;
    let d = Api::<Deployment>::namespaced(c.client.clone(), namespace)
        .get(deployment)
        .await
        .map_err(kube_err(format!("reading deployment {namespace}/{deployment} of cluster {cluster}")))?;
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let selector: Vec<String> = d.spec.and_then(|s| s.selector.match_labels).unwrap_or_default().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut pods = Api::<Pod>::namespaced(c.client.clone(), namespace)
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .map_err(kube_err(format!("listing pods of deployment {namespace}/{deployment}")))?
        .items;
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let ready = pods.into_iter().find(crate::objects::available);
    let Some(pod) = ready else {
        return Err(FaultError::Invalid(format!("kill-pod: deployment {namespace}/{deployment} of cluster {cluster} has no Ready pod to kill")));
    };
    let containers = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.container_id)
        .map(|id| {
            let started = id.strip_prefix("firedrill://").and_then(process).map(|(t, _)| t);
            Container { id, started }
        })
        .collect();
    Ok(Undo::AwaitReplicas {
        cluster: cluster.into(),
        namespace: namespace.into(),
        deployment: deployment.into(),
        replicas,
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        pod: pod.metadata.name.unwrap_or_default(),
        uid: pod.metadata.uid.unwrap_or_default(),
        containers,
    })
}

/// Delete the planned pod at once; a pod already gone (or replaced under its name) is fine.
pub async fn kill(env: &Env, cluster: &str, namespace: &str, pod: &str, uid: &str) -> Result<(), FaultError> {
    let c = env.cluster(cluster).map_err(super::backend_err(format!("kill-pod: cluster {cluster}")))?;
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: Some(uid.into()), resource_version: None }),
        ..Default::default()
    };
    match Api::<Pod>::namespaced(c.client.clone(), namespace).delete(pod, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(kube_err(format!("deleting pod {namespace}/{pod} of cluster {cluster}"))(e)),
    }
}

/// In effect: the killed pod no longer exists, and none of its containers runs.
pub async fn gone(env: &Env, cluster: &str, namespace: &str, pod: &str, uid: &str, node: &str, containers: &[Container]) -> Result<(), String> {
    let c = env.cluster(cluster).map_err(|e| e.to_string())?;
    match Api::<Pod>::namespaced(c.client.clone(), namespace).get_opt(pod).await {
        Ok(Some(p)) if p.metadata.uid.as_deref() == Some(uid) => return Err(format!("pod {namespace}/{pod} still exists")),
        Ok(_) => {}
        Err(e) => return Err(format!("reading pod {namespace}/{pod}: {}", crate::error::kube_message(&e))),
    }
    let mut running = Vec::new();
    for k in containers {
        if still_running(env.backend, node, k)? {
            running.push(k.id.as_str());
        }
    }
    if running.is_empty() { Ok(()) } else { Err(format!("pod {namespace}/{pod} is gone from the API, but its container {} still runs", running.join(", "))) }
}

/// Whether a killed pod's container still runs, where the backend can tell.
fn still_running(backend: BackendKind, node: &str, c: &Container) -> Result<bool, String> {
    match c.id.split_once("://") {
        Some(("firedrill", pid)) => Ok(process(pid).is_some_and(|(started, zombie)| !zombie && Some(started) == c.started)),
        Some(("containerd", id)) if backend == BackendKind::Kind => {
            crate::backend::kind::ops::pod_container_running(node, id).map_err(|e| format!("asking node {node} about container {id}: {e}"))
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_of_this_machine_is_known_by_its_start_time() {
        let me = std::process::id().to_string();
        let (started, zombie) = process(&me).expect("this process's stat");
        assert!(!zombie);
        let mine = Container { id: format!("firedrill://{me}"), started: Some(started) };
        assert!(still_running(BackendKind::Local, "n", &mine).unwrap(), "this process runs");
        let reused = Container { started: Some(started + 1), ..mine.clone() };
        assert!(!still_running(BackendKind::Local, "n", &reused).unwrap(), "a pid reused by another process is not the container");
        let gone = Container { id: "firedrill://999999999".into(), started: Some(1) };
        assert!(!still_running(BackendKind::Local, "n", &gone).unwrap());
        // On clusters firedrill did not create, only the API can be asked.
        assert!(!still_running(BackendKind::Existing, "n", &Container { id: "containerd://abc".into(), started: None }).unwrap());
    }
}
