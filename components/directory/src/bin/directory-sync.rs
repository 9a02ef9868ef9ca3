//! directory-sync: runs in a replica cluster. Every interval it reports its namespaces to
//! the directory, pulls the Clusters and ClusterPolicies (mirrored here exactly) and its
//! own ClusterConfig, and applies that configuration here. Pull-only: while the directory
//! is unreachable it keeps and keeps applying the last state, and says so on the status of
//! its DirectorySync object; an invalid object is skipped with an Event, never fatal.
//!
//! Environment: CLUSTER_NAME (its name in the directory), DIRECTORY_KUBECONFIG (default
//! /etc/directory-sync/kubeconfig, from the `directory-sync` Secret), POD_NAMESPACE,
//! SYNC_INTERVAL_MS (default 2000).

use std::collections::BTreeMap;
use std::time::Duration;

use directory::logic::{mirror_plan, validate_policy};
use directory::{
    Cluster, ClusterConfig, ClusterConfigSpec, ClusterPolicy, Condition, DirectorySync, DirectorySyncStatus, MANAGED_BY, MANAGER, NamespaceReport,
};
use k8s_openapi::api::core::v1::{Event, LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ObjectReference};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};

struct State {
    clusters: Vec<Cluster>,
    policies: Vec<ClusterPolicy>,
    config: Option<ClusterConfigSpec>,
    reachable: Option<bool>,
    since: String,
    last_sync: Option<String>,
    skipped: Vec<String>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::main]
async fn main() {
    directory::init_logging();
    let cluster = std::env::var("CLUSTER_NAME").expect("CLUSTER_NAME is required");
    let kubeconfig = env("DIRECTORY_KUBECONFIG", "/etc/directory-sync/kubeconfig");
    let namespace = env("POD_NAMESPACE", directory::NAMESPACE);
    let interval = Duration::from_millis(env("SYNC_INTERVAL_MS", "2000").parse().unwrap_or(2000));
    let local = Client::try_default().await.expect("in-cluster configuration");
    let mut state = State { clusters: vec![], policies: vec![], config: None, reachable: None, since: now(), last_sync: None, skipped: vec![] };
    tracing::info!(cluster, "directory-sync starting");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    loop {
        let pulled = pull(&cluster, &kubeconfig, &local).await;
        let reachable = pulled.is_ok();
        match pulled {
            Ok((clusters, policies, config)) => {
                state.clusters = clusters;
                state.policies = policies;
                if config.is_some() {
                    state.config = config;
                }
                state.last_sync = Some(now());
            }
            Err(e) => tracing::warn!(error = %e, "directory unreachable; keeping the last state"),
        }
        if state.reachable != Some(reachable) {
            state.reachable = Some(reachable);
            state.since = now();
        }
        state.skipped = mirror(&local, &state).await;
        if let Some(cfg) = &state.config
            && let Err(e) = apply(&local, cfg).await
        {
            tracing::warn!(error = %e, "applying the cluster configuration");
        }
        report_status(&local, &namespace, &cluster, &state, reachable).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = term.recv() => { tracing::info!("SIGTERM"); return; }
        }
    }
}

async fn directory_client(path: &str) -> Result<Client, String> {
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| format!("reading {path}: {e}"))?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| format!("{path}: {e}"))?;
    cfg.connect_timeout = Some(Duration::from_secs(2));
    cfg.read_timeout = Some(Duration::from_secs(5));
    Client::try_from(cfg).map_err(|e| e.to_string())
}

