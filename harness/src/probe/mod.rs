//! Probes: one per operation family, each really performing the operation.

pub mod controlplane;
pub mod identity;
pub mod management;
pub mod oidc;
pub mod sampler;

use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::deploy::Deployed;
use crate::env::Env;
use crate::model::{Dur, Outcome};

/// How one attempt ended, and why when it did not succeed.
pub type Attempt = (Outcome, Option<String>);

pub fn ok() -> Attempt {
    (Outcome::Ok, None)
}
pub fn fail(why: impl Into<String>) -> Attempt {
    (Outcome::Failed, Some(why.into()))
}
pub fn partial(why: impl Into<String>) -> Attempt {
    (Outcome::Partial, Some(why.into()))
}

/// An operation performed for real, again and again.
pub trait Probe: Send + Sync {
    /// Run before sampling starts: whatever "before the fault" means for the operation (a
    /// login whose tokens are used during the fault). An error here is a harness failure,
    /// not a sample. Sampling goes on across a suite's scenarios, so this runs before the
    /// first scenario of a run of them; what it prepares must serve them all (dex's ID tokens
    /// last an hour; a suite's scenarios take minutes).
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    /// Run before each later scenario, while attempts of the scenario before are still
    /// being sampled: reset what belongs to one scenario (its own changes), without
    /// disturbing an attempt in flight. A new login here would: a token minted now may be
    /// signed by a key the API server has not fetched yet.
    fn next_scenario(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    /// Perform the operation once.
    fn attempt(&self) -> BoxFuture<'_, Attempt>;
    /// Asked once the fault is in effect: how long from now a loss of the operation could
    /// first show, where the system says so (dex's signing key says when it is due). The
    /// judged window starts then instead of after the suite's `settle`, its worst case,
    /// and the fault is held until the window holds the operation's minimum of attempts.
    /// `None`: the suite's `settle` applies.
    fn settle(&self) -> BoxFuture<'_, Option<std::time::Duration>> {
        Box::pin(async { None })
    }
}

/// Why the backend cannot observe the operation `spec` names, if it cannot. The API-server
/// probes need an API server firedrill configured to trust the issuer, and the cold-start
/// probe one it can start; without them, a failure would be the environment's, not the
/// fault's, so the operation is not observed at all (its row says so) rather than probed.
pub fn not_observable(spec: &ProbeSpec, env: &Env, deployed: &Deployed) -> Option<String> {
    let (cluster, starts_one) = match spec {
        ProbeSpec::CachedKeyAuth { cluster, .. } => (cluster, false),
        ProbeSpec::ApiserverColdStart { cluster, .. } => (cluster, true),
        _ => return None,
    };
    // Without the identity component, `build` says what is missing.
    let id = deployed.identity.as_ref()?;
    if !id.apiserver_trusts_issuer {
        return Some(format!(
            "the API server of cluster {cluster} keeps the authentication configuration its owner gave it, which does not trust this run's issuer"
        ));
    }
    if starts_one && !env.capabilities.extra_apiserver {
        return Some(format!("the backend cannot start an API server of cluster {cluster}"));
    }
    None
}

