//! Claims of workload separation (seed 002's scheduling table):
//!
//! - `placement-conforms`: the topology's control-plane nodes carry the control-plane
//!   taint and its workers do not; every pod on a control-plane node tolerates the taint;
//!   every row of the suite's `placement` table matches the pods it selects — type (their
//!   controller), replicas, node role, anti-affinity (declared on the hostname and
//!   observed: no two on one node) and disruption control (a PodDisruptionBudget selects
//!   them, or none does). A mismatch prints the row and what was found.
//! - `drain-completed` and `drain-refused-by-pdb`: what the drain's record says the
//!   eviction API did (see [`crate::fault::drain`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;

use super::{Context, SETTLE};
use crate::fault::Undo;
use crate::fault::drain::{Outcome, Record};
use crate::objects::{controlled_by, controller, ready_condition};
use crate::suite::placement::{Cell, Instances, NodeRoleCell, PlacementRow, PlacementSpec, Replicas, WorkloadType, replicas};
use crate::topology::{NodeRole, Topology};
use crate::wait::Deadline;

const TAINT: &str = "node-role.kubernetes.io/control-plane";

/// What one look at the cluster holds.
struct Cluster {
    /// Node name → carries the control-plane NoSchedule taint.
    tainted: BTreeMap<String, bool>,
    /// Running pods: scheduled, not terminating, not finished.
    pods: Vec<Pod>,
    pdbs: Vec<PodDisruptionBudget>,
    /// ReplicaSet `namespace/name` → the kind of its controller, if any.
    replica_sets: BTreeMap<String, Option<String>>,
}

async fn look(client: &kube::Client) -> Result<Cluster, String> {
    let err = |what: &'static str| move |e: kube::Error| format!("listing {what}: {}", crate::error::kube_message(&e));
    let nodes = Api::<Node>::all(client.clone()).list(&Default::default()).await.map_err(err("nodes"))?.items;
    let tainted = nodes
        .iter()
        .map(|n| {
            let t = n.spec.as_ref().and_then(|s| s.taints.as_ref()).is_some_and(|ts| ts.iter().any(|t| t.key == TAINT && t.effect == "NoSchedule"));
            (n.metadata.name.clone().unwrap_or_default(), t)
        })
        .collect();
    let pods = Api::<Pod>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(err("pods"))?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
        .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
        .collect();
    let pdbs = Api::<PodDisruptionBudget>::all(client.clone()).list(&Default::default()).await.map_err(err("disruption budgets"))?.items;
    let replica_sets = Api::<ReplicaSet>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(err("replica sets"))?
        .items
        .into_iter()
        .map(|r| {
            let owner = controller(&r.metadata).map(|o| o.kind.clone());
            (format!("{}/{}", r.metadata.namespace.clone().unwrap_or_default(), r.metadata.name.clone().unwrap_or_default()), owner)
        })
        .collect();
    Ok(Cluster { tainted, pods, pdbs, replica_sets })
}

fn pod_name(p: &Pod) -> String {
    format!("{}/{}", p.metadata.namespace.as_deref().unwrap_or_default(), p.metadata.name.as_deref().unwrap_or_default())
}

fn node_of(p: &Pod) -> &str {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default()
}

fn selects(labels: &BTreeMap<String, String>, p: &Pod) -> bool {
    let have = p.metadata.labels.clone().unwrap_or_default();
    labels.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// A static pod's mirror: the kubelet of its node created it from a file.
fn is_static(p: &Pod) -> bool {
    p.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
}

fn tolerates(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.tolerations.as_ref()).is_some_and(|ts| {
        ts.iter().any(|t| {
            let key = t.key.as_deref().unwrap_or_default();
            let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "NoSchedule");
            effect_ok && ((key == TAINT) || (key.is_empty() && t.operator.as_deref() == Some("Exists")))
        })
    })
}

