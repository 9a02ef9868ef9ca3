//! Probes of the management document's operations: running workloads, local cluster ops,
//! metrics collection and management ops, each across the replica clusters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{LimitRange, Namespace};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};

use super::{Attempt, Probe, fail, ok, partial};
use crate::deploy::directory::{CHANGES, Changes, change_key};
use crate::env::Env;
use crate::wait::Deadline;

/// Combine per-cluster results: all ok → Ok, none → Failed, else Partial; the reasons of
/// the clusters that were not ok are kept.
fn combine(results: Vec<(String, Result<(), (bool, String)>)>) -> Attempt {
    let total = results.len();
    let good = results.iter().filter(|(_, r)| r.is_ok()).count();
    let partly = results.iter().filter(|(_, r)| matches!(r, Err((true, _)))).count();
    let why: Vec<String> = results.iter().filter_map(|(c, r)| r.as_ref().err().map(|(_, w)| format!("{c}: {w}"))).collect();
    if good == total {
        ok()
    } else if good == 0 && partly == 0 {
        fail(why.join("; "))
    } else {
        partial(why.join("; "))
    }
}

const STEP: Duration = Duration::from_secs(2);

/// HTTP requests to the workload Service of each cluster, at the ready endpoints the
/// real EndpointSlice controller lists (the last list is kept while an API is down, as
/// a node's proxy keeps its rules).
pub struct WorkloadHttp {
    pub env: Arc<Env>,
    pub clusters: Vec<String>,
    pub namespace: String,
    pub service: String,
    pub http: reqwest::Client,
    pub endpoints: Mutex<BTreeMap<String, (Vec<SocketAddr>, Instant)>>,
}

impl WorkloadHttp {
    async fn resolve(&self, cluster: &str) -> Result<Vec<SocketAddr>, String> {
        let c = self.env.cluster(cluster).map_err(|e| e.to_string())?;
        let api: Api<EndpointSlice> = Api::namespaced(c.probe_client.clone(), &self.namespace);
        let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={}", self.service));
        let list = tokio::time::timeout(STEP, api.list(&lp))
            .await
            .map_err(|_| "listing endpoints: timed out".to_string())?
            .map_err(|e| format!("listing endpoints: {}", crate::error::kube_message(&e)))?;
        let mut out = Vec::new();
        for slice in list.items {
            let port = slice.ports.iter().flatten().find_map(|p| p.port).unwrap_or(80) as u16;
            for e in slice.endpoints.into_iter().flatten() {
                if e.conditions.as_ref().and_then(|c| c.ready) != Some(true) {
                    continue;
                }
                out.extend(e.addresses.iter().filter_map(|a| a.parse().ok()).map(|ip| SocketAddr::new(ip, port)));
            }
        }
        Ok(out)
    }

    async fn endpoints(&self, cluster: &str) -> Vec<SocketAddr> {
        let cached = self.endpoints.lock().expect("endpoints").get(cluster).cloned();
        if let Some((eps, at)) = &cached
            && at.elapsed() < Duration::from_secs(5)
        {
            return eps.clone();
        }
        match self.resolve(cluster).await {
            Ok(eps) if !eps.is_empty() => {
                self.endpoints.lock().expect("endpoints").insert(cluster.to_string(), (eps.clone(), Instant::now()));
                eps
            }
            _ => cached.map(|(e, _)| e).unwrap_or_default(),
        }
    }

    async fn one(&self, cluster: &str) -> Result<(), (bool, String)> {
        let eps = self.endpoints(cluster).await;
        if eps.is_empty() {
            return Err((false, "no ready endpoint".into()));
        }
        let mut last = String::new();
        for ep in eps {
            match self.http.get(format!("http://{ep}/")).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("GET {ep}: HTTP {}", r.status().as_u16()),
                Err(e) => last = format!("GET {ep}: {}", super::http_error(&e)),
            }
        }
        Err((false, last))
    }
}

impl Probe for WorkloadHttp {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            for c in &self.clusters {
                let eps = self.resolve(c).await?;
                if eps.is_empty() {
                    return Err(format!("service {}/{} of cluster {c} has no ready endpoint", self.namespace, self.service));
                }
                self.endpoints.lock().expect("endpoints").insert(c.clone(), (eps, Instant::now()));
            }
            Ok(())
        })
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let results = futures::future::join_all(self.clusters.iter().map(|c| async move { (c.clone(), self.one(c).await) })).await;
            combine(results)
        })
    }
}

/// Local cluster ops: create a namespace labelled for the drill policies in each cluster
/// (a kubectl-equivalent write), then wait for its full policy set: the namespace-targeted
/// LimitRange and RoleBinding, and the global ClusterRole. Partly configured is ⚠️.
pub struct LocalOps {
    pub env: Arc<Env>,
    pub clusters: Vec<String>,
    pub timeout: Duration,
    pub counter: AtomicU64,
}

/// The policy set a drill namespace must end up with (fixtures/components/directory/policy.yaml).
const LIMITS: &str = "directory-limits";
const BINDING: &str = "directory-drill-reader-drillers";
const ROLE: &str = "drill-reader";

