//! Deploying the components under test into a provisioned environment.

pub mod directory;
pub mod identity;

use std::collections::BTreeMap;

use crate::component::Component;
use crate::env::Env;

/// Handles to what was deployed, for probes.
#[derive(Clone, Default)]
pub struct Deployed {
    pub identity: Option<identity::Identity>,
    pub workload: Option<directory::Workload>,
    pub directory: Option<directory::Directory>,
    pub metrics: Option<directory::Metrics>,
}

#[derive(Debug, thiserror::Error)]
#[error("deploying component {component}: {message}")]
pub struct DeployError {
    pub component: String,
    pub message: String,
}

/// Deploy `components` in order.
pub async fn deploy(env: &Env, components: &[Component]) -> Result<Deployed, DeployError> {
    let mut out = Deployed::default();
    for c in components {
        let err = |message: String| DeployError { component: c.component.clone(), message };
        match c.deployer() {
            "identity" => out.identity = Some(identity::deploy(env, c).await.map_err(err)?),
            "workload" => out.workload = Some(directory::deploy_workload(env, c).await.map_err(err)?),
            "directory" => out.directory = Some(directory::deploy_directory(env, c).await.map_err(err)?),
            "metrics" => out.metrics = Some(directory::deploy_metrics(env, c).await.map_err(err)?),
            // Hosts only: the backend creates them; whoever uses them starts their processes.
            "hosts" if c.options.is_empty() => {}
            other => return Err(err(format!("no deployer `{other}` (known: identity, workload, directory, metrics, hosts)"))),
        }
    }
    Ok(out)
}

/// Random hex of `bytes` bytes from the kernel's generator (passwords, secrets).
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("reading /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A component's secret in the run (`components/<component>/secrets/<name>`, 0600):
/// generated once, the same on every later deploy to the run (`run --on`), so that a
/// redeploy never leaves running instances with credentials the harness no longer knows
/// (a directory already seeded, pods that did not restart).
pub(crate) fn run_secret(env: &crate::env::Env, component: &str, name: &str, bytes: usize) -> Result<String, String> {
    let path = env.run_dir.join("components").join(component).join("secrets").join(name);
    if let Ok(s) = std::fs::read_to_string(&path)
        && !s.trim().is_empty()
    {
        return Ok(s.trim().to_string());
    }
    let s = random_hex(bytes);
    crate::backend::local::pki::write_private(&path, &s).map_err(|e| e.to_string())?;
    Ok(s)
}

pub(crate) fn vars(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}
