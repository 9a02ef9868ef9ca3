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

/// A kubeconfig with one context per `(context, kubeconfig)`: each file's first cluster,
/// user and context, renamed to `context` — as a user's kubeconfig names clusters it
/// reaches. Written to `out`.
pub fn kubeconfig_with_contexts(pairs: &[(&str, &Path)], out: &Path) {
    use kube::config::Kubeconfig;
    let mut merged = Kubeconfig::default();
    for (name, file) in pairs {
        let kc = Kubeconfig::read_from(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut cluster = kc.clusters.into_iter().next().expect("a cluster");
        let mut user = kc.auth_infos.into_iter().next().expect("a user");
        let mut context = kc.contexts.into_iter().next().expect("a context");
        cluster.name = name.to_string();
        user.name = name.to_string();
        context.name = name.to_string();
        let ctx = context.context.as_mut().expect("a context body");
        ctx.cluster = name.to_string();
        ctx.user = Some(name.to_string());
        merged.clusters.push(cluster);
        merged.auth_infos.push(user);
        merged.contexts.push(context);
    }
    std::fs::write(out, serde_json::to_string_pretty(&merged).unwrap()).unwrap();
}

/// Results of a `run --report DIR`: `suite::scenario` → (verdict, its message).
pub fn verdicts(report: &Path) -> std::collections::BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(report.join("results.json")).unwrap_or_else(|e| panic!("{}/results.json: {e}", report.display()));
    let results: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    results
        .iter()
        .map(|r| {
            let v = &r["verdict"];
            let message = ["reason", "error", "diff"].iter().find_map(|k| v[k].as_str()).unwrap_or_default().to_string();
            (format!("{}::{}", r["suite"].as_str().unwrap(), r["scenario"].as_str().unwrap()), (v["verdict"].as_str().unwrap().to_string(), message))
        })
        .collect()
}