/// Build the probe of an operation from what was deployed.
pub fn build(spec: &ProbeSpec, env: &Arc<Env>, deployed: &Deployed) -> Result<Arc<dyn Probe>, String> {
    let oidc = || -> Result<Arc<oidc::OidcClient>, String> {
        let id = deployed.identity.as_ref().ok_or("this probe needs the identity component in the suite's components")?;
        Ok(Arc::new(oidc::OidcClient::new(id)?))
    };
    let cluster = |name: &str| env.cluster(name).map_err(|e| e.to_string());
    Ok(match spec {
        ProbeSpec::OidcLogin { user } => Arc::new(identity::Login { client: oidc()?, user: user.clone() }),
        ProbeSpec::TokenRefresh { user } => {
            Arc::new(identity::Refresh { client: oidc()?, user: user.clone(), token: Default::default(), interrupted: Default::default() })
        }
        ProbeSpec::CachedKeyAuth { user, cluster: c } => Arc::new(identity::CachedKeys::new(oidc()?, user, cluster(c)?)?),
        ProbeSpec::ApiserverColdStart { user, cluster: c, timeout } => Arc::new(identity::ColdStart {
            env: env.clone(),
            cached: identity::CachedKeys::new(oidc()?, user, cluster(c)?)?,
            cluster: c.clone(),
            timeout: timeout.0,
        }),
        ProbeSpec::KeyRotation { allowed_overdue } => {
            let id = deployed.identity.as_ref().ok_or("this probe needs the identity component in the suite's components")?;
            Arc::new(identity::KeyRotation {
                client: cluster(&id.cluster)?.probe_client.clone(),
                namespace: id.namespace.clone(),
                allowed_overdue: allowed_overdue.0,
                seen: Default::default(),
            })
        }
        ProbeSpec::BreakGlass { cluster: c } => Arc::new(identity::BreakGlass { client: cluster(c)?.probe_client.clone() }),
        ProbeSpec::IssuerEndpoints => {
            let client = oidc()?;
            Arc::new(identity::IssuerEndpoints { http: identity::issuer_http(&client)?, issuer: client.identity.issuer.clone() })
        }
        ProbeSpec::ApiRead { cluster: c } => Arc::new(controlplane::ApiRead { client: cluster(c)?.probe_client.clone() }),
        ProbeSpec::ApiWrite { cluster: c } => Arc::new(controlplane::ApiWrite { client: cluster(c)?.probe_client.clone(), next: Default::default() }),
        ProbeSpec::SchedulePod { cluster: c, timeout } => {
            Arc::new(controlplane::SchedulePod { client: cluster(c)?.probe_client.clone(), timeout: timeout.0, next: Default::default() })
        }
        ProbeSpec::ControllersActing { cluster: c, timeout } => {
            Arc::new(controlplane::ControllersAct { client: cluster(c)?.probe_client.clone(), timeout: timeout.0 })
        }
        ProbeSpec::InstancesAvailable { cluster: c, namespace, labels, min } => Arc::new(controlplane::InstancesAvailable {
            client: cluster(c)?.probe_client.clone(),
            namespace: namespace.clone(),
            selector: labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            min: *min,
        }),
        ProbeSpec::EtcdHealth { cluster: c } => {
            cluster(c)?;
            Arc::new(controlplane::EtcdHealth { env: env.clone(), cluster: c.clone(), http: short_http()? })
        }
        ProbeSpec::SelftestPanicDuringFault => Arc::new(SelftestPanic { journal: crate::journal::Journal::at(&env.run_dir) }),
        ProbeSpec::WorkloadHttp { clusters, namespace, service } => Arc::new(management::WorkloadHttp {
            env: env.clone(),
            clusters: clusters.clone(),
            namespace: namespace.clone(),
            service: service.clone(),
            http: short_http()?,
            endpoints: Default::default(),
        }),
        ProbeSpec::LocalClusterOps { clusters, timeout } => {
            Arc::new(management::LocalOps { env: env.clone(), clusters: clusters.clone(), timeout: timeout.0, counter: Default::default() })
        }
        ProbeSpec::MetricsDelivery { clusters, freshness } => {
            let m = deployed.metrics.as_ref().ok_or("this probe needs the metrics component in the suite's components")?;
            Arc::new(management::MetricsDelivery { http: short_http()?, receiver: m.receiver.clone(), clusters: clusters.clone(), freshness: freshness.0 })
        }
        ProbeSpec::ManagementWrite { cluster } => {
            let d = deployed.directory.as_ref().ok_or("this probe needs the directory component in the suite's components")?;
            // Key numbers only grow, across scenarios and runs of the same environment.
            let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.as_millis() as u64).unwrap_or_default();
            Arc::new(management::ManagementWrite {
                http: short_http()?,
                api: d.api.clone(),
                token: d.token.clone(),
                cluster: cluster.clone(),
                changes: d.changes.clone(),
                next: std::sync::atomic::AtomicU64::new(base),
            })
        }
    })
}

fn one() -> u32 {
    1
}

fn short_http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build().map_err(|e| e.to_string())
}

/// See [`ProbeSpec::SelftestPanicDuringFault`].
struct SelftestPanic {
    journal: crate::journal::Journal,
}

impl Probe for SelftestPanic {
    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            if self.journal.pending().is_ok_and(|p| !p.is_empty()) {
                panic!("selftest: this probe panics while a fault is in place");
            }
            ok()
        })
    }
}

