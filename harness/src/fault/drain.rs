//! Drain nodes as an operator does with `kubectl drain`: cordon them, then evict every pod
//! on them through the eviction API, which honours PodDisruptionBudgets. An eviction the
//! API refuses (429: it would break a budget) is retried every second for [`GIVE_UP`], as
//! `kubectl drain` retries, then left: the pod stays, the nodes stay cordoned. Pods of
//! DaemonSets and mirror pods are not evicted (they would come straight back).
//!
//! Every eviction and refusal is written to the drain's record, which the claims
//! `drain-completed` and `drain-refused-by-pdb` read. Reverting uncordons the nodes that
//! were schedulable before.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{EvictParams, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use super::{Expect, FaultError, Undo, kube_err};
use crate::env::Env;

/// How long refused evictions are retried.
pub const GIVE_UP: Duration = Duration::from_secs(10);

/// What the drain did to a pod.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Seen, no eviction answered yet.
    #[default]
    Pending,
    /// The API accepted the eviction.
    Evicted,
    /// Every request answered 429: the eviction would break a disruption budget.
    Refused,
    /// Deleted or terminating by someone else's doing.
    Gone,
}

/// What happened to one pod of a drained node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub outcome: Outcome,
    /// Eviction requests sent.
    pub attempts: u32,
    /// The API's last refusal, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// The ReplicaSet that owns the pod: it makes the replacement, which the revert waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_set: Option<String>,
}

/// The drain's record, in the run directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub nodes: Vec<String>,
    pub pods: Vec<PodRecord>,
    /// Pods left on the nodes because they belong to a DaemonSet or are mirror pods.
    pub skipped: Vec<String>,
    /// Seconds from the first eviction request to the last answer.
    pub took_s: f64,
}

impl Record {
    pub fn load(path: &Path) -> Result<Record, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading the drain's record {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("reading the drain's record {}: {e}", path.display()))
    }
}

/// A record of its own for every drain planned (a scenario repeated in one environment
/// has the same tag).
pub fn record_path(env: &Env, tag: &str) -> PathBuf {
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    env.run_dir.join("drain").join(format!("{tag}-{at}.json"))
}

fn nodes_api(env: &Env, cluster: &str) -> Result<Api<Node>, FaultError> {
    let c = env.cluster(cluster).map_err(super::backend_err(format!("drain-node: cluster {cluster}")))?;
    Ok(Api::all(c.client.clone()))
}

/// The nodes that are schedulable now: the ones the revert uncordons. A node already
/// cordoned stays so.
pub async fn plan(env: &Env, cluster: &str, nodes: &[String], tag: &str) -> Result<Undo, FaultError> {
    let api = nodes_api(env, cluster)?;
    let nodes = &env.node_names(cluster, nodes).map_err(FaultError::Invalid)?;
    let mut schedulable = Vec::new();
    for n in nodes {
        let node = api.get(n).await.map_err(kube_err(format!("reading node {cluster}/{n}")))?;
        if !cordoned(&node) {
            schedulable.push(n.clone());
        }
    }
    if schedulable.is_empty() {
        return Err(FaultError::Invalid(format!("drain-node: every node of {} is cordoned already; nothing to drain", nodes.join(", "))));
    }
    Ok(Undo::Uncordon { cluster: cluster.into(), nodes: schedulable, record: record_path(env, tag) })
}

fn cordoned(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}

async fn set_unschedulable(api: &Api<Node>, cluster: &str, node: &str, on: bool) -> Result<(), FaultError> {
    let patch = serde_json::json!({ "spec": { "unschedulable": on } });
    let what = if on { "cordoning" } else { "uncordoning" };
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(kube_err(format!("{what} node {cluster}/{node}")))?;
    Ok(())
}

/// Whether the drain leaves the pod in place: a DaemonSet's pod or a mirror pod.
fn kept(p: &Pod) -> bool {
    let daemonset = crate::objects::controlled_by(&p.metadata, "DaemonSet").is_some();
    let mirror = p.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    daemonset || mirror
}