/// Report namespaces, then read Clusters, ClusterPolicies and this cluster's ClusterConfig.
async fn pull(cluster: &str, kubeconfig: &str, local: &Client) -> Result<(Vec<Cluster>, Vec<ClusterPolicy>, Option<ClusterConfigSpec>), String> {
    let dir = directory_client(kubeconfig).await?;
    let namespaces: Vec<NamespaceReport> = Api::<Namespace>::all(local.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing local namespaces: {e}"))?
        .items
        .into_iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(|n| NamespaceReport { labels: n.labels().clone(), name: n.name_any() })
        .collect();
    let status = serde_json::json!({"status": {"namespaces": namespaces, "reportedAt": now()}});
    Api::<Cluster>::all(dir.clone())
        .patch_status(cluster, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(|e| format!("reporting namespaces: {e}"))?;
    let clusters = Api::<Cluster>::all(dir.clone()).list(&ListParams::default()).await.map_err(|e| format!("listing clusters: {e}"))?.items;
    let policies = Api::<ClusterPolicy>::all(dir.clone()).list(&ListParams::default()).await.map_err(|e| format!("listing cluster policies: {e}"))?.items;
    let config = Api::<ClusterConfig>::namespaced(dir, directory::NAMESPACE)
        .get_opt(cluster)
        .await
        .map_err(|e| format!("reading the cluster configuration: {e}"))?
        .map(|c| c.spec);
    Ok((clusters, policies, config))
}

/// The copy of a directory object kept here: name, labels (plus ours), annotations, spec.
fn meta_copy(m: &ObjectMeta) -> ObjectMeta {
    let mut labels = m.labels.clone().unwrap_or_default();
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    ObjectMeta { name: m.name.clone(), labels: Some(labels), annotations: m.annotations.clone(), ..Default::default() }
}

fn same_meta(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.labels.clone().unwrap_or_default() == b.labels.clone().unwrap_or_default()
        && a.annotations.clone().unwrap_or_default() == b.annotations.clone().unwrap_or_default()
}

/// Make the local Clusters and ClusterPolicies exactly the directory's. Returns what was
/// skipped as invalid.
async fn mirror(local: &Client, state: &State) -> Vec<String> {
    let mut skipped = Vec::new();
    let clusters: Vec<(String, Cluster)> =
        state.clusters.iter().map(|c| (c.name_any(), Cluster { metadata: meta_copy(&c.metadata), spec: c.spec.clone(), status: None })).collect();
    let mut policies = Vec::new();
    for p in &state.policies {
        match validate_policy(&p.spec) {
            Ok(()) => policies.push((p.name_any(), ClusterPolicy { metadata: meta_copy(&p.metadata), spec: p.spec.clone() })),
            Err(why) => skipped.push(format!("ClusterPolicy {}: {why}", p.name_any())),
        }
    }
    if state.reachable == Some(true) || !state.clusters.is_empty() {
        mirror_kind(local, &clusters, |a: &Cluster, b: &Cluster| a.spec == b.spec && same_meta(&a.metadata, &b.metadata)).await;
        mirror_kind(local, &policies, |a: &ClusterPolicy, b: &ClusterPolicy| a.spec == b.spec && same_meta(&a.metadata, &b.metadata)).await;
    }
    skipped
}

async fn mirror_kind<K>(local: &Client, desired: &[(String, K)], same: impl Fn(&K, &K) -> bool)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope> + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let api: Api<K> = Api::all(local.clone());
    let actual = match api.list(&ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}"))).await {
        Ok(l) => l.items.into_iter().map(|o| (o.name_any(), o)).collect::<Vec<_>>(),
        Err(e) => {
            tracing::warn!(error = %e, "listing local mirror");
            return;
        }
    };
    let plan = mirror_plan(desired, &actual, &same);
    for o in plan.create.iter().chain(plan.update.iter()) {
        let name = o.name_any();
        if let Err(e) = api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(o)).await {
            tracing::warn!(name, error = %e, "mirroring");
        }
    }
    for name in plan.delete {
        if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
            tracing::warn!(name, error = %e, "removing from the mirror");
        }
    }
}

fn labelled(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(String::from),
        labels: Some(BTreeMap::from([(MANAGED_BY.to_string(), MANAGER.to_string())])),
        ..Default::default()
    }
}

