//! Faults: one file per kind. Every fault is journaled before it changes anything and
//! reverted on every path out of a scenario.
//!
//! # The contract every fault kind keeps
//!
//! - `plan` reads the state needed to undo the fault and returns it as an [`Undo`]; it
//!   changes nothing. The runner writes the `Undo` to the journal before `inject` runs.
//! - `inject` is idempotent: applying it twice leaves the same state as applying it once.
//! - [`Undo::revert`] is idempotent, and tolerates an `inject` that never ran or stopped
//!   halfway: it restores the planned state from whatever it finds.
//! - Every `.await` is a cancellation point. A cancelled `inject` leaves a state that
//!   `revert` repairs; a cancelled `revert` can simply be run again (`firedrill recover`).
//! - [`FaultSpec::verify`] proves, against the real system and with a deadline, that the
//!   fault is in effect before the fault window opens, and that it is undone after the
//!   revert: a scaled Deployment has no Ready pod, a revoked subject is denied by a
//!   SubjectAccessReview, a partition drops a connection attempt both ways, a stopped
//!   process is gone. A fault that cannot be proven is a harness error, never a table.

mod cluster;
pub mod controlplane;
pub mod drain;
pub mod etcddata;
mod host;
mod netpol;
mod node;
mod partition;
mod pod;
mod rbac;
mod scale;
mod storage;

use std::time::Duration;

use crate::wait::Deadline;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backend::{BackendError, Capabilities};
use crate::env::Env;

pub use rbac::Bindings;

/// The prior state a fault needs to be undone, as the journal records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Undo {
    /// Set the Deployment back to `replicas`.
    Scale {
        cluster: String,
        namespace: String,
        deployment: String,
        replicas: i32,
    },
    /// Re-create these bindings (those that are missing).
    RestoreBindings {
        cluster: String,
        bindings: Bindings,
    },
    StartHost {
        host: String,
    },
    /// Delete the fault's nftables table in each of these network namespaces (a partition,
    /// or a host made unreachable).
    Unpartition {
        table: String,
        netns: Vec<String>,
    },
    StartStorage {
        cluster: String,
    },
    RestoreNode {
        cluster: String,
        node: String,
    },
    StartCluster {
        cluster: String,
    },
    /// Delete the partition's NetworkPolicy `name` from each placement (the existing
    /// backend's partitions).
    DeleteNetworkPolicies {
        name: String,
        placements: Vec<netpol::Placement>,
    },
    /// Start (or resume) these control-plane processes.
    StartProcesses {
        cluster: String,
        names: Vec<String>,
    },
    /// Nothing to put back: the Deployment replaces the killed pod itself. Reverting waits
    /// for it to be at full strength again.
    AwaitReplicas {
        cluster: String,
        namespace: String,
        deployment: String,
        replicas: i32,
        /// The pod that was killed.
        pod: String,
        uid: String,
        /// Its node and containers as the API listed them at planning
        /// ([`pod::Container`]): the proof that the kill is in effect is their processes
        /// stopped, not only the API object gone. Absent in older journals.
        #[serde(default)]
        node: String,
        #[serde(default)]
        containers: Vec<pod::Container>,
    },
    /// Restore every etcd member of the cluster from the DR exercise's backup in `dir`, or
    /// put back the data the fault moved aside (see [`etcddata`]).
    RestoreEtcdData {
        cluster: String,
        dir: std::path::PathBuf,
        backup: etcddata::Backup,
    },
    /// Uncordon these nodes (the drained ones that were schedulable before); the drain's
    /// evictions and refusals are in `record`.
    Uncordon {
        cluster: String,
        nodes: Vec<String>,
        record: std::path::PathBuf,
    },
}

/// How a stop is delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// SIGTERM and a grace period: a graceful shutdown.
    #[default]
    Term,
    /// SIGKILL: no graceful shutdown, as a crash or a power cut.
    Kill,
    /// SIGSTOP: the process is frozen, its sockets stay open and it answers nothing, as a
    /// hung process or a stalled disk (`stop-control-plane` only; SIGCONT undoes it).
    Stop,
}

