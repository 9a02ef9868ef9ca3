//! Scale a Deployment (the documents' "scale to 0").

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};

use super::{FaultError, Undo, kube_err};
use crate::env::Env;

pub async fn plan(env: &Env, cluster: &str, namespace: &str, deployment: &str) -> Result<Undo, FaultError> {
    let c = env.cluster(cluster).map_err(super::backend_err(format!("scale: cluster {cluster}")))?;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), namespace);
    let d = api.get(deployment).await.map_err(kube_err(format!("reading deployment {namespace}/{deployment} of cluster {cluster}")))?;
    let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(1);
    Ok(Undo::Scale { cluster: cluster.into(), namespace: namespace.into(), deployment: deployment.into(), replicas })
}

/// Set `spec.replicas` through the scale subresource, as `kubectl scale` does.
pub async fn set(env: &Env, cluster: &str, namespace: &str, deployment: &str, replicas: i32) -> Result<(), FaultError> {
    let c = env.cluster(cluster).map_err(super::backend_err(format!("scale: cluster {cluster}")))?;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), namespace);
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    api.patch_scale(deployment, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!("scaling deployment {namespace}/{deployment} of cluster {cluster} to {replicas}")))?;
    Ok(())
}

/// The names of the Deployment's pods whose Ready condition is True.
async fn ready_pods(env: &Env, cluster: &str, namespace: &str, deployment: &str) -> Result<Vec<String>, String> {
    let c = env.cluster(cluster).map_err(|e| e.to_string())?;
    let d = Api::<Deployment>::namespaced(c.client.clone(), namespace)
        .get(deployment)
        .await
        .map_err(|e| format!("reading deployment {namespace}/{deployment}: {}", crate::error::kube_message(&e)))?;
    let selector: Vec<String> = d.spec.and_then(|s| s.selector.match_labels).unwrap_or_default().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods = Api::<Pod>::namespaced(c.client.clone(), namespace)
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .map_err(|e| format!("listing pods of {namespace}/{deployment}: {}", crate::error::kube_message(&e)))?;
    Ok(pods.items.into_iter().filter(|p| crate::objects::ready_condition(p).is_some()).filter_map(|p| p.metadata.name).collect())
}

/// In effect: no more than `n` pods of the Deployment are Ready.
pub async fn at_most_ready(env: &Env, cluster: &str, namespace: &str, deployment: &str, n: i32) -> Result<(), String> {
    let ready = ready_pods(env, cluster, namespace, deployment).await?;
    if ready.len() as i32 <= n { Ok(()) } else { Err(format!("{} pod(s) still Ready: {}", ready.len(), ready.join(", "))) }
}

/// Undone: at least `n` pods of the Deployment are Ready.
pub async fn at_least_ready(env: &Env, cluster: &str, namespace: &str, deployment: &str, n: i32) -> Result<(), String> {
    let ready = ready_pods(env, cluster, namespace, deployment).await?;
    if ready.len() as i32 >= n { Ok(()) } else { Err(format!("{} of {n} pod(s) Ready", ready.len())) }
}