/// Apply a cluster configuration: namespaces and ClusterRoles everywhere, LimitRanges and
/// RoleBindings in the namespaces it targets that exist here.
async fn apply(local: &Client, cfg: &ClusterConfigSpec) -> Result<(), String> {
    let ssa = PatchParams::apply(MANAGER).force();
    let namespaces: Api<Namespace> = Api::all(local.clone());
    for ns in &cfg.namespaces {
        let obj = Namespace { metadata: labelled(ns, None), ..Default::default() };
        namespaces.patch(ns, &ssa, &Patch::Apply(&obj)).await.map_err(|e| format!("namespace {ns}: {e}"))?;
    }
    let roles: Api<ClusterRole> = Api::all(local.clone());
    for r in &cfg.cluster_roles {
        let rules = r
            .rules
            .iter()
            .map(|x| PolicyRule { api_groups: Some(x.api_groups.clone()), resources: Some(x.resources.clone()), verbs: x.verbs.clone(), ..Default::default() })
            .collect();
        let obj = ClusterRole { metadata: labelled(&r.name, None), rules: Some(rules), ..Default::default() };
        roles.patch(&r.name, &ssa, &Patch::Apply(&obj)).await.map_err(|e| format!("cluster role {}: {e}", r.name))?;
    }
    for n in &cfg.namespaced {
        match namespaces.get_opt(&n.namespace).await {
            Ok(Some(ns)) if ns.metadata.deletion_timestamp.is_none() => {}
            _ => continue,
        }
        if let Some(l) = &n.limits {
            let item = LimitRangeItem {
                type_: "Container".into(),
                default: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity(l.default_cpu.clone())),
                    ("memory".to_string(), Quantity(l.default_memory.clone())),
                ])),
                ..Default::default()
            };
            let obj = LimitRange { metadata: labelled("directory-limits", Some(&n.namespace)), spec: Some(LimitRangeSpec { limits: vec![item] }) };
            Api::<LimitRange>::namespaced(local.clone(), &n.namespace)
                .patch("directory-limits", &ssa, &Patch::Apply(&obj))
                .await
                .map_err(|e| format!("limits in {}: {e}", n.namespace))?;
        }
        for b in &n.role_bindings {
            let name = format!("directory-{}-{}", b.cluster_role, b.group);
            let obj = RoleBinding {
                metadata: labelled(&name, Some(&n.namespace)),
                role_ref: RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "ClusterRole".into(), name: b.cluster_role.clone() },
                subjects: Some(vec![Subject {
                    kind: "Group".into(),
                    name: b.group.clone(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    namespace: None,
                }]),
            };
            Api::<RoleBinding>::namespaced(local.clone(), &n.namespace)
                .patch(&name, &ssa, &Patch::Apply(&obj))
                .await
                .map_err(|e| format!("role binding {name} in {}: {e}", n.namespace))?;
        }
    }
    Ok(())
}

async fn report_status(local: &Client, namespace: &str, cluster: &str, state: &State, reachable: bool) {
    let api: Api<DirectorySync> = Api::namespaced(local.clone(), namespace);
    if api.get_opt(cluster).await.ok().flatten().is_none() {
        let obj = DirectorySync::new(cluster, directory::DirectorySyncSpec { cluster_name: cluster.into() });
        let _ = api.create(&PostParams::default(), &obj).await;
    }
    let status = DirectorySyncStatus {
        conditions: vec![Condition {
            type_: "DirectoryReachable".into(),
            status: if reachable { "True" } else { "False" }.into(),
            reason: if reachable { "Synced" } else { "Unreachable" }.into(),
            message: if reachable { "pulled from the directory".into() } else { "the directory cannot be reached; applying the last state".into() },
            last_transition_time: state.since.clone(),
        }],
        last_sync: state.last_sync.clone(),
        clusters: state.clusters.len(),
        policies: state.policies.len(),
        skipped: state.skipped.clone(),
    };
    if let Err(e) = api.patch_status(cluster, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "status": status }))).await {
        tracing::warn!(error = %e, "updating own status");
    }
    for why in &state.skipped {
        event(local, namespace, cluster, why).await;
    }
}

/// An Event on the DirectorySync object, for an object skipped as invalid.
async fn event(local: &Client, namespace: &str, name: &str, message: &str) {
    let now = Time(jiff::Timestamp::now());
    let ev = Event {
        metadata: ObjectMeta { generate_name: Some(format!("{name}.")), namespace: Some(namespace.into()), ..Default::default() },
        involved_object: ObjectReference {
            api_version: Some("multicluster.coreos.com/v1".into()),
            kind: Some("DirectorySync".into()),
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        reason: Some("InvalidObjectSkipped".into()),
        message: Some(message.into()),
        type_: Some("Warning".into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    let _ = Api::<Event>::namespaced(local.clone(), namespace).create(&PostParams::default(), &ev).await;
}
