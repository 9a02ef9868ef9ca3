//! Components under test, as data in `fixtures/components/<name>/component.yaml`: the
//! hosts they need outside the clusters and the users probes may log in as. Deploying
//! them is `deploy::<name>`.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::FixtureError;

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Component {
    /// Must equal the directory name.
    pub component: String,
    pub description: String,
    /// Hosts outside the clusters (a network namespace each on the run's bridge).
    #[serde(default)]
    pub hosts: Vec<HostSpec>,
    /// Users the component provisions, by the name probes use.
    #[serde(default)]
    pub users: Vec<String>,
    /// Which deployer sets it up (`deploy::<name>`); defaults to the component's name.
    #[serde(default)]
    pub deploy: Option<String>,
    /// Settings the deployer understands (it rejects any other).
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// Where the component's files are (set when loaded).
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostSpec {
    pub name: String,
    pub description: String,
    /// Where clusters are named by context (the existing backend), the host runs as a pod
    /// of the component's cluster instead; its deployer knows how. A host without it makes
    /// the component not runnable there.
    #[serde(default)]
    pub pod_on_existing: bool,
}

impl Component {
    /// The hosts that must be outside the clusters on `backend`.
    pub fn hosts_outside(&self, backend: crate::backend::BackendKind) -> impl Iterator<Item = &HostSpec> {
        self.hosts.iter().filter(move |h| !(backend == crate::backend::BackendKind::Existing && h.pod_on_existing))
    }

    pub fn deployer(&self) -> &str {
        self.deploy.as_deref().unwrap_or(&self.component)
    }

    pub fn load(fixtures: &Path, name: &str) -> Result<Component, FixtureError> {
        let dir = fixtures.join("components").join(name);
        let path = dir.join("component.yaml");
        let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Read { path: path.clone(), source })?;
        let mut c: Component = serde_saphyr::from_str(&text).map_err(|e| FixtureError::parse(&path, &e))?;
        if c.component != name {
            return Err(FixtureError::Invalid { path, message: format!("`component` is `{}`, expected the directory name `{name}`", c.component) });
        }
        for h in &c.hosts {
            if !crate::names::is_name(&h.name) {
                return Err(FixtureError::Invalid { path, message: format!("host name `{}` must be lowercase letters, digits and dashes", h.name) });
            }
        }
        c.dir = dir;
        Ok(c)
    }
}
