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

/// One permission the revoked bindings granted, as a SubjectAccessReview asks it.
#[derive(Debug)]
struct Permission {
    namespace: Option<String>,
    group: String,
    resource: String,
    subresource: Option<String>,
    name: Option<String>,
    verb: String,
}

/// Up to three permissions from the rules of the roles the bindings refer to (a wildcard
/// stands for any value, so a concrete one is asked).
async fn granted(c: &kube::Client, b: &Bindings) -> Result<Vec<Permission>, String> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
    let mut out = Vec::new();
    let mut add = |rules: Vec<PolicyRule>, namespace: Option<String>| {
        for r in rules.into_iter().take(3) {
            let pick = |v: &Option<Vec<String>>, any: &str| v.as_ref().and_then(|v| v.iter().find(|x| *x != "*").cloned()).unwrap_or_else(|| any.to_string());
            if r.resources.as_ref().is_none_or(|v| v.is_empty()) {
                continue;
            }
            let resource = pick(&r.resources, "firedrill-any");
            let (resource, subresource) = match resource.split_once('/') {
                Some((r, sub)) => (r.to_string(), Some(sub.to_string())),
                None => (resource, None),
            };
            out.push(Permission {
                namespace: namespace.clone(),
                group: pick(&r.api_groups, ""),
                resource,
                subresource,
                name: r.resource_names.as_ref().and_then(|n| n.first().cloned()),
                verb: r.verbs.iter().find(|v| *v != "*").cloned().unwrap_or_else(|| "get".into()),
            });
        }
    };
    for crb in &b.cluster_role_bindings {
        let role = Api::<ClusterRole>::all(c.clone())
            .get(&crb.role_ref.name)
            .await
            .map_err(|e| format!("reading ClusterRole {}: {}", crb.role_ref.name, crate::error::kube_message(&e)))?;
        add(role.rules.unwrap_or_default(), None);
    }
    for rb in &b.role_bindings {
        let ns = rb.metadata.namespace.clone().unwrap_or_default();
        let rules = if rb.role_ref.kind == "Role" {
            Api::<Role>::namespaced(c.clone(), &ns).get(&rb.role_ref.name).await.map(|r| r.rules)
        } else {
            Api::<ClusterRole>::all(c.clone()).get(&rb.role_ref.name).await.map(|r| r.rules)
        }
        .map_err(|e| format!("reading {} {}: {}", rb.role_ref.kind, rb.role_ref.name, crate::error::kube_message(&e)))?;
        add(rules.unwrap_or_default(), Some(ns));
    }
    if out.is_empty() {
        return Err("the revoked bindings' roles grant no resource permission to check".into());
    }
    Ok(out)
}

/// Ask the API server whether the subject may do what the revoked bindings granted: in
/// effect when every such permission is denied, undone when every one is allowed.
pub async fn check(env: &Env, cluster: &str, b: &Bindings, expect: super::Expect) -> Result<(), String> {
    use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
    let c = env.cluster(cluster).map_err(|e| e.to_string())?;
    let sa_ns = b.subject.namespace.clone().unwrap_or_default();
    let user = format!("system:serviceaccount:{sa_ns}:{}", b.subject.name);
    let groups = vec!["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{sa_ns}"), "system:authenticated".into()];
    let api: Api<SubjectAccessReview> = Api::all(c.client.clone());
    let mut wrong = Vec::new();
    for p in granted(&c.client, b).await? {
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                groups: Some(groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: p.namespace.clone(),
                    group: Some(p.group.clone()),
                    resource: Some(p.resource.clone()),
                    subresource: p.subresource.clone(),
                    name: p.name.clone(),
                    verb: Some(p.verb.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let reply = api.create(&PostParams::default(), &sar).await.map_err(|e| format!("SubjectAccessReview: {}", crate::error::kube_message(&e)))?;
        let allowed = reply.status.map(|s| s.allowed).unwrap_or(false);
        if allowed == (expect == super::Expect::InEffect) {
            let sub = p.subresource.as_deref().map(|s| format!("/{s}")).unwrap_or_default();
            let group = if p.group.is_empty() { String::new() } else { format!(".{}", p.group) };
            let name = p.name.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
            wrong.push(format!("{} {} {}{sub}{group}{name}", if allowed { "may still" } else { "may not" }, p.verb, p.resource));
        }
    }
    if wrong.is_empty() { Ok(()) } else { Err(format!("SubjectAccessReview: {user} {}", wrong.join(", "))) }
}