impl LocalOps {
    async fn one(&self, cluster: &str, n: u64) -> Result<(), (bool, String)> {
        let c = self.env.cluster(cluster).map_err(|e| (false, e.to_string()))?;
        let ns = format!("drill-{n}");
        let namespaces: Api<Namespace> = Api::all(c.probe_client.clone());
        let obj = Namespace {
            metadata: ObjectMeta { name: Some(ns.clone()), labels: Some([("team".to_string(), "drill".to_string())].into()), ..Default::default() },
            ..Default::default()
        };
        match tokio::time::timeout(STEP, namespaces.create(&PostParams::default(), &obj)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err((false, format!("creating namespace: {}", crate::error::kube_message(&e)))),
            Err(_) => return Err((false, "creating namespace: timed out".into())),
        }
        let limits: Api<LimitRange> = Api::namespaced(c.probe_client.clone(), &ns);
        let bindings: Api<RoleBinding> = Api::namespaced(c.probe_client.clone(), &ns);
        let roles: Api<ClusterRole> = Api::all(c.probe_client.clone());
        let deadline = Deadline::after(self.timeout);
        let mut missing = vec![LIMITS, BINDING, ROLE];
        while !deadline.passed() {
            missing.clear();
            if !matches!(limits.get_opt(LIMITS).await, Ok(Some(_))) {
                missing.push(LIMITS);
            }
            if !matches!(bindings.get_opt(BINDING).await, Ok(Some(_))) {
                missing.push(BINDING);
            }
            if !matches!(roles.get_opt(ROLE).await, Ok(Some(_))) {
                missing.push(ROLE);
            }
            if missing.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _ = tokio::time::timeout(STEP, namespaces.delete(&ns, &DeleteParams::default())).await;
        if missing.is_empty() { Ok(()) } else { Err((true, format!("namespace created, not configured within {:?}: no {}", self.timeout, missing.join(", ")))) }
    }
}

impl Probe for LocalOps {
    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let results = futures::future::join_all(self.clusters.iter().map(|c| async move { (c.clone(), self.one(c, n).await) })).await;
            combine(results)
        })
    }
}

/// Metrics collection: each cluster's workload heartbeat is fresh at the central receiver.
pub struct MetricsDelivery {
    pub http: reqwest::Client,
    pub receiver: String,
    pub clusters: Vec<String>,
    pub freshness: Duration,
}

impl Probe for MetricsDelivery {
    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let url = format!("{}/api/v1/query", self.receiver);
            let query = "max%20by%20(cluster)%20(workload_heartbeat_timestamp_seconds)";
            let resp = match self.http.get(format!("{url}?query={query}")).send().await {
                Ok(r) if r.status().is_success() => r,
                Ok(r) => return fail(format!("querying the receiver: HTTP {}", r.status().as_u16())),
                Err(e) => return fail(format!("querying the receiver: {}", super::http_error(&e))),
            };
            let v: serde_json::Value = match resp.json().await {
                Ok(v) => v,
                Err(e) => return fail(format!("querying the receiver: {e}")),
            };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
            let latest: BTreeMap<String, f64> = v
                .pointer("/data/result")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
                .filter_map(|s| Some((s.pointer("/metric/cluster")?.as_str()?.to_string(), s.pointer("/value/1")?.as_str()?.parse().ok()?)))
                .collect();
            let results = self
                .clusters
                .iter()
                .map(|c| {
                    let r = match latest.get(c) {
                        Some(t) if now - t <= self.freshness.as_secs_f64() => Ok(()),
                        Some(t) => Err((false, format!("newest sample {:.0} s old", now - t))),
                        None => Err((false, "no sample".to_string())),
                    };
                    (c.clone(), r)
                })
                .collect();
            combine(results)
        })
    }
}

/// Management ops: a configuration change through the management API is accepted. Each
/// attempt adds one new key to the `drill-changes` policy for `cluster` (a PUT of the
/// whole policy, as GitOps would apply it). Only the central control plane renders the
/// policy into that cluster's configuration, and only the cluster's own directory-sync
/// applies it there: whether each accepted change was queued during a fault and applied
/// after it is the `queued-and-applied` post-check.
pub struct ManagementWrite {
    pub http: reqwest::Client,
    pub api: String,
    pub token: String,
    pub cluster: String,
    pub changes: Arc<Mutex<Changes>>,
    pub next: AtomicU64,
}

impl ManagementWrite {
    /// A scenario starts with no change of its own.
    fn forget_changes(&self) {
        let mut c = self.changes.lock().expect("changes");
        c.cluster = self.cluster.clone();
        c.accepted.clear();
    }
}

impl Probe for ManagementWrite {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.forget_changes();
            Ok(())
        })
    }

    fn next_scenario(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.forget_changes();
            Ok(())
        })
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let mut keys: Vec<String> = vec!["base".into()];
            keys.extend(self.changes.lock().expect("changes").accepted.iter().map(|(k, _)| change_key(*k)));
            keys.push(change_key(n));
            let body = serde_json::json!({
                "clusterSelector": { "region": self.cluster },
                "clusterRoles": [{ "name": CHANGES, "rules": [{ "apiGroups": ["firedrill.dev"], "resources": keys, "verbs": ["get"] }] }],
            });
            match self.http.put(format!("{}/policies/{CHANGES}", self.api)).bearer_auth(&self.token).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    self.changes.lock().expect("changes").accepted.push((n, Instant::now()));
                    ok()
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let msg: String = r.text().await.unwrap_or_default().chars().take(160).collect();
                    fail(format!("PUT /policies/{CHANGES}: HTTP {status} {msg}").trim_end().to_string())
                }
                Err(e) => fail(format!("management API: {}", super::http_error(&e))),
            }
        })
    }
}
