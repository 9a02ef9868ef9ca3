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

mod cluster;
mod host;
mod node;
mod partition;
mod rbac;
mod scale;
mod storage;

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
    /// Delete the partition's nftables table in each of these network namespaces.
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
}

pub(crate) fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> FaultError {
    let what = what.into();
    move |e| FaultError::Kube { what, message: crate::probe::kube_message(&e) }
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
    /// Stop every process of a host outside the clusters (a load balancer, a directory server).
    StopHost { host: String },
    /// Drop all traffic between the hosts of two clusters, both directions (nftables).
    Partition { between: Vec<String> },
    /// Stop the etcd member(s) of a cluster.
    StopStorage { cluster: String },
    /// A node is lost: its agent stops heartbeating and its pods' processes die.
    LoseNode { cluster: String, node: String },
    /// Every process of a cluster stops: control plane, node agents and pods.
    StopCluster { cluster: String },
}

impl FaultSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::Scale { .. } => "scale",
            FaultSpec::RevokeRbac { .. } => "revoke-rbac",
            FaultSpec::StopHost { .. } => "stop-host",
            FaultSpec::Partition { .. } => "partition",
            FaultSpec::StopStorage { .. } => "stop-storage",
            FaultSpec::LoseNode { .. } => "lose-node",
            FaultSpec::StopCluster { .. } => "stop-cluster",
        }
    }

    /// The capability the fault needs, by name, if the backend lacks it.
    pub fn missing_capability(&self, caps: &Capabilities) -> Option<&'static str> {
        let (has, name) = match self {
            FaultSpec::Scale { .. } | FaultSpec::RevokeRbac { .. } => (caps.api_faults, "API-level faults"),
            FaultSpec::StopHost { .. } => (caps.stop_host, "stopping hosts"),
            FaultSpec::Partition { .. } => (caps.partition, "network partitions"),
            FaultSpec::StopStorage { .. } => (caps.stop_storage, "stopping etcd"),
            FaultSpec::LoseNode { .. } => (caps.lose_node, "losing nodes"),
            FaultSpec::StopCluster { .. } => (caps.stop_cluster, "stopping whole clusters"),
        };
        (!has).then_some(name)
    }

    /// Read what undoing the fault needs. Changes nothing.
    pub async fn plan(&self, env: &Env, tag: &str) -> Result<Undo, FaultError> {
        if let Some(needs) = self.missing_capability(&env.capabilities) {
            return Err(FaultError::NotRunnable { kind: self.kind(), needs, backend: format!("{:?}", env.backend).to_lowercase() });
        }
        match self {
            FaultSpec::Scale { cluster, namespace, deployment, .. } => scale::plan(env, cluster, namespace, deployment).await,
            FaultSpec::RevokeRbac { cluster, namespace, service_account } => rbac::plan(env, cluster, namespace, service_account).await,
            FaultSpec::StopHost { host } => Ok(Undo::StartHost { host: host.clone() }),
            FaultSpec::Partition { between } => partition::plan(env, between, tag),
            FaultSpec::StopStorage { cluster } => Ok(Undo::StartStorage { cluster: cluster.clone() }),
            FaultSpec::LoseNode { cluster, node } => Ok(Undo::RestoreNode { cluster: cluster.clone(), node: node.clone() }),
            FaultSpec::StopCluster { cluster } => Ok(Undo::StartCluster { cluster: cluster.clone() }),
        }
    }

    /// Put the fault in place (idempotent). `undo` is what `plan` returned.
    pub async fn inject(&self, env: &Env, undo: &Undo) -> Result<(), FaultError> {
        match (self, undo) {
            (FaultSpec::Scale { cluster, namespace, deployment, replicas }, _) => scale::set(env, cluster, namespace, deployment, *replicas as i32).await,
            (FaultSpec::RevokeRbac { cluster, .. }, Undo::RestoreBindings { bindings, .. }) => rbac::revoke(env, cluster, bindings).await,
            (FaultSpec::StopHost { host }, _) => host::stop(env, host).await,
            (FaultSpec::Partition { between }, Undo::Unpartition { table, .. }) => partition::inject(env, between, table).await,
            (FaultSpec::StopStorage { cluster }, _) => storage::stop(env, cluster).await,
            (FaultSpec::LoseNode { cluster, node }, _) => node::lose(env, cluster, node).await,
            (FaultSpec::StopCluster { cluster }, _) => cluster::stop(env, cluster).await,
            (f, u) => Err(FaultError::Invalid(format!("fault {} cannot use undo record {u:?}", f.kind()))),
        }
    }

    /// Clusters the fault touches (checked against the topology when a suite loads).
    pub fn clusters(&self) -> Vec<&str> {
        match self {
            FaultSpec::Scale { cluster, .. }
            | FaultSpec::RevokeRbac { cluster, .. }
            | FaultSpec::StopStorage { cluster }
            | FaultSpec::LoseNode { cluster, .. }
            | FaultSpec::StopCluster { cluster } => vec![cluster],
            FaultSpec::Partition { between } => between.iter().map(String::as_str).collect(),
            FaultSpec::StopHost { .. } => vec![],
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
            Undo::StartStorage { cluster } => storage::start(env, cluster).await,
            Undo::RestoreNode { cluster, node } => node::restore(env, cluster, node).await,
            Undo::StartCluster { cluster } => cluster::start(env, cluster).await,
        }
    }

    /// One line for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Undo::Scale { cluster, namespace, deployment, replicas } => format!("scale {cluster}/{namespace}/deployment/{deployment} back to {replicas}"),
            Undo::RestoreBindings { cluster, bindings } => format!("re-create {} binding(s) in cluster {cluster}", bindings.len()),
            Undo::StartHost { host } => format!("start host {host}"),
            Undo::Unpartition { table, netns } => format!("delete nftables table {table} in {} namespace(s)", netns.len()),
            Undo::StartStorage { cluster } => format!("start etcd of cluster {cluster}"),
            Undo::RestoreNode { cluster, node } => format!("restore node {cluster}/{node}"),
            Undo::StartCluster { cluster } => format!("start cluster {cluster}"),
        }
    }
}