/// The workload type the pod's controller makes it.
fn pod_type(c: &Cluster, p: &Pod) -> &'static str {
    if is_static(p) {
        // Its owner is the Node, which made it from a file: a Pod, managed by nothing.
        return "Pod";
    }
    match controller(&p.metadata).map(|o| (o.kind.as_str(), o.name.as_str())) {
        None => "Pod",
        Some(("DaemonSet", _)) => "DaemonSet",
        Some(("ReplicaSet", rs)) => {
            let key = format!("{}/{rs}", p.metadata.namespace.as_deref().unwrap_or_default());
            match c.replica_sets.get(&key) {
                Some(Some(k)) if k == "Deployment" => "Deployment",
                _ => "ReplicaSet",
            }
        }
        Some(_) => "Pod*",
    }
}

fn declares_hostname_anti_affinity(p: &Pod) -> bool {
    let Some(a) = p.spec.as_ref().and_then(|s| s.affinity.as_ref()).and_then(|a| a.pod_anti_affinity.as_ref()) else { return false };
    let required = a.required_during_scheduling_ignored_during_execution.iter().flatten().any(|t| t.topology_key == "kubernetes.io/hostname");
    let preferred =
        a.preferred_during_scheduling_ignored_during_execution.iter().flatten().any(|t| t.pod_affinity_term.topology_key == "kubernetes.io/hostname");
    required || preferred
}

/// The budgets selecting every one of `pods`, as `namespace/name (minAvailable N)`.
fn budgets(c: &Cluster, pods: &[&Pod]) -> Vec<String> {
    c.pdbs
        .iter()
        .filter(|b| pods.iter().all(|p| p.metadata.namespace == b.metadata.namespace))
        .filter_map(|b| {
            let spec = b.spec.as_ref()?;
            let labels = spec.selector.as_ref()?.match_labels.clone()?;
            if labels.is_empty() || !pods.iter().all(|p| selects(&labels, p)) {
                return None;
            }
            let bound = match (&spec.min_available, &spec.max_unavailable) {
                (Some(IntOrString::Int(n)), _) => format!("minAvailable {n}"),
                (Some(IntOrString::String(s)), _) => format!("minAvailable {s}"),
                (_, Some(IntOrString::Int(n))) => format!("maxUnavailable {n}"),
                (_, Some(IntOrString::String(s))) => format!("maxUnavailable {s}"),
                _ => "no bound".into(),
            };
            Some(format!("{}/{} ({bound})", b.metadata.namespace.as_deref().unwrap_or_default(), b.metadata.name.as_deref().unwrap_or_default()))
        })
        .collect()
}

