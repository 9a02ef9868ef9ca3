//! The custom resources. `Cluster` keeps the field names of the registry it comes from
//! (`KubernetesAPIEndpoints.ServerEndpoints[].ServerAddress`).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cluster of the directory. Cluster-scoped, as `kubectl get clusters` lists them.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "multicluster.coreos.com", version = "v1", kind = "Cluster", status = "ClusterStatus")]
pub struct ClusterSpec {
    #[serde(rename = "KubernetesAPIEndpoints", default)]
    pub kubernetes_api_endpoints: KubernetesApiEndpoints,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubernetesApiEndpoints {
    #[serde(rename = "ServerEndpoints", default)]
    pub server_endpoints: Vec<ServerEndpoint>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerEndpoint {
    #[serde(rename = "ServerAddress")]
    pub server_address: String,
}

/// What a replica reports about itself: its namespaces (the hub renders namespace-targeted
/// policies for them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default)]
    pub namespaces: Vec<NamespaceReport>,
    #[serde(default)]
    pub reported_at: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct NamespaceReport {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A policy for the clusters whose labels match `clusterSelector`.
///
/// `namespaces` and `clusterRoles` are cluster-wide ("global") policies; `roleBindings`
/// and `limits` target every namespace matching `namespaceSelector`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "multicluster.coreos.com", version = "v1", kind = "ClusterPolicy")]
#[serde(rename_all = "camelCase")]
pub struct ClusterPolicySpec {
    #[serde(default)]
    pub cluster_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub cluster_roles: Vec<PolicyRole>,
    #[serde(default)]
    pub namespace_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub role_bindings: Vec<PolicyBinding>,
    #[serde(default)]
    pub limits: Option<Limits>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRole {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

/// Bind a ClusterRole to a group inside each targeted namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyBinding {
    pub cluster_role: String,
    pub group: String,
}

/// Default container limits (a LimitRange) in each targeted namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub default_cpu: String,
    pub default_memory: String,
}

/// What the hub rendered for one cluster: everything directory-sync applies there.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "multicluster.coreos.com", version = "v1", kind = "ClusterConfig", namespaced)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfigSpec {
    pub cluster: String,
    /// Policies that selected the cluster, by name.
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub cluster_roles: Vec<PolicyRole>,
    #[serde(default)]
    pub namespaced: Vec<NamespacedConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedConfig {
    pub namespace: String,
    #[serde(default)]
    pub role_bindings: Vec<PolicyBinding>,
    #[serde(default)]
    pub limits: Option<Limits>,
}

/// directory-sync's own object in its replica cluster; its status says how syncing goes.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "multicluster.coreos.com", version = "v1", kind = "DirectorySync", namespaced, status = "DirectorySyncStatus")]
#[serde(rename_all = "camelCase")]
pub struct DirectorySyncSpec {
    /// The replica's name in the directory.
    pub cluster_name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySyncStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub last_sync: Option<String>,
    #[serde(default)]
    pub clusters: usize,
    #[serde(default)]
    pub policies: usize,
    /// Objects skipped as invalid, with why.
    #[serde(default)]
    pub skipped: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

/// Every CRD of the directory, for installing.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![Cluster::crd(), ClusterPolicy::crd(), ClusterConfig::crd(), DirectorySync::crd()]
}
