//! Topologies: which clusters a drill needs, as data in `fixtures/topologies/`.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::FixtureError;

/// A set of clusters brought up together.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Topology {
    /// Must equal the file name without `.yaml`.
    pub topology: String,
    pub clusters: Vec<ClusterSpec>,
}

/// One Kubernetes cluster.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterSpec {
    pub name: String,
    /// etcd members, spread over the control-plane nodes (1 or 3).
    #[serde(default = "one")]
    pub etcd: u32,
    /// kube-apiservers on the first control-plane nodes; more than one sits behind a
    /// load balancer host, and controller-manager and scheduler then run with leader
    /// election on as many nodes.
    #[serde(default = "one")]
    pub apiservers: u32,
    pub nodes: Vec<NodeSpec>,
}

fn one() -> u32 {
    1
}

/// A node: a network namespace with an address on the run's bridge.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeSpec {
    pub name: String,
    #[serde(default)]
    pub role: NodeRole,
    /// Extra node labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs the control plane; tainted `node-role.kubernetes.io/control-plane:NoSchedule`.
    ControlPlane,
    #[default]
    Worker,
}

impl Topology {
    pub fn cluster(&self, name: &str) -> Option<&ClusterSpec> {
        self.clusters.iter().find(|c| c.name == name)
    }

    pub fn cluster_names(&self) -> Vec<&str> {
        self.clusters.iter().map(|c| c.name.as_str()).collect()
    }

    /// Load `fixtures/topologies/<name>.yaml` and check it is one the backends can build.
    pub fn load(fixtures: &Path, name: &str) -> Result<Topology, FixtureError> {
        let path = fixtures.join("topologies").join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Read { path: path.clone(), source })?;
        let topo: Topology = serde_saphyr::from_str(&text).map_err(|e| FixtureError::parse(&path, &e))?;
        topo.check().map_err(|message| FixtureError::Invalid { path, message })?;
        Ok(topo)
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.clusters {
            if !crate::names::is_name(&c.name) {
                return Err(format!("cluster name `{}` must be lowercase letters, digits and dashes", c.name));
            }
            if !seen.insert(&c.name) {
                return Err(format!("cluster `{}` is defined twice", c.name));
            }
            let control: Vec<_> = c.nodes.iter().filter(|n| n.role == NodeRole::ControlPlane).collect();
            if control.is_empty() {
                return Err(format!("cluster `{}` has no control-plane node", c.name));
            }
            if !(c.etcd == 1 || c.etcd == 3) || c.etcd as usize > control.len() {
                return Err(format!(
                    "cluster `{}`: etcd must be 1 or 3 members and at most one per control-plane node ({} control-plane nodes)",
                    c.name,
                    control.len()
                ));
            }
            if c.apiservers == 0 || c.apiservers as usize > control.len() {
                return Err(format!("cluster `{}`: apiservers must be between 1 and the number of control-plane nodes", c.name));
            }
            let mut nodes = std::collections::BTreeSet::new();
            for n in &c.nodes {
                if !crate::names::is_name(&n.name) {
                    return Err(format!("node name `{}` must be lowercase letters, digits and dashes", n.name));
                }
                if !nodes.insert(&n.name) {
                    return Err(format!("cluster `{}`: node `{}` is defined twice", c.name, n.name));
                }
            }
        }
        Ok(())
    }
}