/// Mismatches of one row (empty: it conforms), and what was found.
fn check_row(c: &Cluster, row: &PlacementRow, pods: &[&Pod]) -> (Vec<String>, String) {
    let mut wrong = Vec::new();
    let mut nodes: Vec<&str> = pods.iter().map(|p| node_of(p)).collect();
    nodes.sort();
    let found = if pods.is_empty() { "no running pod".to_string() } else { format!("{} pod(s) on {}", pods.len(), nodes.join(", ")) };
    let all_other = matches!(row.instances, Instances::AllOtherPods);
    if pods.is_empty() && !all_other {
        wrong.push("no running pod".into());
        return (wrong, found);
    }
    // Type: the pods' controller.
    let want = match row.kind {
        WorkloadType::Any => None,
        k => Some(k.words()),
    };
    if let Some(want) = want {
        for p in pods {
            let t = pod_type(c, p);
            if t != want {
                wrong.push(format!("{} is a {t}, not a {want}", pod_name(p)));
            }
        }
    }
    // Replicas.
    let on_tainted = |n: &str| c.tainted.get(n).copied().unwrap_or(false);
    let expected = match replicas(&row.replicas.value) {
        Some(Replicas::Count(n)) => Some(n as usize),
        Some(Replicas::PerNode) => match row.node_role {
            NodeRoleCell::Master => Some(c.tainted.values().filter(|t| **t).count()),
            NodeRoleCell::All => Some(c.tainted.len()),
            NodeRoleCell::Worker => Some(c.tainted.values().filter(|t| !**t).count()),
            _ => None,
        },
        _ => None,
    };
    if let Some(n) = expected
        && pods.len() != n
    {
        wrong.push(format!("{} replica(s), the row says {}", pods.len(), row.replicas.value));
    }
    // Node role.
    for p in pods {
        let n = node_of(p);
        match row.node_role {
            NodeRoleCell::Master if !on_tainted(n) => wrong.push(format!("{} on {n}, not a control-plane node", pod_name(p))),
            NodeRoleCell::Worker if on_tainted(n) => wrong.push(format!("{} on control-plane node {n}", pod_name(p))),
            _ => {}
        }
    }
    // Anti-affinity: declared on the hostname, and no two instances on one node.
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &nodes {
        *per_node.entry(n).or_default() += 1;
    }
    let shared: Vec<String> = per_node.iter().filter(|(_, k)| **k > 1).map(|(n, k)| format!("{k} on {n}")).collect();
    let declared = pods.iter().filter(|p| declares_hostname_anti_affinity(p)).count();
    match row.anti_affinity {
        Cell::Yes if declared < pods.len() => {
            wrong.push(format!("{} of {} pod(s) declare no anti-affinity on kubernetes.io/hostname", pods.len() - declared, pods.len()))
        }
        Cell::Yes if !shared.is_empty() => wrong.push(format!("instances share a node: {}", shared.join(", "))),
        Cell::No if declared > 0 => wrong.push(format!("{declared} pod(s) declare anti-affinity, the row says no")),
        _ => {}
    }
    // Disruption control: a budget selects them.
    let found = match row.disruption_control {
        Cell::Yes | Cell::No if !all_other => {
            let b = budgets(c, pods);
            match (row.disruption_control, b.is_empty()) {
                (Cell::Yes, true) => wrong.push("no PodDisruptionBudget selects them".into()),
                (Cell::No, false) => wrong.push(format!("disruption budget {}, the row says no", b.join(", "))),
                _ => {}
            }
            if b.is_empty() { found } else { format!("{found}; budget {}", b.join(", ")) }
        }
        _ => found,
    };
    (wrong, found)
}

/// One look: every finding line, and whether all conform.
fn conformance(c: &Cluster, placement: &PlacementSpec, cluster: &str, control_plane: &[String], workers: &[String]) -> (bool, Vec<String>) {
    let mut lines = Vec::new();
    let mut holds = true;
    // The taint: on the topology's control-plane nodes, not on its workers.
    let untainted: Vec<&String> = control_plane.iter().filter(|n| !c.tainted.get(*n).copied().unwrap_or(false)).collect();
    let tainted_workers: Vec<&String> = workers.iter().filter(|n| c.tainted.get(*n).copied().unwrap_or(false)).collect();
    if untainted.is_empty() && tainted_workers.is_empty() {
        lines.push(format!("taint {TAINT}:NoSchedule on the {} control-plane node(s) and none of the {} worker(s)", control_plane.len(), workers.len()));
    } else {
        holds = false;
        lines.push(format!("✗ taint: control-plane node(s) without it: {}; worker(s) with it: {}", names(&untainted), names(&tainted_workers)));
    }
    // A static pod is placed by its node's own kubelet, not by the scheduler: taints do
    // not apply to it (on kind, the control plane runs so).
    let statics: Vec<String> = c.pods.iter().filter(|p| is_static(p)).map(|p| format!("{} on {}", pod_name(p), node_of(p))).collect();
    if !statics.is_empty() {
        lines.push(format!("static pods (placed by their node's kubelet, not scheduled): {}", statics.join(", ")));
    }
    let intolerant: Vec<String> = c
        .pods
        .iter()
        .filter(|p| !is_static(p) && c.tainted.get(node_of(p)).copied().unwrap_or(false) && !tolerates(p))
        .map(|p| format!("{} on {}", pod_name(p), node_of(p)))
        .collect();
    if !intolerant.is_empty() {
        holds = false;
        lines.push(format!("✗ pod(s) on control-plane nodes without tolerating the taint: {}", intolerant.join(", ")));
    }
    let claimed = |p: &Pod| {
        placement
            .rows_in(cluster)
            .any(|r| matches!(&r.instances, Instances::Pods { namespace, labels } if p.metadata.namespace.as_deref() == Some(namespace) && selects(labels, p)))
    };
    let not_pods: Vec<&str> =
        placement.rows_in(cluster).filter(|r| matches!(r.instances, Instances::NotPods { .. })).map(|r| r.component.value.as_str()).collect();
    if !not_pods.is_empty() {
        lines.push(format!("not checked, not run as pods here (the suite says why): {}", not_pods.join(", ")));
    }
    for row in placement.rows_in(cluster) {
        let pods: Vec<&Pod> = match &row.instances {
            Instances::NotPods { .. } => continue,
            Instances::Pods { namespace, labels } => {
                c.pods.iter().filter(|p| p.metadata.namespace.as_deref() == Some(namespace) && selects(labels, p)).collect()
            }
            Instances::AllOtherPods => c.pods.iter().filter(|p| !claimed(p) && !is_static(p)).collect(),
        };
        let (wrong, found) = check_row(c, row, &pods);
        if wrong.is_empty() {
            lines.push(format!("{}: {found}", row.line()));
        } else {
            holds = false;
            lines.push(format!("✗ {}: {found}: {}", row.line(), wrong.join("; ")));
        }
    }
    (holds, lines)
}