/// The pods scheduled on `node`.
async fn pods_on(env: &Env, cluster: &str, node: &str) -> Result<Vec<Pod>, String> {
    let c = env.cluster(cluster).map_err(|e| e.to_string())?;
    Api::<Pod>::all(c.client.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .map(|l| l.items)
        .map_err(|e| format!("listing the pods of node {cluster}/{node}: {}", crate::error::kube_message(&e)))
}

fn key(p: &Pod) -> (String, String, String) {
    (p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default(), p.metadata.uid.clone().unwrap_or_default())
}

/// Cordon every node, then evict their pods, retrying refusals for [`GIVE_UP`]. The record
/// is written whatever the outcome; an inject run again continues it.
pub async fn inject(env: &Env, cluster: &str, nodes: &[String], record: &Path) -> Result<(), FaultError> {
    let api = nodes_api(env, cluster)?;
    let nodes = &env.node_names(cluster, nodes).map_err(FaultError::Invalid)?;
    for n in nodes {
        set_unschedulable(&api, cluster, n, true).await?;
    }
    let c = env.cluster(cluster).map_err(super::backend_err(format!("drain-node: cluster {cluster}")))?;
    // Refusals must be seen: the cluster's usual client would retry a 429 by itself.
    let evictor = crate::backend::kube_client_without_retry(&c.admin_kubeconfig)
        .await
        .map_err(super::backend_err(format!("drain-node: a client of cluster {cluster}")))?;
    let mut rec = Record::load(record).unwrap_or_default();
    rec.nodes = nodes.to_vec();
    let started = Instant::now();
    loop {
        let mut refused = 0;
        for n in nodes {
            let pods = pods_on(env, cluster, n).await.map_err(|message| FaultError::Kube { what: "drain-node".into(), message })?;
            for p in pods {
                let (ns, name, uid) = key(&p);
                if kept(&p) {
                    let line = format!("{ns}/{name}");
                    if !rec.skipped.contains(&line) {
                        rec.skipped.push(line);
                    }
                    continue;
                }
                let i = match rec.pods.iter().position(|r| r.uid == uid) {
                    Some(i) => i,
                    None => {
                        let replica_set = crate::objects::controlled_by(&p.metadata, "ReplicaSet").map(String::from);
                        rec.pods.push(PodRecord {
                            namespace: ns.clone(),
                            name: name.clone(),
                            uid: uid.clone(),
                            node: n.clone(),
                            replica_set,
                            ..Default::default()
                        });
                        rec.pods.len() - 1
                    }
                };
                // Evicted already, or terminating before the drain asked: nothing more to ask.
                match (rec.pods[i].outcome, p.metadata.deletion_timestamp.is_some()) {
                    (Outcome::Evicted, _) => continue,
                    (Outcome::Pending, true) => {
                        rec.pods[i].outcome = Outcome::Gone;
                        continue;
                    }
                    (_, true) => continue,
                    _ => {}
                }
                rec.pods[i].attempts += 1;
                match Api::<Pod>::namespaced(evictor.clone(), &ns).evict(&name, &EvictParams::default()).await {
                    Ok(_) => rec.pods[i].outcome = Outcome::Evicted,
                    Err(kube::Error::Api(s)) if s.code == 404 => rec.pods[i].outcome = Outcome::Gone,
                    Err(kube::Error::Api(s)) if s.code == 429 => {
                        rec.pods[i].outcome = Outcome::Refused;
                        rec.pods[i].refusal = Some(s.message.clone());
                        refused += 1;
                    }
                    Err(e) => {
                        write(record, &rec)?;
                        return Err(kube_err(format!("evicting pod {ns}/{name} from node {cluster}/{n}"))(e));
                    }
                }
            }
        }
        rec.took_s = started.elapsed().as_secs_f64();
        write(record, &rec)?;
        if refused == 0 || started.elapsed() >= GIVE_UP {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn write(path: &Path, rec: &Record) -> Result<(), FaultError> {
    let io = |e: std::io::Error| FaultError::Invalid(format!("writing the drain's record {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(rec).unwrap_or_default()).map_err(io)
}

/// How long the revert waits for the evicted pods' replacements.
const REPLACED: Duration = Duration::from_secs(60);

/// Uncordon the nodes the drain cordoned (idempotent; their Kubernetes names), then wait
/// until every ReplicaSet that lost a pod to the drain is at full strength again: the
/// drain is undone when what it evicted runs again, not only when the nodes are open.
pub async fn revert(env: &Env, cluster: &str, nodes: &[String], record: &Path) -> Result<(), FaultError> {
    let api = nodes_api(env, cluster)?;
    for n in nodes {
        set_unschedulable(&api, cluster, n, false).await?;
    }
    let deadline = crate::wait::Deadline::after(REPLACED);
    loop {
        match short_of_strength(env, cluster, record).await {
            Ok(()) => return Ok(()),
            Err(state) if deadline.passed() => {
                return Err(FaultError::Unproven { what: format!("drain of {} not undone", nodes.join(", ")), state, after: REPLACED });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// `Ok` when every ReplicaSet the drain evicted a pod from has as many Ready pods as it
/// wants (a drain whose record was never written evicted nothing).
async fn short_of_strength(env: &Env, cluster: &str, record: &Path) -> Result<(), String> {
    let Ok(rec) = Record::load(record) else { return Ok(()) };
    let c = env.cluster(cluster).map_err(|e| e.to_string())?;
    let mut sets: Vec<(&str, &str)> =
        rec.pods.iter().filter(|p| p.outcome == Outcome::Evicted).filter_map(|p| Some((p.namespace.as_str(), p.replica_set.as_deref()?))).collect();
    sets.sort();
    sets.dedup();
    let mut short = Vec::new();
    for (ns, name) in sets {
        let rs = match Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(c.client.clone(), ns).get_opt(name).await {
            Ok(Some(rs)) => rs,
            // Replaced by a newer ReplicaSet (a rollout): not the drain's to wait for.
            Ok(None) => continue,
            Err(e) => return Err(format!("reading replica set {ns}/{name}: {}", crate::error::kube_message(&e))),
        };
        let want = rs.spec.and_then(|s| s.replicas).unwrap_or(1);
        let ready = rs.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        if ready < want {
            short.push(format!("{ns}/{name} {ready} of {want} Ready"));
        }
    }
    if short.is_empty() { Ok(()) } else { Err(format!("replica set(s) short of their evicted pods: {}", short.join(", "))) }
}

/// In effect: every node cordoned, and nothing left on them but pods the drain keeps, pods
/// terminating, and pods whose eviction the API refused. Undone: the planned nodes are
/// schedulable again.
pub async fn check(env: &Env, cluster: &str, drained: &[String], undo_nodes: &[String], record: &Path, expect: Expect) -> Result<(), String> {
    let c = env.cluster(cluster).map_err(|e| e.to_string())?;
    let api: Api<Node> = Api::all(c.client.clone());
    let drained = &env.node_names(cluster, drained)?;
    let nodes = match expect {
        Expect::InEffect => drained,
        Expect::Reverted => undo_nodes,
    };
    for n in nodes {
        let node = api.get(n).await.map_err(|e| format!("reading node {cluster}/{n}: {}", crate::error::kube_message(&e)))?;
        match (expect, cordoned(&node)) {
            (Expect::InEffect, false) => return Err(format!("node {cluster}/{n} is schedulable")),
            (Expect::Reverted, true) => return Err(format!("node {cluster}/{n} is cordoned")),
            _ => {}
        }
    }
    if expect == Expect::Reverted {
        return short_of_strength(env, cluster, record).await;
    }
    let rec = Record::load(record)?;
    let mut left = Vec::new();
    for n in drained {
        for p in pods_on(env, cluster, n).await? {
            let (ns, name, uid) = key(&p);
            let refused = rec.pods.iter().any(|r| r.uid == uid && r.outcome == Outcome::Refused);
            if !kept(&p) && p.metadata.deletion_timestamp.is_none() && !refused {
                left.push(format!("{ns}/{name} on {n}"));
            }
        }
    }
    if left.is_empty() { Ok(()) } else { Err(format!("pod(s) neither evicted nor refused: {}", left.join(", "))) }
}