fn one() -> u32 {
    1
}

fn twenty() -> u32 {
    20
}

impl Signal {
    fn is_default(&self) -> bool {
        *self == Signal::Term
    }
}

/// What [`FaultSpec::verify`] proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    InEffect,
    Reverted,
}

/// A fault that could not be planned, injected or reverted.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("{what}")]
    Backend {
        what: String,
        #[source]
        source: BackendError,
    },
    #[error("{what}: {message}")]
    Kube { what: String, message: String },
    #[error("fault `{kind}` needs {needs}, which the {backend} backend does not have")]
    NotRunnable { kind: &'static str, needs: &'static str, backend: String },
    #[error("{0}")]
    Invalid(String),
    /// What [`FaultSpec::verify`] last saw when its deadline passed.
    #[error("{what}, {state} after {after:?}")]
    Unproven { what: String, state: String, after: Duration },
}

pub(crate) fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> FaultError {
    let what = what.into();
    move |e| FaultError::Kube { what, message: crate::error::kube_message(&e) }
}

pub(crate) fn backend_err(what: impl Into<String>) -> impl FnOnce(BackendError) -> FaultError {
    let what = what.into();
    move |source| FaultError::Backend { what, source }
}

/// What to break; the `kind` picks the fault.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultSpec {
    /// Scale a Deployment to `replicas` (the documents' "scale to 0").
    Scale { cluster: String, namespace: String, deployment: String, replicas: u32 },
    /// Remove every RoleBinding and ClusterRoleBinding that names a service account.
    #[serde(rename_all = "kebab-case")]
    RevokeRbac { cluster: String, namespace: String, service_account: String },
    /// Stop every process of a host outside the clusters (a load balancer, a directory
    /// server): the host is down, connections are refused.
    StopHost {
        host: String,
        #[serde(default, skip_serializing_if = "Signal::is_default")]
        signal: Signal,
    },
    /// Make a host unreachable: every packet to or from it is dropped (nftables in its
    /// namespace), so connections time out instead of being refused. Its processes run on.
    UnreachableHost { host: String },
    /// Drop all traffic between two sides, both directions (nftables). A side is a
    /// cluster (all its nodes), a node (`cluster/node`) or a host.
    Partition { between: Vec<String> },
    /// Stop the etcd member(s) of a cluster.
    StopStorage {
        cluster: String,
        #[serde(default, skip_serializing_if = "Signal::is_default")]
        signal: Signal,
    },
    /// Stop instances of a control-plane component: the first `count` in node order, or
    /// the leader (`pick: leader`).
    StopControlPlane {
        cluster: String,
        component: controlplane::Component,
        #[serde(default)]
        pick: controlplane::Pick,
        #[serde(default = "one")]
        count: u32,
        #[serde(default, skip_serializing_if = "Signal::is_default")]
        signal: Signal,
    },
    /// A node is lost: its agent stops heartbeating and its pods' processes die.
    LoseNode { cluster: String, node: String },
    /// Every process of a cluster stops: control plane, node agents and pods.
    StopCluster { cluster: String },
    /// One Ready pod of a Deployment is deleted at once (no grace period): an instance
    /// fails, and the Deployment replaces it.
    KillPod { cluster: String, namespace: String, deployment: String },
    /// Every etcd member of a cluster loses its data, after a snapshot was taken with
    /// etcdctl and `writes` objects were written after it; reverting restores every member
    /// from the `backup` with etcdutl (the DR exercise). A corrupt backup must be refused.
    LoseEtcdData {
        cluster: String,
        #[serde(default)]
        backup: etcddata::Backup,
        #[serde(default = "twenty")]
        writes: u32,
    },
    /// Drain nodes, as `kubectl drain` does: cordon them, then evict their pods through the
    /// eviction API, which refuses an eviction that would break a PodDisruptionBudget
    /// (refusals are retried for 10 s, then left). Reverting uncordons them.
    DrainNode { cluster: String, nodes: Vec<String> },
}