fn names(v: &[&String]) -> String {
    if v.is_empty() { "none".into() } else { v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") }
}

/// A pod running on a node a `lose-node` fault is about to lose.
#[derive(Clone, Debug)]
pub struct LostPod {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    /// Its Kubernetes node name.
    pub node: String,
    /// The ReplicaSet that owns it, if one does (its replacement has the same owner).
    pub replica_set: Option<String>,
    /// Whether a `pods` row of the suite's placement table selects it.
    pub in_table: bool,
}

impl LostPod {
    fn line(&self) -> String {
        format!("{}/{} on {}", self.namespace, self.name, self.node)
    }
}

fn replica_set_of(p: &Pod) -> Option<String> {
    controlled_by(&p.metadata, "ReplicaSet").map(String::from)
}

/// The pods running on the nodes the scenario's `lose-node` faults are about to lose.
pub async fn on_lost_nodes(env: &crate::env::Env, suite: &crate::suite::Suite, sc: &crate::suite::ScenarioSpec) -> Result<Vec<LostPod>, String> {
    let mut found = Vec::new();
    for f in &sc.faults {
        let crate::fault::FaultSpec::LoseNode { cluster, node } = f else { continue };
        let node = env.node_names(cluster, std::slice::from_ref(node))?.remove(0);
        let c = look(&env.cluster(cluster).map_err(|e| e.to_string())?.client).await?;
        for p in c.pods.iter().filter(|p| node_of(p) == node) {
            let in_table = suite.spec.placement.as_ref().is_some_and(|t| {
                t.clusters.value.contains(cluster)
                    && t.rows_in(cluster).any(|r| {
                        matches!(&r.instances, Instances::Pods { namespace, labels } if p.metadata.namespace.as_deref() == Some(namespace) && selects(labels, p))
                    })
            });
            found.push(LostPod {
                cluster: cluster.clone(),
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                node: node.clone(),
                replica_set: replica_set_of(p),
                in_table,
            });
        }
    }
    Ok(found)
}

/// Every pod of a ReplicaSet on a lost node was replaced on another node, Ready before the
/// node came back (the end of the fault window); the time from the loss to each
/// replacement's Ready condition is stated (the API keeps whole seconds).
pub async fn replaced_elsewhere(cx: &Context<'_>) -> Result<(bool, String), String> {
    let lost: Vec<&LostPod> = cx.before.lost.iter().filter(|p| p.replica_set.is_some()).collect();
    if lost.is_empty() {
        return Ok((false, "the lost node ran no pod of a ReplicaSet: nothing had to be replaced".into()));
    }
    let from = jiff::Timestamp::try_from(cx.window.from).map_err(|e| e.to_string())?;
    let to = jiff::Timestamp::try_from(cx.window.to).map_err(|e| e.to_string())?;
    let mut holds = true;
    let mut notes = Vec::new();
    for l in lost {
        let client = cx.env.cluster(&l.cluster).map_err(|e| e.to_string())?.client.clone();
        let pods = Api::<Pod>::namespaced(client, &l.namespace)
            .list(&Default::default())
            .await
            .map_err(|e| format!("listing pods of {}: {}", l.namespace, crate::error::kube_message(&e)))?
            .items;
        // The first replacement Ready: same ReplicaSet, another node, created after the loss.
        let replacement = pods
            .iter()
            .filter(|p| replica_set_of(p) == l.replica_set && node_of(p) != l.node)
            .filter(|p| p.metadata.creation_timestamp.as_ref().is_some_and(|t| t.0.as_second() >= from.as_second()))
            .filter_map(|p| {
                let ready = ready_condition(p)?;
                Some((pod_name(p), node_of(p).to_string(), ready.last_transition_time.as_ref()?.0))
            })
            .min_by_key(|(_, _, at)| *at);
        match replacement {
            Some((name, node, at)) => {
                let secs = at.as_second() - from.as_second();
                let in_window = at.as_second() <= to.as_second();
                holds &= in_window;
                notes.push(format!(
                    "{} replaced by {name} on {node}, Ready {secs} s after the loss{}",
                    l.line(),
                    if in_window { "" } else { ", after the node was back" }
                ));
            }
            None => {
                holds = false;
                notes.push(format!("{}: no replacement on another node is Ready", l.line()));
            }
        }
    }
    Ok((holds, notes.join("; ")))
}

/// The live cluster against the suite's table, looked at until it conforms or
/// [`SETTLE`] has passed (a replacement may still be starting right after recovery).
pub async fn placement_conforms(cx: &Context<'_>) -> Result<(bool, String), String> {
    let placement = cx.suite.spec.placement.as_ref().ok_or("claim `placement-conforms` needs the suite's `placement` table")?;
    let topo = Topology::load(&cx.env.paths.fixtures, &cx.suite.spec.topology.value).map_err(|e| e.to_string())?;
    // A lost node that ran no instance of the table's components proves nothing.
    let loses = cx.scenario.faults.iter().any(|f| matches!(f, crate::fault::FaultSpec::LoseNode { cluster: c, .. } if placement.clusters.value.contains(c)));
    let in_table: Vec<String> = cx.before.lost.iter().filter(|p| p.in_table).map(LostPod::line).collect();
    let lost = match (loses, in_table.is_empty()) {
        (false, _) => String::new(),
        (true, true) => return Ok((false, "the lost node ran no pod of the table's components: the loss proves nothing about them".into())),
        (true, false) => format!("lost with the node: {}; ", in_table.join(", ")),
    };
    let several = placement.clusters.value.len() > 1;
    let mut found = Vec::new();
    let mut holds = true;
    for cluster in &placement.clusters.value {
        let tc = topo.clusters.iter().find(|c| &c.name == cluster).ok_or_else(|| format!("topology {} has no cluster {cluster}", topo.topology))?;
        let role = |r: NodeRole| tc.nodes.iter().filter(|n| n.role == r).map(|n| n.name.clone()).collect::<Vec<_>>();
        let control_plane = cx.env.node_names(cluster, &role(NodeRole::ControlPlane))?;
        let workers = cx.env.node_names(cluster, &role(NodeRole::Worker))?;
        let client = cx.env.cluster(cluster).map_err(|e| e.to_string())?.client.clone();
        let (ok, text) = conforms_within(&client, placement, cluster, &control_plane, &workers).await?;
        holds &= ok;
        found.push(if several { format!("{cluster}: {text}") } else { text });
    }
    Ok((holds, format!("{lost}{}", found.join("; "))))
}

/// One cluster looked at until it conforms or [`SETTLE`] has passed.
async fn conforms_within(
    client: &kube::Client,
    placement: &PlacementSpec,
    cluster: &str,
    control_plane: &[String],
    workers: &[String],
) -> Result<(bool, String), String> {
    let deadline = Deadline::after(SETTLE);
    let started = Instant::now();
    loop {
        let seen = look(client).await.map(|c| conformance(&c, placement, cluster, control_plane, workers));
        match seen {
            Ok((true, lines)) => return Ok((true, format!("conforms after {:.1} s: {}", started.elapsed().as_secs_f64(), lines.join("; ")))),
            Ok((false, lines)) if deadline.passed() => return Ok((false, lines.join("; "))),
            Err(e) if deadline.passed() => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

fn drain_record(cx: &Context<'_>, claim: &str) -> Result<(String, Record), String> {
    let (cluster, path) = cx
        .undos
        .iter()
        .find_map(|u| match u {
            Undo::Uncordon { cluster, record, .. } => Some((cluster.clone(), record.clone())),
            _ => None,
        })
        .ok_or_else(|| format!("claim `{claim}` needs a `drain-node` fault in the scenario"))?;
    Ok((cluster, Record::load(&path)?))
}

fn listed(rec: &Record, outcome: Outcome) -> Vec<String> {
    rec.pods.iter().filter(|p| p.outcome == outcome).map(|p| format!("{}/{} from {}", p.namespace, p.name, p.node)).collect()
}

/// Every pod of the drained nodes but the ones a drain keeps was evicted.
pub fn drain_completed(cx: &Context<'_>) -> Result<(bool, String), String> {
    let (_, rec) = drain_record(cx, "drain-completed")?;
    let evicted = listed(&rec, Outcome::Evicted);
    let refused: Vec<String> = rec
        .pods
        .iter()
        .filter(|p| p.outcome == Outcome::Refused)
        .map(|p| format!("{}/{}: {}", p.namespace, p.name, p.refusal.as_deref().unwrap_or("refused")))
        .collect();
    let kept = if rec.skipped.is_empty() { String::new() } else { format!("; left as a drain leaves them: {}", rec.skipped.join(", ")) };
    if !refused.is_empty() {
        return Ok((false, format!("{} eviction(s) refused after {:.1} s: {}", refused.len(), rec.took_s, refused.join("; "))));
    }
    if evicted.is_empty() {
        return Ok((false, format!("nothing was evicted from {}: the drain proves nothing{kept}", rec.nodes.join(", "))));
    }
    Ok((true, format!("{} pod(s) evicted from {} in {:.1} s: {}{kept}", evicted.len(), rec.nodes.join(", "), rec.took_s, evicted.join(", "))))
}

/// The API refused at least one eviction because of a disruption budget, and every pod
/// it refused to evict is still there (same uid).
pub async fn drain_refused_by_pdb(cx: &Context<'_>) -> Result<(bool, String), String> {
    let (cluster, rec) = drain_record(cx, "drain-refused-by-pdb")?;
    let client = cx.env.cluster(&cluster).map_err(|e| e.to_string())?.client.clone();
    let refused: Vec<_> = rec.pods.iter().filter(|p| p.outcome == Outcome::Refused).collect();
    let evicted = listed(&rec, Outcome::Evicted);
    if refused.is_empty() {
        return Ok((false, format!("no eviction was refused: {} pod(s) evicted ({})", evicted.len(), evicted.join(", "))));
    }
    let mut holds = true;
    let mut notes = Vec::new();
    for p in refused {
        let why = p.refusal.clone().unwrap_or_default();
        let budget = why.contains("disruption budget");
        let still = match Api::<Pod>::namespaced(client.clone(), &p.namespace).get_opt(&p.name).await {
            Ok(Some(pod)) => pod.metadata.uid.as_deref() == Some(p.uid.as_str()) && pod.metadata.deletion_timestamp.is_none(),
            Ok(None) => false,
            Err(e) => return Err(format!("reading pod {}/{}: {}", p.namespace, p.name, crate::error::kube_message(&e))),
        };
        holds &= budget && still;
        notes.push(format!(
            "{}/{} on {}: {} request(s) refused over {:.1} s (\"{why}\"){}{}",
            p.namespace,
            p.name,
            p.node,
            p.attempts,
            rec.took_s,
            if budget { "" } else { ", not for a disruption budget" },
            if still { ", and it still runs" } else { ", but it is gone now" }
        ));
    }
    Ok((holds, format!("{}; evicted meanwhile: {}", notes.join("; "), if evicted.is_empty() { "none".into() } else { evicted.join(", ") })))
}

#[cfg(test)]
mod tests {
    //! The row checker against pods built here (pure logic; no cluster).
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, PodAffinityTerm, PodAntiAffinity, PodSpec, Toleration};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

    fn pod(name: &str, node: &str, anti: bool, owner: Option<(&str, &str)>) -> Pod {
        let affinity = anti.then(|| Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    topology_key: "kubernetes.io/hostname".into(),
                    label_selector: Some(LabelSelector { match_labels: Some(BTreeMap::from([("app".into(), "x".into())])), ..Default::default() }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: Some(BTreeMap::from([("app".into(), "x".into())])),
                owner_references: owner
                    .map(|(kind, n)| vec![OwnerReference { kind: kind.into(), name: n.into(), controller: Some(true), ..Default::default() }]),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some(node.into()), affinity, ..Default::default() }),
            ..Default::default()
        }
    }

    fn cluster(pods: Vec<Pod>, pdb: bool) -> Cluster {
        let pdbs = if pdb {
            vec![PodDisruptionBudget {
                metadata: ObjectMeta { name: Some("x".into()), namespace: Some("ns".into()), ..Default::default() },
                spec: Some(k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec {
                    min_available: Some(IntOrString::Int(1)),
                    selector: Some(LabelSelector { match_labels: Some(BTreeMap::from([("app".into(), "x".into())])), ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        } else {
            vec![]
        };
        Cluster {
            tainted: BTreeMap::from([("cp".into(), true), ("w1".into(), false), ("w2".into(), false)]),
            pods,
            pdbs,
            replica_sets: BTreeMap::from([("ns/x-1".into(), Some("Deployment".into()))]),
        }
    }

    fn row(yaml: &str) -> PlacementRow {
        serde_saphyr::from_str(yaml).expect("row")
    }

    const DEX: &str = "{component: x, type: Deployment, replicas: '2', node-role: worker, anti-affinity: 'yes', disruption-control: 'yes', from: firedrill, instances: {kind: pods, namespace: ns, labels: {app: x}}}";

    #[test]
    fn a_spread_deployment_with_a_budget_conforms_to_its_row() {
        let c = cluster(vec![pod("a", "w1", true, Some(("ReplicaSet", "x-1"))), pod("b", "w2", true, Some(("ReplicaSet", "x-1")))], true);
        let pods: Vec<&Pod> = c.pods.iter().collect();
        let (wrong, found) = check_row(&c, &row(DEX), &pods);
        assert!(wrong.is_empty(), "{wrong:?}");
        assert_eq!(found, "2 pod(s) on w1, w2; budget ns/x (minAvailable 1)");
    }

    #[test]
    fn every_column_that_does_not_hold_is_named() {
        // One node for both, no anti-affinity declared, on the control plane, no budget, no Deployment.
        let c = cluster(vec![pod("a", "cp", false, None), pod("b", "cp", false, None), pod("c", "w1", false, None)], false);
        let pods: Vec<&Pod> = c.pods.iter().collect();
        let (wrong, _) = check_row(&c, &row(DEX), &pods);
        let text = wrong.join("; ");
        for part in [
            "ns/a is a Pod, not a Deployment",
            "3 replica(s), the row says 2",
            "ns/a on control-plane node cp",
            "declare no anti-affinity",
            "no PodDisruptionBudget selects them",
        ] {
            assert!(text.contains(part), "{part} missing in {text}");
        }
        let c = cluster(vec![pod("a", "w1", true, Some(("ReplicaSet", "x-1"))), pod("b", "w1", true, Some(("ReplicaSet", "x-1")))], true);
        let pods: Vec<&Pod> = c.pods.iter().collect();
        assert_eq!(check_row(&c, &row(DEX), &pods).0, vec!["instances share a node: 2 on w1".to_string()]);
    }

    #[test]
    fn a_pod_on_a_control_plane_node_must_tolerate_the_taint() {
        let mut p = pod("a", "cp", false, None);
        assert!(!tolerates(&p));
        p.spec.as_mut().unwrap().tolerations = Some(vec![Toleration { key: Some(TAINT.into()), effect: Some("NoSchedule".into()), ..Default::default() }]);
        assert!(tolerates(&p));
        let everything = Toleration { operator: Some("Exists".into()), ..Default::default() };
        p.spec.as_mut().unwrap().tolerations = Some(vec![everything]);
        assert!(tolerates(&p));
    }

    #[test]
    fn rows_apply_to_their_clusters_and_static_pods_are_not_scheduled() {
        let table: PlacementSpec = serde_saphyr::from_str(&format!(
            "{{source: s, clusters: [one, two], rows: [{}, {{component: others, type: Any, replicas: '?', node-role: worker, anti-affinity: '?', disruption-control: '?', from: document, instances: {{kind: all-other-pods}}}}]}}",
            DEX.replace("instances:", "clusters: [two], instances:")
        ))
        .expect("table");
        // The kubelet's static pod on the control-plane node: it tolerates NoExecute only.
        let mut etcd = pod("etcd-cp", "cp", false, Some(("Node", "cp")));
        etcd.metadata.labels = Some(BTreeMap::from([("component".into(), "etcd".into())]));
        etcd.spec.as_mut().unwrap().tolerations =
            Some(vec![Toleration { operator: Some("Exists".into()), effect: Some("NoExecute".into()), ..Default::default() }]);
        let mut mirror = etcd.clone();
        mirror.metadata.annotations = Some(BTreeMap::from([("kubernetes.io/config.mirror".into(), "hash".into())]));
        let spread = || vec![pod("a", "w1", true, Some(("ReplicaSet", "x-1"))), pod("b", "w2", true, Some(("ReplicaSet", "x-1")))];
        let (cp, workers) = (vec!["cp".to_string()], vec!["w1".to_string(), "w2".to_string()]);

        let c = cluster([spread(), vec![mirror]].concat(), true);
        let (holds, lines) = conformance(&c, &table, "two", &cp, &workers);
        assert!(holds, "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("static pods (placed by their node's kubelet, not scheduled): ns/etcd-cp on cp")), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("x (firedrill's row) | Deployment | 2")), "{lines:?}");
        // In cluster one the row does not apply: its pods are among "all other".
        let (holds, lines) = conformance(&c, &table, "one", &cp, &workers);
        assert!(holds, "{lines:?}");
        assert!(!lines.iter().any(|l| l.starts_with("x ")), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("others | Any | ? | worker | ? | ?: 2 pod(s) on w1, w2")), "{lines:?}");
        // The same pod, not a static one, must tolerate the taint.
        let c = cluster([spread(), vec![etcd]].concat(), true);
        let (holds, lines) = conformance(&c, &table, "two", &cp, &workers);
        assert!(!holds);
        assert!(lines.iter().any(|l| l == "✗ pod(s) on control-plane nodes without tolerating the taint: ns/etcd-cp on cp"), "{lines:?}");
    }
}
