//! The management components: the workload of the replicas, the multi-cluster directory
//! (registered as the registry's guide describes) and metrics collection.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::ListParams;

use super::run_secret;
use crate::component::Component;
use crate::env::{ClusterHandle, Env};
use crate::template::{self, Vars};
use crate::wait::{self, Deadline};

/// What probes and post-checks need of the directory.
#[derive(Clone, Debug)]
pub struct Directory {
    pub directory: String,
    pub replicas: Vec<String>,
    /// directory-api's address and the token it accepts.
    pub api: String,
    pub token: String,
    /// The management changes of the current scenario.
    pub changes: Arc<Mutex<Changes>>,
}

/// Management changes made through the API: each adds one key to the `drill-changes`
/// policy, whose rendered ClusterRole only the central control plane (directory-hub) can
/// produce for the target cluster, and only its directory-sync can apply there.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// The cluster the changes are for (the policy selects it by its `region` label).
    pub cluster: String,
    /// Every change the API accepted in this scenario: (key number, accepted at).
    pub accepted: Vec<(u64, std::time::Instant)>,
}

/// The policy and the ClusterRole it renders to, named alike.
pub const CHANGES: &str = "drill-changes";

/// The key a change adds: a resource name in the rendered ClusterRole's rule.
pub fn change_key(n: u64) -> String {
    format!("change-{n}")
}

/// The keys of change the rendered `drill-changes` ClusterRole holds in `cluster`: what
/// has really been applied there. `Ok(None)` when the role does not exist.
pub async fn applied_changes(cluster: &ClusterHandle) -> Result<Option<std::collections::BTreeSet<String>>, String> {
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(cluster.client.clone());
    let role = tokio::time::timeout(Duration::from_secs(3), roles.get_opt(CHANGES))
        .await
        .map_err(|_| format!("reading ClusterRole {CHANGES} of {}: timed out", cluster.name))?
        .map_err(|e| format!("reading ClusterRole {CHANGES} of {}: {}", cluster.name, crate::error::kube_message(&e)))?;
    Ok(role.map(|r| r.rules.unwrap_or_default().into_iter().flat_map(|rule| rule.resources.unwrap_or_default()).collect()))
}

#[derive(Clone, Debug)]
pub struct Metrics {
    /// The receiver's HTTP address (Prometheus API).
    pub receiver: String,
    pub collectors: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub clusters: Vec<String>,
}

fn list_option(c: &Component, key: &str) -> Result<Vec<String>, String> {
    c.options
        .get(key)
        .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .ok_or_else(|| format!("option `{key}` is required"))
}

fn check_options(c: &Component, known: &[&str]) -> Result<(), String> {
    match c.options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown option {k} (known: {})", known.join(", "))),
        None => Ok(()),
    }
}

fn fixture(env: &Env, component: &str, file: &str) -> Result<String, String> {
    std::fs::read_to_string(env.paths.fixtures.join("components").join(component).join(file))
        .map_err(|e| format!("reading fixtures/components/{component}/{file}: {e}"))
}

fn vars(pairs: &[(&str, String)]) -> Vars {
    super::vars(pairs)
}

async fn apply_fixture(env: &Env, cluster: &ClusterHandle, component: &str, file: &str, text: &str) -> Result<(), String> {
    env.apply(cluster, &format!("fixtures/components/{component}/{file} in cluster {}", cluster.name), text).await.map(|_| ())
}

