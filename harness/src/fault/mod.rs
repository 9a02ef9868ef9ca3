//! Faults: one file per kind. Every fault is journaled before it changes anything and
//! reverted on every path out of a scenario.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
