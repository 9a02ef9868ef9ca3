//! The node agent: the kubelet of a local node, run as a task of the local daemon.
//!
//! It registers the Node with its capacity, labels and taints, renews the node Lease and
//! the Ready condition, watches the pods the real scheduler binds to the node, and runs
//! each as real processes in the node's network namespace (see `pod`). It talks to the
//! API server with the node's own client certificate (`system:node:<name>`), so the
//! real Node authorizer and NodeRestriction admission apply to everything it does.
//!
//! When the task is aborted ("node lost"), lease and status renewals stop and the real
//! node-lifecycle controller takes over: NotReady, taints, eviction.

mod env;
mod pod;
mod probes;
mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Event, EventSource, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, ObjectReference, Pod, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backend::BackendError;
use crate::backend::images::ImageMap;
use crate::topology::NodeRole;

/// How often the Lease is renewed; the controller-manager's grace period is 20 s.
const LEASE_RENEW: Duration = Duration::from_secs(4);
const LEASE_DURATION_SECONDS: i32 = 20;
/// How often the Ready condition's heartbeat is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// What a node agent and its pod workers share.
pub struct NodeCtx {
    pub client: kube::Client,
    pub cluster: String,
    pub node: String,
    pub role: NodeRole,
    pub labels: BTreeMap<String, String>,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub run_dir: PathBuf,
    pub pods_dir: PathBuf,
    pub firedrill: PathBuf,
    /// The node's cgroup; each container gets one below it.
    pub cgroup: PathBuf,
    pub images: Arc<ImageMap>,
    /// `KUBERNETES_SERVICE_HOST` and `_PORT` for pods.
    pub apiserver: (String, u16),
    pub kubelet_version: String,
    /// Ports in use on the node, by pod (pods share the node's address).
    pub ports: Mutex<HashMap<u16, String>>,
    /// For probes: certificates are not verified, as the kubelet does not verify them.
    pub probe_http: reqwest::Client,
}

/// Run the agent until the task is aborted. Returns only on an error it cannot get past
/// (the node cannot register).
pub async fn run(ctx: Arc<NodeCtx>) -> Result<(), BackendError> {
    register(&ctx).await?;
    let mut tasks = JoinSet::new();
    {
        let ctx = ctx.clone();
        tasks.spawn(async move { renew_lease(&ctx).await });
    }
    {
        let ctx = ctx.clone();
        tasks.spawn(async move { heartbeat(&ctx).await });
    }
    watch_pods(ctx).await;
    Ok(())
}

fn kube_err(what: String) -> impl FnOnce(kube::Error) -> BackendError {
    move |source| BackendError::Kube { what, source: Box::new(source) }
}

async fn register(ctx: &NodeCtx) -> Result<(), BackendError> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut labels = ctx.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), ctx.node.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"));
    let taints = (ctx.role == NodeRole::ControlPlane)
        .then(|| vec![Taint { key: "node-role.kubernetes.io/control-plane".into(), effect: "NoSchedule".into(), ..Default::default() }]);
    let node = Node {
        metadata: ObjectMeta { name: Some(ctx.node.clone()), labels: Some(labels), ..Default::default() },
        spec: Some(NodeSpec { taints, ..Default::default() }),
        ..Default::default()
    };
    let mut delay = Duration::from_millis(200);
    loop {
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 => break,
            // The node's RBAC and the apiserver may still be settling right after start.
            Err(e) if delay < Duration::from_secs(10) => {
                tracing::debug!(node = %ctx.node, error = %e, "registering; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(kube_err(format!("registering node {}", ctx.node))(e)),
        }
    }
    update_status(ctx).await.map_err(kube_err(format!("reporting status of node {}", ctx.node)))
}

async fn update_status(ctx: &NodeCtx) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let now = Time(jiff::Timestamp::now());
    let cond = |t: &str, s: &str, reason: &str| NodeCondition {
        type_: t.into(),
        status: s.into(),
        reason: Some(reason.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
        message: None,
    };
    let q = |s: &str| Quantity(s.to_string());
    let capacity: BTreeMap<String, Quantity> =
        [("cpu".to_string(), q("8")), ("memory".to_string(), q("16Gi")), ("pods".to_string(), q("110")), ("ephemeral-storage".to_string(), q("50Gi"))].into();
    let status = NodeStatus {
        capacity: Some(capacity.clone()),
        allocatable: Some(capacity),
        conditions: Some(vec![
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            cond("Ready", "True", "KubeletReady"),
        ]),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: ctx.ip.to_string() },
            NodeAddress { type_: "Hostname".into(), address: ctx.node.clone() },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            operating_system: "linux".into(),
            kubelet_version: ctx.kubelet_version.clone(),
            kube_proxy_version: String::new(),
            container_runtime_version: "firedrill-local://1".into(),
            kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().into(),
            os_image: "firedrill local backend".into(),
            machine_id: ctx.node.clone(),
            system_uuid: ctx.node.clone(),
            boot_id: ctx.node.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Keep each condition's transition time when its status did not change.
    let current = api.get(&ctx.node).await?;
    let mut status = status;
    if let (Some(new), Some(old)) = (status.conditions.as_mut(), current.status.and_then(|s| s.conditions)) {
        for c in new.iter_mut() {
            if let Some(o) = old.iter().find(|o| o.type_ == c.type_ && o.status == c.status) {
                c.last_transition_time = o.last_transition_time.clone();
            }
        }
    }
    api.patch_status(&ctx.node, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "status": status }))).await?;
    Ok(())
}

