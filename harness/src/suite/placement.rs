//! A document's scheduling table as data: per component its type, default replicas,
//! node role, anti-affinity and disruption control (seed 002's columns), and how the
//! running instances of each row are found. The `placement-conforms` claim compares the
//! live cluster with every row.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// The table and where it comes from.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlacementSpec {
    /// The table's source (a description, not a copy).
    pub source: String,
    /// The clusters whose nodes and pods are checked, each against the rows that apply
    /// to it.
    #[schemars(with = "Vec<String>")]
    pub clusters: Spanned<Vec<String>>,
    pub rows: Vec<PlacementRow>,
}

/// One row, in the document's form.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlacementRow {
    #[schemars(with = "String")]
    pub component: Spanned<String>,
    /// `DaemonSet`, `Deployment`, `ReplicaSet`, `Pod` (`Pod*`: managed by an operator) or
    /// `Any`.
    #[serde(rename = "type")]
    pub kind: WorkloadType,
    /// A number, `n` (one per qualified node) or `?`; a trailing `*` says an operator
    /// manages it.
    #[schemars(with = "String")]
    pub replicas: Spanned<String>,
    pub node_role: NodeRoleCell,
    pub anti_affinity: Cell,
    pub disruption_control: Cell,
    /// `document` for the document's rows, `firedrill` for the rows this project adds for
    /// its own components (in the document's form).
    pub from: RowSource,
    /// How the row's running instances are found.
    pub instances: Instances,
    /// The table's clusters this row's component runs in (default: every one).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub clusters: Option<Spanned<Vec<String>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum WorkloadType {
    DaemonSet,
    Deployment,
    ReplicaSet,
    Pod,
    #[serde(rename = "Pod*")]
    OperatorPod,
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeRoleCell {
    /// Control-plane nodes only.
    Master,
    /// Every node, control-plane nodes included.
    All,
    /// Wherever the scheduler puts it.
    Any,
    /// Never on a control-plane node.
    Worker,
    #[serde(rename = "?")]
    Unknown,
}

/// `yes`, `no`, `N/A` or `?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Cell {
    #[serde(rename = "yes")]
    Yes,
    #[serde(rename = "no")]
    No,
    #[serde(rename = "N/A")]
    NotApplicable,
    #[serde(rename = "?")]
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RowSource {
    Document,
    Firedrill,
}

/// Where a row's instances are.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Instances {
    /// The pods of `namespace` carrying every one of `labels`.
    Pods { namespace: String, labels: BTreeMap<String, String> },
    /// Every pod no other row's `pods` selects (the document's "all other workloads").
    AllOtherPods,
    /// The component does not run as pods here; why. Its row is shown, not checked.
    NotPods { reason: String },
}

impl WorkloadType {
    pub fn words(self) -> &'static str {
        match self {
            WorkloadType::DaemonSet => "DaemonSet",
            WorkloadType::Deployment => "Deployment",
            WorkloadType::ReplicaSet => "ReplicaSet",
            WorkloadType::Pod => "Pod",
            WorkloadType::OperatorPod => "Pod*",
            WorkloadType::Any => "Any",
        }
    }
}

impl NodeRoleCell {
    pub fn words(self) -> &'static str {
        match self {
            NodeRoleCell::Master => "master",
            NodeRoleCell::All => "all",
            NodeRoleCell::Any => "any",
            NodeRoleCell::Worker => "worker",
            NodeRoleCell::Unknown => "?",
        }
    }
}

impl Cell {
    pub fn words(self) -> &'static str {
        match self {
            Cell::Yes => "yes",
            Cell::No => "no",
            Cell::NotApplicable => "N/A",
            Cell::Unknown => "?",
        }
    }
}

/// A `replicas` cell read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replicas {
    Count(u32),
    /// One per qualified node.
    PerNode,
    Unknown,
}

/// Read a `replicas` cell (`2`, `1*`, `n`, `?`).
pub fn replicas(cell: &str) -> Option<Replicas> {
    match cell.trim_end_matches('*') {
        "n" => Some(Replicas::PerNode),
        "?" => Some(Replicas::Unknown),
        c => c.parse().ok().map(Replicas::Count),
    }
}

impl PlacementSpec {
    /// The rows that apply to `cluster`.
    pub fn rows_in<'a>(&'a self, cluster: &'a str) -> impl Iterator<Item = &'a PlacementRow> + 'a {
        self.rows.iter().filter(move |r| r.applies_to(cluster))
    }
}

impl PlacementRow {
    pub fn applies_to(&self, cluster: &str) -> bool {
        self.clusters.as_ref().is_none_or(|c| c.value.iter().any(|c| c == cluster))
    }

    /// The row as the document prints it; a row this project adds says so.
    pub fn line(&self) -> String {
        let ours = if self.from == RowSource::Firedrill { " (firedrill's row)" } else { "" };
        format!(
            "{}{ours} | {} | {} | {} | {} | {}",
            self.component.value,
            self.kind.words(),
            self.replicas.value,
            self.node_role.words(),
            self.anti_affinity.words(),
            self.disruption_control.words()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_cells_read_as_the_document_writes_them() {
        assert_eq!(replicas("2"), Some(Replicas::Count(2)));
        assert_eq!(replicas("1*"), Some(Replicas::Count(1)));
        assert_eq!(replicas("n"), Some(Replicas::PerNode));
        assert_eq!(replicas("?"), Some(Replicas::Unknown));
        assert_eq!(replicas("two"), None);
        assert_eq!(replicas(""), None);
    }
}