/// How an operation is performed; the `kind` picks the probe.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ProbeSpec {
    /// The browser login: authorization request, dex's login form, credentials posted,
    /// redirects followed to the client callback, code exchanged for tokens.
    OidcLogin { user: String },
    /// A `refresh_token` grant with the refresh token of a login made before the fault.
    TokenRefresh { user: String },
    /// A SelfSubjectReview on the cluster's API server with an id_token obtained before
    /// the fault: the API server's cached signing keys at work.
    CachedKeyAuth { user: String, cluster: String },
    /// Start a fresh kube-apiserver on the cluster's etcd and check that it
    /// authenticates an id_token within `timeout`.
    ApiserverColdStart { user: String, cluster: String, timeout: Dur },
    /// dex's signing key, in its storage, is never overdue for rotation by more than
    /// `allowed-overdue` (dex checks every 30 s).
    #[serde(rename_all = "kebab-case")]
    KeyRotation { allowed_overdue: Dur },
    /// The client-certificate admin kubeconfig (break-glass) reads the API.
    BreakGlass { cluster: String },
    /// Discovery document and `/keys` fetched through the load balancer.
    IssuerEndpoints,
    /// HTTP requests to a Service of each cluster, at its ready endpoints.
    WorkloadHttp { clusters: Vec<String>, namespace: String, service: String },
    /// A namespace created in each cluster receives its full policy set within `timeout`.
    LocalClusterOps { clusters: Vec<String>, timeout: Dur },
    /// Each cluster's workload heartbeat is at most `freshness` old at the metrics receiver.
    MetricsDelivery { clusters: Vec<String>, freshness: Dur },
    /// A configuration change for `cluster` (a new key in a policy the central control
    /// plane must render) is accepted by the management API.
    ManagementWrite { cluster: String },
    /// A GET of namespace kube-system through the cluster's API address: a quorum read.
    ApiRead { cluster: String },
    /// A new ConfigMap created through the cluster's API address.
    ApiWrite { cluster: String },
    /// A new pod bound to a node by the scheduler within `timeout`.
    SchedulePod { cluster: String, timeout: Dur },
    /// A Deployment scaled between 1 and 2 replicas gets (or loses) its pods within
    /// `timeout`: the leader-held deployment and ReplicaSet controllers at work.
    ControllersActing { cluster: String, timeout: Dur },
    /// Every etcd member answers its health check (some: partial).
    EtcdHealth { cluster: String },
    /// At least `min` pods of `namespace` carrying every one of `labels` are Ready and not
    /// terminating: instances of a component available.
    InstancesAvailable {
        cluster: String,
        namespace: String,
        labels: std::collections::BTreeMap<String, String>,
        #[serde(default = "one")]
        min: u32,
    },
    /// For testing the harness itself, never a system: succeeds until a fault is in place
    /// (the run's journal has a pending entry), then panics — the revert-on-panic path.
    SelftestPanicDuringFault,
}

impl ProbeSpec {
    /// Users the probe logs in as (checked against the suite's components when it loads).
    pub fn users(&self) -> Vec<&str> {
        match self {
            ProbeSpec::OidcLogin { user }
            | ProbeSpec::TokenRefresh { user }
            | ProbeSpec::CachedKeyAuth { user, .. }
            | ProbeSpec::ApiserverColdStart { user, .. } => vec![user],
            ProbeSpec::KeyRotation { .. }
            | ProbeSpec::BreakGlass { .. }
            | ProbeSpec::IssuerEndpoints
            | ProbeSpec::WorkloadHttp { .. }
            | ProbeSpec::LocalClusterOps { .. }
            | ProbeSpec::MetricsDelivery { .. }
            | ProbeSpec::ManagementWrite { .. }
            | ProbeSpec::ApiRead { .. }
            | ProbeSpec::ApiWrite { .. }
            | ProbeSpec::SchedulePod { .. }
            | ProbeSpec::ControllersActing { .. }
            | ProbeSpec::EtcdHealth { .. }
            | ProbeSpec::InstancesAvailable { .. }
            | ProbeSpec::SelftestPanicDuringFault => vec![],
        }
    }

    /// Clusters the probe talks to (checked against the topology when a suite loads).
    pub fn clusters(&self) -> Vec<&str> {
        match self {
            ProbeSpec::CachedKeyAuth { cluster, .. } | ProbeSpec::ApiserverColdStart { cluster, .. } | ProbeSpec::BreakGlass { cluster } => vec![cluster],
            ProbeSpec::WorkloadHttp { clusters, .. } | ProbeSpec::LocalClusterOps { clusters, .. } | ProbeSpec::MetricsDelivery { clusters, .. } => {
                clusters.iter().map(String::as_str).collect()
            }
            ProbeSpec::ManagementWrite { cluster }
            | ProbeSpec::ApiRead { cluster }
            | ProbeSpec::ApiWrite { cluster }
            | ProbeSpec::SchedulePod { cluster, .. }
            | ProbeSpec::ControllersActing { cluster, .. }
            | ProbeSpec::EtcdHealth { cluster }
            | ProbeSpec::InstancesAvailable { cluster, .. } => vec![cluster],
            ProbeSpec::OidcLogin { .. }
            | ProbeSpec::TokenRefresh { .. }
            | ProbeSpec::KeyRotation { .. }
            | ProbeSpec::IssuerEndpoints
            | ProbeSpec::SelftestPanicDuringFault => vec![],
        }
    }
}

/// A failed HTTP request in a few words that say where it failed: the connection was
/// refused (nothing listens: the service is down), timed out (packets dropped: unreachable,
/// or too slow), the host unreachable (no machine answers for its address on the link: a
/// stopped container), closed by the peer before an answer (a load balancer with no
/// instance behind it), reset, or failed otherwise.
pub fn http_error(e: &reqwest::Error) -> &'static str {
    let chain = crate::error::chain(e).to_lowercase();
    if chain.contains("connection refused") {
        "connection refused"
    } else if e.is_timeout() || chain.contains("timed out") {
        "timed out"
    } else if chain.contains("connection reset") || chain.contains("reset by peer") {
        "connection reset"
    } else if chain.contains("eof") || chain.contains("connection closed") || chain.contains("closed before") {
        "connection closed"
    } else if chain.contains("no route to host") || chain.contains("host unreachable") {
        "host unreachable"
    } else if chain.contains("unreachable") {
        "network unreachable"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}
