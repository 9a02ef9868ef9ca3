//! Kill one pod of a Deployment: deleted with no grace period, as an instance that
//! fails. The Deployment replaces it; there is nothing to put back, and the revert waits
//! for the Deployment to be at full strength again.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Preconditions};

use super::{FaultError, Undo, kube_err};
use crate::env::Env;

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
    Ok(Undo::AwaitReplicas {
        cluster: cluster.into(),
        namespace: namespace.into(),
        deployment: deployment.into(),
        replicas,
        pod: pod.metadata.name.unwrap_or_default(),
        uid: pod.metadata.uid.unwrap_or_default(),
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

/// In effect: the killed pod no longer exists.
pub async fn gone(env: &Env, cluster: &str, namespace: &str, pod: &str, uid: &str) -> Result<(), String> {
    let c = env.cluster(cluster).map_err(|e| e.to_string())?;
    match Api::<Pod>::namespaced(c.client.clone(), namespace).get_opt(pod).await {
        Ok(Some(p)) if p.metadata.uid.as_deref() == Some(uid) => Err(format!("pod {namespace}/{pod} still exists")),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading pod {namespace}/{pod}: {}", crate::error::kube_message(&e))),
    }
}
