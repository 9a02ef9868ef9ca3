//! Revoke a service account's roles: take its subject out of every RoleBinding and
//! ClusterRoleBinding that names it (deleting bindings that name nothing else), and put
//! it back on revert. This is how the identity document simulates a storage failure.

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, Subject};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde::{Deserialize, Serialize};

use super::{FaultError, Undo, backend_err, kube_err};
use crate::env::Env;

/// The bindings that named the service account before the fault, as they were.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bindings {
    pub subject: Subject,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub role_bindings: Vec<RoleBinding>,
}

impl Bindings {
    pub fn len(&self) -> usize {
        self.cluster_role_bindings.len() + self.role_bindings.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn names(s: &Subject, subject: &Subject) -> bool {
    s.kind == subject.kind && s.name == subject.name && s.namespace == subject.namespace
}

/// Keep what re-creating the object needs; drop what the API server owns.
fn clean(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    meta.resource_version = None;
    meta.uid = None;
    meta.creation_timestamp = None;
    meta.managed_fields = None;
    meta.generation = None;
}

pub async fn plan(env: &Env, cluster: &str, namespace: &str, sa: &str) -> Result<Undo, FaultError> {
    let c = env.cluster(cluster).map_err(backend_err(format!("revoke-rbac: cluster {cluster}")))?;
    let subject = Subject { kind: "ServiceAccount".into(), name: sa.into(), namespace: Some(namespace.into()), api_group: None };
    let crbs: Api<ClusterRoleBinding> = Api::all(c.client.clone());
    let rbs: Api<RoleBinding> = Api::all(c.client.clone());
    let mut b = Bindings { subject: subject.clone(), ..Default::default() };
    for mut crb in crbs.list(&ListParams::default()).await.map_err(kube_err("listing ClusterRoleBindings"))?.items {
        if crb.subjects.iter().flatten().any(|s| names(s, &subject)) {
            clean(&mut crb.metadata);
            b.cluster_role_bindings.push(crb);
        }
    }
    for mut rb in rbs.list(&ListParams::default()).await.map_err(kube_err("listing RoleBindings"))?.items {
        if rb.subjects.iter().flatten().any(|s| names(s, &subject)) {
            clean(&mut rb.metadata);
            b.role_bindings.push(rb);
        }
    }
    if b.is_empty() {
        return Err(FaultError::Invalid(format!(
            "revoke-rbac: no RoleBinding or ClusterRoleBinding of cluster {cluster} names service account {namespace}/{sa}; revoking would change nothing"
        )));
    }
    Ok(Undo::RestoreBindings { cluster: cluster.into(), bindings: b })
}

/// Remove the subject from every planned binding (idempotent).
pub async fn revoke(env: &Env, cluster: &str, b: &Bindings) -> Result<(), FaultError> {
    let c = env.cluster(cluster).map_err(backend_err(format!("revoke-rbac: cluster {cluster}")))?;
    let crbs: Api<ClusterRoleBinding> = Api::all(c.client.clone());
    for planned in &b.cluster_role_bindings {
        let name = planned.metadata.name.clone().unwrap_or_default();
        let Some(mut cur) = crbs.get_opt(&name).await.map_err(kube_err(format!("reading ClusterRoleBinding {name}")))? else { continue };
        let rest: Vec<Subject> = cur.subjects.take().unwrap_or_default().into_iter().filter(|s| !names(s, &b.subject)).collect();
        if rest.is_empty() {
            ignore_404(crbs.delete(&name, &DeleteParams::default()).await.map(|_| ())).map_err(kube_err(format!("deleting ClusterRoleBinding {name}")))?;
        } else {
            cur.subjects = Some(rest);
            crbs.replace(&name, &PostParams::default(), &cur).await.map_err(kube_err(format!("updating ClusterRoleBinding {name}")))?;
        }
    }
    for planned in &b.role_bindings {
        let ns = planned.metadata.namespace.clone().unwrap_or_default();
        let name = planned.metadata.name.clone().unwrap_or_default();
        let rbs: Api<RoleBinding> = Api::namespaced(c.client.clone(), &ns);
        let Some(mut cur) = rbs.get_opt(&name).await.map_err(kube_err(format!("reading RoleBinding {ns}/{name}")))? else { continue };
        let rest: Vec<Subject> = cur.subjects.take().unwrap_or_default().into_iter().filter(|s| !names(s, &b.subject)).collect();
        if rest.is_empty() {
            ignore_404(rbs.delete(&name, &DeleteParams::default()).await.map(|_| ())).map_err(kube_err(format!("deleting RoleBinding {ns}/{name}")))?;
        } else {
            cur.subjects = Some(rest);
            rbs.replace(&name, &PostParams::default(), &cur).await.map_err(kube_err(format!("updating RoleBinding {ns}/{name}")))?;
        }
    }
    Ok(())
}

/// Put the subject back on every planned binding, re-creating missing ones (idempotent;
/// works whether or not `revoke` ran, fully or in part).
pub async fn restore(env: &Env, cluster: &str, b: &Bindings) -> Result<(), FaultError> {
    let c = env.cluster(cluster).map_err(backend_err(format!("revoke-rbac: cluster {cluster}")))?;
    let crbs: Api<ClusterRoleBinding> = Api::all(c.client.clone());
    for planned in &b.cluster_role_bindings {
        let name = planned.metadata.name.clone().unwrap_or_default();
        match crbs.get_opt(&name).await.map_err(kube_err(format!("reading ClusterRoleBinding {name}")))? {
            None => {
                ignore_409(crbs.create(&PostParams::default(), planned).await.map(|_| ()))
                    .map_err(kube_err(format!("re-creating ClusterRoleBinding {name}")))?;
            }
            Some(mut cur) if !cur.subjects.iter().flatten().any(|s| names(s, &b.subject)) => {
                cur.subjects.get_or_insert_with(Vec::new).push(b.subject.clone());
                crbs.replace(&name, &PostParams::default(), &cur).await.map_err(kube_err(format!("updating ClusterRoleBinding {name}")))?;
            }
            Some(_) => {}
        }
    }
    for planned in &b.role_bindings {
        let ns = planned.metadata.namespace.clone().unwrap_or_default();
        let name = planned.metadata.name.clone().unwrap_or_default();
        let rbs: Api<RoleBinding> = Api::namespaced(c.client.clone(), &ns);
        match rbs.get_opt(&name).await.map_err(kube_err(format!("reading RoleBinding {ns}/{name}")))? {
            None => {
                ignore_409(rbs.create(&PostParams::default(), planned).await.map(|_| ())).map_err(kube_err(format!("re-creating RoleBinding {ns}/{name}")))?;
            }
            Some(mut cur) if !cur.subjects.iter().flatten().any(|s| names(s, &b.subject)) => {
                cur.subjects.get_or_insert_with(Vec::new).push(b.subject.clone());
                rbs.replace(&name, &PostParams::default(), &cur).await.map_err(kube_err(format!("updating RoleBinding {ns}/{name}")))?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn ignore_404(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

fn ignore_409(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        other => other,
    }
}
