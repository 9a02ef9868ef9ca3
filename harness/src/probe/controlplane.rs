//! Probes of a cluster's control plane: API reads and writes, a new pod scheduled, the
//! leader-held controllers acting on a scaled Deployment, and etcd's own health.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::{Attempt, Probe, fail, ok, partial};
use crate::env::Env;
use crate::wait::Deadline;

/// Where the probes keep their objects.
pub const NAMESPACE: &str = "firedrill-probes";
/// A pod image no node can run: the probes' pods are about scheduling and controllers,
/// never about running a program (the local agent and the kubelet report it as an image
/// they cannot get, and start nothing).
const NEVER_RUN: &str = "firedrill.local/never-run:none";
/// How long one API call may take before the attempt counts it as failed.
const CALL: Duration = Duration::from_secs(2);

async fn call<T>(what: &str, f: impl std::future::Future<Output = Result<T, kube::Error>>) -> Result<T, String> {
    match tokio::time::timeout(CALL, f).await {
        Err(_) => Err(format!("{what}: timed out")),
        Ok(Err(e)) => Err(format!("{what}: {}", crate::error::kube_message(&e))),
        Ok(Ok(v)) => Ok(v),
    }
}

/// The probes' namespace, created when missing.
async fn ensure_namespace(client: &kube::Client) -> Result<(), String> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(NAMESPACE).await.map_err(|e| format!("reading namespace {NAMESPACE}: {}", crate::error::kube_message(&e)))?.is_some() {
        return Ok(());
    }
    let ns = Namespace { metadata: ObjectMeta { name: Some(NAMESPACE.into()), ..Default::default() }, ..Default::default() };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(format!("creating namespace {NAMESPACE}: {}", crate::error::kube_message(&e))),
    }
}

fn labels(probe: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("firedrill.dev/probe".to_string(), probe.to_string())])
}

/// A quorum read through the cluster's API address (the load balancer when there is
/// one): GET of namespace kube-system with no resourceVersion, which the API server must
/// read from etcd with a linearizable read.
pub struct ApiRead {
    pub client: kube::Client,
}

impl Probe for ApiRead {
    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            match call("GET namespace kube-system", Api::<Namespace>::all(self.client.clone()).get("kube-system")).await {
                Ok(_) => ok(),
                Err(why) => fail(why),
            }
        })
    }
}

/// A write through the cluster's API address: a new ConfigMap created (then deleted).
pub struct ApiWrite {
    pub client: kube::Client,
    pub next: AtomicU64,
}

impl Probe for ApiWrite {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(ensure_namespace(&self.client))
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NAMESPACE);
            let name = format!("api-write-{n}");
            let cm = ConfigMap {
                metadata: ObjectMeta { name: Some(name.clone()), labels: Some(labels("api-write")), ..Default::default() },
                data: Some(BTreeMap::from([("n".to_string(), n.to_string())])),
                ..Default::default()
            };
            if let Err(why) = call("creating a configmap", api.create(&PostParams::default(), &cm)).await {
                return fail(why);
            }
            // Not part of the operation: a failed clean-up is left to the namespace.
            let _ = tokio::time::timeout(CALL, api.delete(&name, &DeleteParams::default())).await;
            ok()
        })
    }
}

/// A new pod (no node named) is bound to a node by the scheduler within `timeout`; it is
/// deleted then. Its image is one no node runs: the operation is the scheduling.
pub struct SchedulePod {
    pub client: kube::Client,
    pub timeout: Duration,
    pub next: AtomicU64,
}

impl Probe for SchedulePod {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(ensure_namespace(&self.client))
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let api: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
            let name = format!("schedule-{n}");
            let pod = Pod {
                metadata: ObjectMeta { name: Some(name.clone()), labels: Some(labels("schedule-pod")), ..Default::default() },
                spec: Some(PodSpec {
                    containers: vec![Container { name: "never-run".into(), image: Some(NEVER_RUN.into()), ..Default::default() }],
                    termination_grace_period_seconds: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            };
            if let Err(why) = call("creating a pod", api.create(&PostParams::default(), &pod)).await {
                return fail(why);
            }
            let deadline = Deadline::after(self.timeout);
            let result = loop {
                match tokio::time::timeout(CALL, api.get(&name)).await {
                    Ok(Ok(p)) if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() => break ok(),
                    _ if deadline.passed() => break fail(format!("pod created, not scheduled within {}", crate::model::Dur(self.timeout))),
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            let _ = tokio::time::timeout(CALL, api.delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })).await;
            result
        })
    }
}

/// The leader-held controllers at work: each attempt scales a Deployment to 1 replica
/// and waits for one pod, then to 2 and waits for a new pod, all within `timeout`: the
/// deployment and ReplicaSet controllers must create a pod every time (a scale-down the
/// controllers never performed cannot pass for one they did). The pods can land on no
/// node (a selector no node matches): scheduling is not part of this operation.
pub struct ControllersAct {
    pub client: kube::Client,
    pub timeout: Duration,
}

const SCALED: &str = "controllers-probe";