async fn heartbeat(ctx: &NodeCtx) {
    loop {
        tokio::time::sleep(STATUS_EVERY).await;
        if let Err(e) = update_status(ctx).await {
            tracing::debug!(node = %ctx.node, error = %e, "status heartbeat failed");
        }
    }
}

async fn renew_lease(ctx: &NodeCtx) {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    loop {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(ctx.node.clone()), namespace: Some("kube-node-lease".into()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(ctx.node.clone()),
                lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                renew_time: Some(MicroTime(jiff::Timestamp::now())),
                ..Default::default()
            }),
        };
        let patch = PatchParams::apply("firedrill-node-agent").force();
        if let Err(e) = api.patch(&ctx.node, &patch, &Patch::Apply(&lease)).await {
            tracing::debug!(node = %ctx.node, error = %e, "lease renewal failed");
        }
        tokio::time::sleep(LEASE_RENEW).await;
    }
}

async fn watch_pods(ctx: Arc<NodeCtx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node));
    let mut stream = watcher::watcher(api, cfg).boxed();
    let mut workers: HashMap<String, mpsc::Sender<pod::Msg>> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut listed: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev else { break };
                match ev {
                    Ok(watcher::Event::Init) => listed.clear(),
                    Ok(watcher::Event::InitApply(p)) | Ok(watcher::Event::Apply(p)) => {
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        listed.push(uid.clone());
                        dispatch(&ctx, &mut workers, &mut tasks, uid, p).await;
                    }
                    Ok(watcher::Event::InitDone) => {
                        // Pods that vanished while the watch was down.
                        let gone: Vec<String> = workers.keys().filter(|u| !listed.contains(u)).cloned().collect();
                        for uid in gone {
                            if let Some(tx) = workers.remove(&uid) {
                                let _ = tx.send(pod::Msg::Gone).await;
                            }
                        }
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        if let Some(tx) = workers.remove(p.metadata.uid.as_deref().unwrap_or_default()) {
                            let _ = tx.send(pod::Msg::Gone).await;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(node = %ctx.node, error = %e, "pod watch error; the watcher backs off and retries");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            Some(_) = tasks.join_next() => {
                workers.retain(|_, tx| !tx.is_closed());
            }
        }
    }
}

async fn dispatch(ctx: &Arc<NodeCtx>, workers: &mut HashMap<String, mpsc::Sender<pod::Msg>>, tasks: &mut JoinSet<()>, uid: String, p: Pod) {
    if let Some(tx) = workers.get(&uid)
        && !tx.is_closed()
    {
        let _ = tx.send(pod::Msg::Update(Box::new(p))).await;
        return;
    }
    // A pod that already ran to completion is not started again.
    let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    if (phase == "Succeeded" || phase == "Failed") && p.metadata.deletion_timestamp.is_none() {
        return;
    }
    let (tx, rx) = mpsc::channel(16);
    workers.insert(uid, tx);
    tasks.spawn(pod::run(ctx.clone(), p, rx));
}

/// Record a core/v1 Event about a pod, from this node (as the kubelet does).
pub async fn event(ctx: &NodeCtx, pod: &Pod, kind: &str, reason: &str, message: &str) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let ev = Event {
        metadata: ObjectMeta { generate_name: Some(format!("{name}.")), namespace: Some(ns.clone()), ..Default::default() },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            api_version: Some("v1".into()),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.chars().take(1000).collect()),
        type_: Some(kind.into()),
        source: Some(EventSource { component: Some("firedrill-node-agent".into()), host: Some(ctx.node.clone()) }),
        reporting_component: Some("firedrill-node-agent".into()),
        reporting_instance: Some(ctx.node.clone()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        tracing::debug!(error = %e, reason, "event not recorded");
    }
}