impl FaultSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::Scale { .. } => "scale",
            FaultSpec::RevokeRbac { .. } => "revoke-rbac",
            FaultSpec::StopHost { .. } => "stop-host",
            FaultSpec::UnreachableHost { .. } => "unreachable-host",
            FaultSpec::Partition { .. } => "partition",
            FaultSpec::StopStorage { .. } => "stop-storage",
            FaultSpec::StopControlPlane { .. } => "stop-control-plane",
            FaultSpec::LoseNode { .. } => "lose-node",
            FaultSpec::StopCluster { .. } => "stop-cluster",
            FaultSpec::KillPod { .. } => "kill-pod",
            FaultSpec::LoseEtcdData { .. } => "lose-etcd-data",
            FaultSpec::DrainNode { .. } => "drain-node",
        }
    }

    /// The capability the fault needs, by name, if the backend lacks it.
    pub fn missing_capability(&self, caps: &Capabilities) -> Option<&'static str> {
        let (has, name) = match self {
            FaultSpec::Scale { .. } | FaultSpec::RevokeRbac { .. } | FaultSpec::KillPod { .. } | FaultSpec::DrainNode { .. } => {
                (caps.api_faults, "API-level faults")
            }
            FaultSpec::StopHost { .. } => (caps.stop_host, "stopping hosts"),
            FaultSpec::UnreachableHost { .. } | FaultSpec::Partition { .. } => (caps.partition, "network partitions"),
            FaultSpec::StopStorage { .. } => (caps.stop_storage, "stopping etcd"),
            FaultSpec::StopControlPlane { .. } => (caps.control_plane_processes, "control-plane instances as processes of their own"),
            FaultSpec::LoseEtcdData { .. } => (caps.control_plane_processes, "etcd members as processes with data directories of their own"),
            FaultSpec::LoseNode { .. } => (caps.lose_node, "losing nodes"),
            FaultSpec::StopCluster { .. } => (caps.stop_cluster, "stopping whole clusters"),
        };
        (!has).then_some(name)
    }

    /// Read what undoing the fault needs. Changes nothing.
    pub async fn plan(&self, env: &Env, tag: &str) -> Result<Undo, FaultError> {
        if let Some(needs) = self.missing_capability(&env.capabilities) {
            return Err(FaultError::NotRunnable { kind: self.kind(), needs, backend: env.backend.name().into() });
        }
        match self {
            FaultSpec::Scale { cluster, namespace, deployment, .. } => scale::plan(env, cluster, namespace, deployment).await,
            FaultSpec::RevokeRbac { cluster, namespace, service_account } => rbac::plan(env, cluster, namespace, service_account).await,
            FaultSpec::StopHost { host, .. } => Ok(Undo::StartHost { host: host.clone() }),
            FaultSpec::UnreachableHost { host } => partition::plan(env, std::slice::from_ref(host), tag),
            FaultSpec::Partition { between } if env.existing().is_some() => netpol::plan(env, between, tag).await,
            FaultSpec::Partition { between } => partition::plan(env, between, tag),
            FaultSpec::StopStorage { cluster, .. } => Ok(Undo::StartStorage { cluster: cluster.clone() }),
            FaultSpec::StopControlPlane { cluster, component, pick, count, .. } => controlplane::plan(env, cluster, *component, *pick, *count).await,
            FaultSpec::LoseNode { cluster, node } => Ok(Undo::RestoreNode { cluster: cluster.clone(), node: node.clone() }),
            FaultSpec::StopCluster { cluster } => Ok(Undo::StartCluster { cluster: cluster.clone() }),
            FaultSpec::KillPod { cluster, namespace, deployment } => pod::plan(env, cluster, namespace, deployment).await,
            FaultSpec::LoseEtcdData { cluster, backup, .. } => etcddata::plan(env, cluster, *backup, tag),
            FaultSpec::DrainNode { cluster, nodes } => drain::plan(env, cluster, nodes, tag).await,
        }
    }

    /// Put the fault in place (idempotent). `undo` is what `plan` returned.
    pub async fn inject(&self, env: &Env, undo: &Undo) -> Result<(), FaultError> {
        match (self, undo) {
            (FaultSpec::Scale { cluster, namespace, deployment, replicas }, _) => scale::set(env, cluster, namespace, deployment, *replicas as i32).await,
            (FaultSpec::RevokeRbac { cluster, .. }, Undo::RestoreBindings { bindings, .. }) => rbac::revoke(env, cluster, bindings).await,
            (FaultSpec::StopHost { host, signal }, _) => host::stop(env, host, *signal).await,
            (FaultSpec::UnreachableHost { host }, Undo::Unpartition { table, .. }) => partition::isolate(env, host, table).await,
            (FaultSpec::Partition { between }, Undo::Unpartition { table, .. }) => partition::inject(env, between, table).await,
            (FaultSpec::Partition { between }, Undo::DeleteNetworkPolicies { name, placements }) => netpol::inject(env, between, name, placements).await,
            (FaultSpec::StopStorage { cluster, signal }, _) => storage::stop(env, cluster, *signal).await,
            (FaultSpec::StopControlPlane { signal, .. }, Undo::StartProcesses { names, .. }) => controlplane::stop(env, names, *signal).await,
            (FaultSpec::LoseNode { cluster, node }, _) => node::lose(env, cluster, node).await,
            (FaultSpec::StopCluster { cluster }, _) => cluster::stop(env, cluster).await,
            (FaultSpec::KillPod { .. }, Undo::AwaitReplicas { cluster, namespace, pod, uid, .. }) => pod::kill(env, cluster, namespace, pod, uid).await,
            (FaultSpec::LoseEtcdData { cluster, writes, .. }, Undo::RestoreEtcdData { dir, backup, .. }) => {
                etcddata::inject(env, cluster, *writes, dir, *backup).await
            }
            (FaultSpec::DrainNode { cluster, nodes }, Undo::Uncordon { record, .. }) => drain::inject(env, cluster, nodes, record).await,
            (f, u) => Err(FaultError::Invalid(format!("fault {} cannot use undo record {u:?}", f.kind()))),
        }
    }

    /// Prove that the fault is in effect, or that it is undone, polling until `deadline`.
    pub async fn verify(&self, env: &Env, undo: &Undo, expect: Expect, deadline: Deadline) -> Result<(), FaultError> {
        let what = match expect {
            Expect::InEffect => format!("{} not in effect", self.describe()),
            Expect::Reverted => format!("{} not undone", self.describe()),
        };
        let started = std::time::Instant::now();
        loop {
            let state = match self.check(env, undo, expect).await {
                Ok(()) => return Ok(()),
                Err(state) => state,
            };
            if deadline.passed() {
                return Err(FaultError::Unproven { what, state, after: started.elapsed() });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One look at the system: `Ok` when it is as `expect` says, else what was seen.
    async fn check(&self, env: &Env, undo: &Undo, expect: Expect) -> Result<(), String> {
        match (self, undo) {
            (FaultSpec::Scale { cluster, namespace, deployment, replicas }, Undo::Scale { replicas: before, .. }) => match expect {
                Expect::InEffect => scale::at_most_ready(env, cluster, namespace, deployment, *replicas as i32).await,
                Expect::Reverted => scale::at_least_ready(env, cluster, namespace, deployment, *before).await,
            },
            (FaultSpec::RevokeRbac { .. }, Undo::RestoreBindings { cluster, bindings }) => rbac::check(env, cluster, bindings, expect).await,
            (FaultSpec::StopHost { host, .. }, _) => host::check(env, host, expect).await,
            (FaultSpec::UnreachableHost { host }, Undo::Unpartition { table, .. }) => partition::check(env, std::slice::from_ref(host), table, expect).await,
            (FaultSpec::Partition { between }, Undo::Unpartition { table, .. }) => partition::check(env, between, table, expect).await,
            (FaultSpec::Partition { between }, Undo::DeleteNetworkPolicies { .. }) => netpol::check(env, between, expect).await,
            (FaultSpec::StopStorage { cluster, .. }, _) => storage::check(env, cluster, expect).await,
            (FaultSpec::StopControlPlane { signal, .. }, Undo::StartProcesses { cluster, names }) => {
                controlplane::check(env, cluster, names, *signal, expect).await
            }
            (FaultSpec::LoseNode { cluster, node }, _) => node::check(env, cluster, node, expect).await,
            (FaultSpec::StopCluster { cluster }, _) => cluster::check(env, cluster, expect).await,
            (FaultSpec::KillPod { .. }, Undo::AwaitReplicas { cluster, namespace, deployment, replicas, pod, uid, node, containers }) => match expect {
                Expect::InEffect => pod::gone(env, cluster, namespace, pod, uid, node, containers).await,
                Expect::Reverted => scale::at_least_ready(env, cluster, namespace, deployment, *replicas).await,
            },
            (FaultSpec::LoseEtcdData { cluster, .. }, _) => etcddata::check(env, cluster, expect).await,
            (FaultSpec::DrainNode { cluster, nodes }, Undo::Uncordon { nodes: planned, record, .. }) => {
                drain::check(env, cluster, nodes, planned, record, expect).await
            }
            (f, u) => Err(format!("fault {} cannot use undo record {u:?}", f.kind())),
        }
    }

    /// One line for errors: what the fault does.
    pub fn describe(&self) -> String {
        match self {
            FaultSpec::Scale { cluster, namespace, deployment, replicas } => format!("deployment {cluster}/{namespace}/{deployment} scaled to {replicas}"),
            FaultSpec::RevokeRbac { cluster, namespace, service_account } => {
                format!("roles of service account {namespace}/{service_account} in cluster {cluster} revoked")
            }
            FaultSpec::StopHost { host, signal: Signal::Term } => format!("host {host} stopped"),
            FaultSpec::StopHost { host, signal: Signal::Kill } => format!("host {host} killed"),
            FaultSpec::UnreachableHost { host } => format!("host {host} unreachable"),
            FaultSpec::Partition { between } => format!("partition between {}", between.join(" and ")),
            FaultSpec::StopStorage { cluster, signal: Signal::Term } => format!("etcd of cluster {cluster} stopped"),
            FaultSpec::StopStorage { cluster, signal: Signal::Kill } => format!("etcd of cluster {cluster} killed"),
            FaultSpec::StopHost { host, signal: Signal::Stop } => format!("host {host} paused (not supported)"),
            FaultSpec::StopStorage { cluster, signal: Signal::Stop } => format!("etcd of cluster {cluster} paused (not supported)"),
            FaultSpec::StopControlPlane { cluster, component, pick, count, signal } => {
                let which = match pick {
                    controlplane::Pick::Leader => format!("the leading {}", component.name()),
                    controlplane::Pick::First => format!("{count} {}", component.name()),
                };
                let how = match signal {
                    Signal::Term => "stopped",
                    Signal::Kill => "killed",
                    Signal::Stop => "paused",
                };
                format!("{which} of cluster {cluster} {how}")
            }
            FaultSpec::LoseNode { cluster, node } => format!("node {cluster}/{node} lost"),
            FaultSpec::StopCluster { cluster } => format!("cluster {cluster} stopped"),
            FaultSpec::KillPod { cluster, namespace, deployment } => format!("a pod of deployment {cluster}/{namespace}/{deployment} killed"),
            FaultSpec::LoseEtcdData { cluster, backup, writes } => {
                format!("every etcd member of cluster {cluster} lost its data ({writes} writes after the snapshot; restored from {})", backup.words())
            }
            FaultSpec::DrainNode { cluster, nodes } => format!("node(s) {} of cluster {cluster} drained", nodes.join(", ")),
        }
    }

    /// Clusters the fault touches (checked against the topology when a suite loads).
    pub fn clusters(&self) -> Vec<&str> {
        match self {
            FaultSpec::Scale { cluster, .. }
            | FaultSpec::RevokeRbac { cluster, .. }
            | FaultSpec::StopStorage { cluster, .. }
            | FaultSpec::StopControlPlane { cluster, .. }
            | FaultSpec::LoseNode { cluster, .. }
            | FaultSpec::StopCluster { cluster }
            | FaultSpec::KillPod { cluster, .. }
            | FaultSpec::LoseEtcdData { cluster, .. }
            | FaultSpec::DrainNode { cluster, .. } => vec![cluster],
            FaultSpec::Partition { .. } | FaultSpec::StopHost { .. } | FaultSpec::UnreachableHost { .. } => vec![],
        }
    }

    /// Hosts the fault names (checked against the suite's components when it loads).
    pub fn hosts(&self) -> Vec<&str> {
        match self {
            FaultSpec::StopHost { host, .. } | FaultSpec::UnreachableHost { host } => vec![host],
            _ => vec![],
        }
    }
}

impl Undo {
    /// Undo the fault (idempotent; see the module's contract).
    pub async fn revert(&self, env: &Env) -> Result<(), FaultError> {
        match self {
            Undo::Scale { cluster, namespace, deployment, replicas } => scale::set(env, cluster, namespace, deployment, *replicas).await,
            Undo::RestoreBindings { cluster, bindings } => rbac::restore(env, cluster, bindings).await,
            Undo::StartHost { host } => host::start(env, host).await,
            Undo::Unpartition { table, netns } => partition::revert(table, netns).await,
            Undo::DeleteNetworkPolicies { name, placements } => netpol::revert(env, name, placements).await,
            Undo::StartStorage { cluster } => storage::start(env, cluster).await,
            Undo::RestoreNode { cluster, node } => node::restore(env, cluster, node).await,
            Undo::StartProcesses { names, .. } => controlplane::start(env, names).await,
            Undo::StartCluster { cluster } => cluster::start(env, cluster).await,
            Undo::AwaitReplicas { .. } => Ok(()),
            Undo::RestoreEtcdData { cluster, dir, .. } => etcddata::revert(env, cluster, dir).await,
            Undo::Uncordon { cluster, nodes, record } => drain::revert(env, cluster, nodes, record).await,
        }
    }

    /// One line for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Undo::Scale { cluster, namespace, deployment, replicas } => format!("scale {cluster}/{namespace}/deployment/{deployment} back to {replicas}"),
            Undo::RestoreBindings { cluster, bindings } => format!("re-create {} binding(s) in cluster {cluster}", bindings.len()),
            Undo::StartHost { host } => format!("start host {host}"),
            Undo::Unpartition { table, netns } => format!("delete nftables table {table} in {} namespace(s)", netns.len()),
            Undo::DeleteNetworkPolicies { name, placements } => format!("delete NetworkPolicy {name} in {} namespace(s)", placements.len()),
            Undo::StartStorage { cluster } => format!("start etcd of cluster {cluster}"),
            Undo::RestoreNode { cluster, node } => format!("restore node {cluster}/{node}"),
            Undo::StartProcesses { cluster, names } => format!("start or resume {} in cluster {cluster}", names.join(", ")),
            Undo::StartCluster { cluster } => format!("start cluster {cluster}"),
            Undo::AwaitReplicas { cluster, namespace, deployment, replicas, .. } => {
                format!("nothing to undo: deployment {cluster}/{namespace}/{deployment} replaces its pod (back to {replicas})")
            }
            Undo::RestoreEtcdData { cluster, backup, .. } => format!("restore every etcd member of cluster {cluster} from {}", backup.words()),
            Undo::Uncordon { cluster, nodes, .. } => format!("uncordon node(s) {} of cluster {cluster}", nodes.join(", ")),
        }
    }
}