impl ControllersAct {
    /// The UIDs of the Deployment's pods that are not being deleted.
    async fn pods(&self) -> Result<Vec<String>, String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let list = call("listing pods", api.list(&ListParams::default().labels("firedrill.dev/probe=controllers"))).await?;
        Ok(list.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).filter_map(|p| p.metadata.uid).collect())
    }

    /// Scale to `want` and wait until the pods are `want` and, when `new_since` is given,
    /// one of them is not in it.
    async fn scale(&self, want: i32, new_since: Option<&[String]>, deadline: Deadline) -> Result<Vec<String>, String> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), NAMESPACE);
        let patch = serde_json::json!({ "spec": { "replicas": want } });
        call("scaling the deployment", api.patch(SCALED, &PatchParams::default(), &Patch::Merge(&patch))).await?;
        loop {
            let last = match self.pods().await {
                Ok(pods) if pods.len() == want as usize && new_since.is_none_or(|before| pods.iter().any(|p| !before.contains(p))) => return Ok(pods),
                Ok(pods) if pods.len() == want as usize => "no new pod".to_string(),
                Ok(pods) => format!("{} pod(s)", pods.len()),
                Err(why) => why,
            };
            if deadline.passed() {
                return Err(format!("scaled to {want}, {last} after {}", crate::model::Dur(self.timeout)));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Probe for ControllersAct {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            ensure_namespace(&self.client).await?;
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), NAMESPACE);
            let d = Deployment {
                metadata: ObjectMeta { name: Some(SCALED.into()), ..Default::default() },
                spec: Some(DeploymentSpec {
                    replicas: Some(1),
                    selector: LabelSelector { match_labels: Some(labels("controllers")), ..Default::default() },
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta { labels: Some(labels("controllers")), ..Default::default() }),
                        spec: Some(PodSpec {
                            containers: vec![Container { name: "never-run".into(), image: Some(NEVER_RUN.into()), ..Default::default() }],
                            node_selector: Some(BTreeMap::from([("firedrill.dev/no-such-node".to_string(), "true".to_string())])),
                            termination_grace_period_seconds: Some(0),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &d).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(format!("creating deployment {NAMESPACE}/{SCALED}: {}", crate::error::kube_message(&e))),
            }
        })
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let deadline = Deadline::after(self.timeout);
            let one = match self.scale(1, None, deadline).await {
                Ok(pods) => pods,
                Err(why) => return fail(why),
            };
            match self.scale(2, Some(&one), deadline).await {
                Ok(_) => ok(),
                Err(why) => fail(why),
            }
        })
    }
}

/// One etcd member's `/health` says `true` (it has a leader and can serve), or why not:
/// the request's failure in a few words, or the member's own reason.
pub async fn etcd_member_healthy(http: &reqwest::Client, ip: std::net::Ipv4Addr) -> Result<(), String> {
    let r = http.get(format!("http://{ip}:2379/health")).send().await.map_err(|e| super::http_error(&e).to_string())?;
    match r.json::<serde_json::Value>().await {
        Ok(v) if v["health"] == "true" => Ok(()),
        Ok(v) => Err(format!("unhealthy ({})", v["reason"].as_str().unwrap_or("no reason given"))),
        Err(e) => Err(format!("unreadable answer: {e}")),
    }
}

/// Every etcd member of the cluster answers its `/health` with `true` (a member has a
/// leader and can serve): all do → Ok; some do → Partial; none → Failed.
pub struct EtcdHealth {
    pub env: Arc<Env>,
    pub cluster: String,
    pub http: reqwest::Client,
}

impl Probe for EtcdHealth {
    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let c = match self.env.cluster(&self.cluster).map(|c| c.local.clone()) {
                Ok(Some(c)) => c,
                Ok(None) => return fail(format!("cluster {}: etcd members are not reachable on this backend", self.cluster)),
                Err(e) => return fail(e.to_string()),
            };
            let mut bad = Vec::new();
            for name in &c.etcd_nodes {
                let Ok(node) = c.node(name) else { continue };
                if let Err(why) = etcd_member_healthy(&self.http, node.ip).await {
                    bad.push(format!("etcd member {name}: {why}"));
                }
            }
            let why = bad.join("; ");
            match bad.len() {
                0 => ok(),
                n if n == c.etcd_nodes.len() => fail(why),
                _ => partial(why),
            }
        })
    }
}

/// Instances of a component available: at least `min` of its pods Ready and not
/// terminating (a pod being evicted no longer counts).
pub struct InstancesAvailable {
    pub client: kube::Client,
    pub namespace: String,
    /// `k=v,k=v`.
    pub selector: String,
    pub min: u32,
}

impl Probe for InstancesAvailable {
    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let what = format!("listing pods {} in {}", self.selector, self.namespace);
            let pods = match call(&what, Api::<Pod>::namespaced(self.client.clone(), &self.namespace).list(&ListParams::default().labels(&self.selector))).await
            {
                Ok(l) => l.items,
                Err(why) => return fail(why),
            };
            let ready = pods.iter().filter(|p| crate::objects::available(p)).count();
            if ready as u32 >= self.min { ok() } else { fail(format!("{ready} of {} pod(s) Ready, fewer than {}", pods.len(), self.min)) }
        })
    }
}
