//! Apply manifests (multi-document YAML) to a cluster with server-side apply, as
//! `kubectl apply --server-side` does.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery;

/// Apply every document of `yaml` in order. `name` is used in errors.
pub async fn apply(client: &kube::Client, name: &str, yaml: &str) -> Result<Vec<String>, String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(yaml).map_err(|e| match e.location() {
        Some(l) => format!("{name} (as rendered), line {} column {}: {}", l.line(), l.column(), crate::error::yaml_message(&e)),
        None => format!("{name}: {}", crate::error::yaml_message(&e)),
    })?;
    let mut applied = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let obj: DynamicObject = serde_json::from_value(doc).map_err(|e| format!("{name}: not a Kubernetes object: {e}"))?;
        let tm = obj.types.as_ref().ok_or_else(|| format!("{name}: an object has no apiVersion/kind"))?;
        let gvk = GroupVersionKind::try_from(tm).map_err(|e| format!("{name}: {e}"))?;
        let (ar, caps) = discovery::pinned_kind(client, &gvk).await.map_err(|e| format!("{name}: discovering {}: {e}", tm.kind))?;
        let obj_name = obj.metadata.name.clone().ok_or_else(|| format!("{name}: a {} has no name", tm.kind))?;
        let api: Api<DynamicObject> = match (&caps.scope, obj.metadata.namespace.as_deref()) {
            (discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            (discovery::Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
            (discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
        };
        api.patch(&obj_name, &PatchParams::apply("firedrill").force(), &Patch::Apply(&obj))
            .await
            .map_err(|e| format!("{name}: applying {} {obj_name}: {e}", tm.kind))?;
        applied.push(format!("{}/{obj_name}", tm.kind));
    }
    Ok(applied)
}
