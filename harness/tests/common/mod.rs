//! Shared by the integration tests that bring up local runs.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use firedrill::backend::BackendKind;
use firedrill::component::Component;
use firedrill::env::Env;
use firedrill::fixtures::Paths;

pub fn paths() -> Paths {
    Paths::at(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
}

pub fn firedrill() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_firedrill"))
}

/// The local environment the repository's suite `suite` plans (its topology and its
/// components' hosts). `checks` runs on it in a task of its own; the environment is torn
/// down whatever happened, then a panic in `checks` is the test's.
pub async fn on_suite_env<F, Fut>(suite: &str, checks: F)
where
    F: FnOnce(Arc<Env>, Vec<Component>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let _ = rustls::crypto::ring::default_provider().install_default();
    let p = paths();
    let suites = firedrill::suite::load_dir(&p.suites, &p.fixtures).unwrap();
    let s = suites.iter().find(|s| s.id() == suite).unwrap_or_else(|| panic!("suites/{suite}.yaml"));
    let (topo, comps) = firedrill::runner::plan(&p, s).unwrap();
    let hosts = comps.iter().flat_map(|c| c.hosts.iter().map(|h| h.name.clone())).collect();
    let env =
        Arc::new(Env::provision(&p, BackendKind::Local, &topo, hosts, &firedrill()).await.unwrap_or_else(|e| panic!("provisioning {}: {e}", topo.topology)));
    let result = tokio::spawn(checks(env.clone(), comps)).await;
    env.teardown().await.unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Tears a local run down when dropped, through `firedrill down RUN_DIR`: a test that
/// panics half-way still leaves nothing behind (a second `down` of a run already torn
/// down does nothing, so the happy path may tear down itself first).
pub struct DownOnDrop(pub PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if !self.0.exists() {
            return;
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill")).arg("down").arg(&self.0).output();
        if let Ok(o) = out
            && !o.status.success()
        {
            eprintln!("tearing down {} after a failed test: {}", self.0.display(), String::from_utf8_lossy(&o.stderr));
        }
    }
}
