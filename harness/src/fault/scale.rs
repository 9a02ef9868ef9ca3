//! Scale a Deployment (the documents' "scale to 0").

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};

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