/// Until the Deployment has `replicas` available pods (at most 120 s).
async fn wait_available(cluster: &ClusterHandle, namespace: &str, name: &str, replicas: i32) -> Result<(), String> {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    wait::until(
        Deadline::after(Duration::from_secs(120)),
        &format!("deployment {namespace}/{name} of cluster {} to have {replicas} available pod(s)", cluster.name),
        || {
            let api = api.clone();
            async move { (api.get(name).await.ok()?.status?.available_replicas? >= replicas).then_some(()) }
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// The address of the (first) ready pod with `app=<app>`: pods use their node's address.
async fn pod_ip(cluster: &ClusterHandle, namespace: &str, app: &str) -> Result<Ipv4Addr, String> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await.map_err(|e| format!("listing pods of {app}: {e}"))?;
    list.items
        .iter()
        .find_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse().ok())
        .ok_or_else(|| format!("no pod of {app} in cluster {} has an address", cluster.name))
}

/// Wait until the API server serves a kind (its CRD established).
async fn wait_crds(cluster: &ClusterHandle) -> Result<(), String> {
    let clusters: Api<directory::Cluster> = Api::all(cluster.client.clone());
    let policies: Api<directory::ClusterPolicy> = Api::all(cluster.client.clone());
    wait::until(Deadline::after(Duration::from_secs(60)), &format!("the directory's CRDs to be served by cluster {}", cluster.name), || {
        let (c, p) = (clusters.clone(), policies.clone());
        async move { (c.list(&ListParams::default().limit(1)).await.is_ok() && p.list(&ListParams::default().limit(1)).await.is_ok()).then_some(()) }
    })
    .await
    .map_err(|e| e.to_string())
}

async fn install_crds(env: &Env, cluster: &ClusterHandle) -> Result<(), String> {
    let docs: Vec<String> = directory::crds().iter().map(|c| serde_json::to_string(c).expect("CRDs serialise")).collect();
    env.apply(cluster, &format!("the directory's CRDs in cluster {}", cluster.name), &docs.join("\n---\n")).await?;
    wait_crds(cluster).await
}

/// The workload's manifests (of the `workload` component, whichever component deploys
/// them) in each of the `clusters` option's clusters, at `replicas` (option, default 1).
pub async fn deploy_workload(env: &Env, c: &Component) -> Result<Workload, String> {
    check_options(c, &["clusters", "replicas"])?;
    let clusters = list_option(c, "clusters")?;
    let replicas: i32 = match c.options.get("replicas") {
        Some(r) => r.parse().ok().filter(|n| (1..=10).contains(n)).ok_or_else(|| format!("option `replicas` is `{r}`, expected a number from 1 to 10"))?,
        None => 1,
    };
    let text = fixture(env, c.deployer(), "manifests.yaml")?;
    for name in &clusters {
        let cluster = env.cluster(name).map_err(|e| e.to_string())?;
        apply_fixture(env, cluster, c.deployer(), "manifests.yaml", &text).await?;
        if replicas != 1 {
            let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
            let patch = serde_json::json!({ "spec": { "replicas": replicas } });
            api.patch("workload", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
                .await
                .map_err(|e| format!("scaling deployment default/workload of cluster {name} to {replicas}: {}", crate::error::kube_message(&e)))?;
        }
    }
    for name in &clusters {
        wait_available(env.cluster(name).map_err(|e| e.to_string())?, "default", "workload", replicas).await?;
    }
    Ok(Workload { clusters })
}

/// A kubeconfig for the replica's service account in the directory, from its token Secret
/// (what the registry's guide downloads from the console).
async fn replica_kubeconfig(directory: &ClusterHandle, name: &str) -> Result<String, String> {
    let secrets: Api<Secret> = Api::namespaced(directory.client.clone(), directory::NAMESPACE);
    let token = wait::until(Deadline::after(Duration::from_secs(60)), &format!("the token of service account {name} to be issued"), || {
        let secrets = secrets.clone();
        async move {
            let s = secrets.get(&format!("{name}-token")).await.ok()?;
            let t = s.data?.get("token")?.0.clone();
            (!t.is_empty()).then(|| String::from_utf8_lossy(&t).into_owned())
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let ca = base64::engine::general_purpose::STANDARD.encode(directory.ca_pem.as_bytes());
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: directory\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: directory\n  context:\n    cluster: directory\n    user: {name}\ncurrent-context: directory\n",
        directory.server
    ))
}

pub async fn deploy_directory(env: &Env, c: &Component) -> Result<Directory, String> {
    check_options(c, &["directory", "replicas"])?;
    let dir_name = list_option(c, "directory")?.into_iter().next().ok_or("option `directory` is empty")?;
    let replicas = list_option(c, "replicas")?;
    let dir = env.cluster(&dir_name).map_err(|e| e.to_string())?;
    let token = run_secret(env, "directory", "api-token", 16)?;

    install_crds(env, dir).await?;
    let text = template::render("directory.yaml", &fixture(env, "directory", "directory.yaml")?, &vars(&[("api_token", token.clone())]))?;
    apply_fixture(env, dir, "directory", "directory.yaml", &text).await?;

    // Registration, in the guide's order: the directory's own Cluster, then each replica's
    // Cluster and credentials; the kubeconfig goes into the replica as a Secret.
    let v = vars(&[("directory", dir_name.clone()), ("directory_server", dir.server.clone())]);
    apply_fixture(env, dir, "directory", "clusters.yaml", &template::render("clusters.yaml", &fixture(env, "directory", "clusters.yaml")?, &v)?).await?;
    for r in &replicas {
        let replica = env.cluster(r).map_err(|e| e.to_string())?;
        let v = vars(&[("name", r.clone()), ("server", replica.server.clone())]);
        apply_fixture(
            env,
            dir,
            "directory",
            "replica-cluster.yaml",
            &template::render("replica-cluster.yaml", &fixture(env, "directory", "replica-cluster.yaml")?, &v)?,
        )
        .await?;
        apply_fixture(
            env,
            dir,
            "directory",
            "credentials.yaml",
            &template::render("credentials.yaml", &fixture(env, "directory", "credentials.yaml")?, &vars(&[("name", r.clone())]))?,
        )
        .await?;
    }
    apply_fixture(env, dir, "directory", "policy.yaml", &fixture(env, "directory", "policy.yaml")?).await?;

    for r in &replicas {
        let replica = env.cluster(r).map_err(|e| e.to_string())?;
        install_crds(env, replica).await?;
        let kubeconfig = replica_kubeconfig(dir, r).await?;
        let text = template::render("replica.yaml", &fixture(env, "directory", "replica.yaml")?, &vars(&[("name", r.clone()), ("kubeconfig", kubeconfig)]))?;
        apply_fixture(env, replica, "directory", "replica.yaml", &text).await?;
    }
    wait_available(dir, directory::NAMESPACE, "directory-api", 1).await?;
    wait_available(dir, directory::NAMESPACE, "directory-hub", 1).await?;
    for r in &replicas {
        wait_available(env.cluster(r).map_err(|e| e.to_string())?, directory::NAMESPACE, "directory-sync", 1).await?;
    }
    let api = format!("http://{}:8081", pod_ip(dir, directory::NAMESPACE, "directory-api").await?);
    let handle = Directory { directory: dir_name, replicas, api, token, changes: Default::default() };
    // Converged: every replica mirrors the registry and has the baseline policy applied.
    for r in &handle.replicas {
        let replica = env.cluster(r).map_err(|e| e.to_string())?;
        let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(replica.client.clone());
        wait::until(Deadline::after(Duration::from_secs(90)), &format!("replica {r} to mirror the directory and apply its baseline policy"), || {
            let roles = roles.clone();
            let diff = converged_diff(env, &handle);
            async move { (diff.await.ok()?.is_empty() && roles.get_opt("drill-reader").await.ok()?.is_some()).then_some(()) }
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(handle)
}

/// What one cluster's registry holds: name → (labels, annotations, spec as JSON).
pub type Registry = BTreeMap<String, (BTreeMap<String, String>, BTreeMap<String, String>, serde_json::Value)>;

fn strip(mut m: BTreeMap<String, String>) -> BTreeMap<String, String> {
    m.remove(directory::MANAGED_BY);
    m.remove("kubectl.kubernetes.io/last-applied-configuration");
    m
}

/// One kind's objects as a [`Registry`].
fn entries<K: kube::Resource + serde::Serialize>(items: Vec<K>, spec: impl Fn(&K) -> serde_json::Value) -> Registry {
    items
        .into_iter()
        .map(|o| {
            let value = spec(&o);
            let meta = o.meta().clone();
            (meta.name.unwrap_or_default(), (strip(meta.labels.unwrap_or_default()), strip(meta.annotations.unwrap_or_default()), value))
        })
        .collect()
}

/// Clusters and ClusterPolicies of a cluster, comparable across clusters.
pub async fn registry(cluster: &ClusterHandle) -> Result<(Registry, Registry), String> {
    let clusters = Api::<directory::Cluster>::all(cluster.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing clusters of {}: {e}", cluster.name))?;
    let policies = Api::<directory::ClusterPolicy>::all(cluster.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing policies of {}: {e}", cluster.name))?;
    Ok((
        entries(clusters.items, |o| serde_json::to_value(&o.spec).unwrap_or_default()),
        entries(policies.items, |o| serde_json::to_value(&o.spec).unwrap_or_default()),
    ))
}

/// Everything missing, extra or different on a replica compared with the directory.
pub async fn converged_diff(env: &Env, d: &Directory) -> Result<Vec<String>, String> {
    let dir = env.cluster(&d.directory).map_err(|e| e.to_string())?;
    let (want_c, want_p) = registry(dir).await?;
    let mut problems = Vec::new();
    for r in &d.replicas {
        let replica = env.cluster(r).map_err(|e| e.to_string())?;
        let (have_c, have_p) = registry(replica).await?;
        for (kind, want, have) in [("Cluster", &want_c, &have_c), ("ClusterPolicy", &want_p, &have_p)] {
            for (name, v) in want {
                match have.get(name) {
                    None => problems.push(format!("{r}: {kind} {name} missing")),
                    Some(h) if h != v => problems.push(format!("{r}: {kind} {name} differs")),
                    Some(_) => {}
                }
            }
            for name in have.keys().filter(|n| !want.contains_key(*n)) {
                problems.push(format!("{r}: {kind} {name} extra"));
            }
        }
    }
    Ok(problems)
}

pub async fn deploy_metrics(env: &Env, c: &Component) -> Result<Metrics, String> {
    check_options(c, &["receiver", "collectors"])?;
    let receiver_cluster = list_option(c, "receiver")?.into_iter().next().ok_or("option `receiver` is empty")?;
    let collectors = list_option(c, "collectors")?;
    let rc = env.cluster(&receiver_cluster).map_err(|e| e.to_string())?;
    apply_fixture(env, rc, "metrics", "receiver.yaml", &fixture(env, "metrics", "receiver.yaml")?).await?;
    wait_available(rc, "monitoring", "metrics-receiver", 1).await?;
    let receiver = format!("http://{}:9090", pod_ip(rc, "monitoring", "metrics-receiver").await?);
    for name in &collectors {
        let cluster = env.cluster(name).map_err(|e| e.to_string())?;
        let targets = format!("\"{}:8080\"", pod_ip(cluster, "default", "workload").await?);
        let v = vars(&[("cluster", name.clone()), ("targets", targets), ("receiver", receiver.clone())]);
        apply_fixture(env, cluster, "metrics", "agent.yaml", &template::render("agent.yaml", &fixture(env, "metrics", "agent.yaml")?, &v)?).await?;
    }
    for name in &collectors {
        wait_available(env.cluster(name).map_err(|e| e.to_string())?, "monitoring", "metrics-agent", 1).await?;
    }
    Ok(Metrics { receiver, collectors })
}
