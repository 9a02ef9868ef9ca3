//! The kind backend: real kind clusters (one Docker container per node), for machines
//! with a Docker engine — laptops and GitHub Actions. Driven through scripts in `ci/`.

use super::{BackendError, Capabilities};

pub const CAPABILITIES: Capabilities =
    Capabilities { api_faults: true, stop_host: true, partition: true, stop_storage: true, lose_node: true, stop_cluster: true, extra_apiserver: false };

/// The kind backend needs `docker` talking to a running engine.
pub fn preflight() -> Result<(), BackendError> {
    let out = std::process::Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(BackendError::Unsupported(format!(
            "the kind backend needs a running Docker engine; `docker info` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Err(BackendError::Unsupported(format!("the kind backend needs Docker; `docker` could not be run: {e}"))),
    }
}
