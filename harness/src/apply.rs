//! Apply manifests (multi-document YAML) to a cluster with server-side apply, as
//! `kubectl apply --server-side` does.

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery;

/// An object that applying created (it did not exist before): what the existing backend
/// records so that `down` removes what it made, and only that.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Created {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl Created {
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// Called with each object apply is about to create; an error stops the apply before it.
pub type NoteCreated<'a> = &'a (dyn Fn(&Created) -> Result<(), String> + Sync);

/// The label every object a run applies on a cluster it did not create carries: the run's
/// id. An object of the same name without it is someone else's.
pub const RUN_LABEL: &str = "firedrill.dev/run";

/// Applying to a cluster firedrill did not create (the existing backend): every object is
/// labelled with the run, one that exists without the run's label is refused before
/// anything is applied, and `note` hears of each object about to be created.
pub struct Guest<'a> {
    pub run: &'a str,
    pub note: NoteCreated<'a>,
}

/// Apply every document of `yaml` in order. `name` is used in errors.
pub async fn apply(client: &kube::Client, name: &str, yaml: &str) -> Result<Vec<String>, String> {
    apply_as(client, name, yaml, None).await
}

fn parse(name: &str, yaml: &str) -> Result<Vec<DynamicObject>, String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(yaml).map_err(|e| match e.location() {
        Some(l) => format!("{name} (as rendered), line {} column {}: {}", l.line(), l.column(), crate::error::yaml_message(&e)),
        None => format!("{name}: {}", crate::error::yaml_message(&e)),
    })?;
    docs.into_iter().filter(|d| !d.is_null()).map(|doc| serde_json::from_value(doc).map_err(|e| format!("{name}: not a Kubernetes object: {e}"))).collect()
}

/// The API of `obj`'s kind and its name, or `None` when the cluster has no such kind (yet:
/// a custom resource whose definition comes earlier in the same manifest).
async fn resolve(client: &kube::Client, name: &str, obj: &DynamicObject) -> Result<Option<(Api<DynamicObject>, discovery::Scope, String)>, String> {
    let tm = obj.types.as_ref().ok_or_else(|| format!("{name}: an object has no apiVersion/kind"))?;
    let gvk = GroupVersionKind::try_from(tm).map_err(|e| format!("{name}: {e}"))?;
    let obj_name = obj.metadata.name.clone().ok_or_else(|| format!("{name}: a {} has no name", tm.kind))?;
    let (ar, caps) = match discovery::pinned_kind(client, &gvk).await {
        Ok(found) => found,
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
        Err(kube::Error::Discovery(_)) => return Ok(None),
        Err(e) => return Err(format!("{name}: discovering {}: {e}", tm.kind)),
    };
    let api: Api<DynamicObject> = match (&caps.scope, obj.metadata.namespace.as_deref()) {
        (discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (discovery::Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
        (discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
    };
    Ok(Some((api, caps.scope, obj_name)))
}

/// Every object of `objs` that exists on the cluster, is not being deleted, and does not
/// carry `run`'s label: someone else's.
async fn not_ours(client: &kube::Client, name: &str, objs: &[DynamicObject], run: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for obj in objs {
        let Some((api, scope, obj_name)) = resolve(client, name, obj).await? else { continue };
        let kind = obj.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
        let Some(there) = api.get_opt(&obj_name).await.map_err(|e| format!("{name}: reading {kind} {obj_name}: {e}"))? else { continue };
        if there.metadata.deletion_timestamp.is_some() || there.labels().get(RUN_LABEL).is_some_and(|v| v == run) {
            continue;
        }
        found.push(match (scope, there.metadata.namespace.as_deref()) {
            (discovery::Scope::Namespaced, Some(ns)) => format!("{kind} {ns}/{obj_name}"),
            _ => format!("{kind} {obj_name}"),
        });
    }
    Ok(found)
}

/// [`apply`]; as a [`Guest`], refusing what is not the run's before anything is applied,
/// labelling every object with the run and first telling `note` of every object that does
/// not exist yet.
pub async fn apply_as(client: &kube::Client, name: &str, yaml: &str, guest: Option<&Guest<'_>>) -> Result<Vec<String>, String> {
    let mut objs = parse(name, yaml)?;
    if let Some(guest) = guest {
        let theirs = not_ours(client, name, &objs, guest.run).await?;
        if !theirs.is_empty() {
            return Err(format!(
                "{name}: refusing to apply over objects that exist on this cluster and are not this run's (no label {RUN_LABEL}={}): {}; nothing of {name} was applied. They are left as they are: remove or rename them, or use a cluster without them",
                guest.run,
                theirs.join(", ")
            ));
        }
        for obj in &mut objs {
            obj.metadata.labels.get_or_insert_with(Default::default).insert(RUN_LABEL.into(), guest.run.into());
        }
    }
    let note = guest.map(|g| g.note);
    let mut applied = Vec::new();
    for obj in objs {
        let tm = obj.types.as_ref().ok_or_else(|| format!("{name}: an object has no apiVersion/kind"))?;
        let Some((api, scope, obj_name)) = resolve(client, name, &obj).await? else {
            return Err(format!("{name}: the cluster has no kind {} ({})", tm.kind, tm.api_version));
        };
        let mut found = api.get_opt(&obj_name).await.map_err(|e| format!("{name}: reading {} {obj_name}: {e}", tm.kind))?;
        // An object still being deleted (a namespace an earlier run's `down` removed) takes
        // no new content: wait until it is gone, then create it anew.
        if found.as_ref().is_some_and(|o| o.metadata.deletion_timestamp.is_some()) {
            let what = format!("{} {obj_name}, being deleted, to be gone", tm.kind);
            crate::wait::until(crate::wait::Deadline::after(std::time::Duration::from_secs(120)), &what, || {
                let api = api.clone();
                let obj_name = obj_name.clone();
                async move { matches!(api.get_opt(&obj_name).await, Ok(None)).then_some(()) }
            })
            .await
            .map_err(|e| format!("{name}: {e}"))?;
            found = None;
        }
        if let Some(note) = note
            && found.is_none()
        {
            let namespace = match scope {
                discovery::Scope::Namespaced => Some(obj.metadata.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string())),
                discovery::Scope::Cluster => None,
            };
            note(&Created { api_version: tm.api_version.clone(), kind: tm.kind.clone(), namespace, name: obj_name.clone() })?;
        }
        api.patch(&obj_name, &PatchParams::apply("firedrill").force(), &Patch::Apply(&obj))
            .await
            .map_err(|e| format!("{name}: applying {} {obj_name}: {e}", tm.kind))?;
        applied.push(format!("{}/{obj_name}", tm.kind));
    }
    Ok(applied)
}

/// Delete `obj` (in the background: its dependents follow). `Ok(false)` when it was
/// already gone.
pub async fn delete(client: &kube::Client, obj: &Created) -> Result<bool, String> {
    let gvk = GroupVersionKind::try_from(&kube::core::TypeMeta { api_version: obj.api_version.clone(), kind: obj.kind.clone() }).map_err(|e| e.to_string())?;
    let (ar, caps) = match discovery::pinned_kind(client, &gvk).await {
        Ok(found) => found,
        // Its kind went with an earlier deletion (a CustomResourceDefinition): so did it.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
        Err(kube::Error::Discovery(_)) => return Ok(false),
        Err(e) => return Err(format!("discovering {}: {e}", obj.kind)),
    };
    let api: Api<DynamicObject> = match (&caps.scope, obj.namespace.as_deref()) {
        (discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    };
    match api.delete(&obj.name, &kube::api::DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(format!("deleting {}: {e}", obj.describe())),
    }
}
