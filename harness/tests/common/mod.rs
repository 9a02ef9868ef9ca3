//! Shared by the integration tests that bring up local runs.
#![allow(dead_code)]

pub mod kind;

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

/// `firedrill ARGS…` from the repository's root with the state directory `state`, plain
/// output (`CI`), to its end.
pub fn firedrill_at(state: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(firedrill()).args(args).current_dir(paths().root).env("FIREDRILL_STATE", state).env("CI", "true").output().unwrap()
}

/// The kind run `ci/test.sh` brought up for the kind tests to share (`FIREDRILL_KIND_RUN`:
/// topology single, hosts ldap, lb and spare), with the state directory that knows it
/// (`FIREDRILL_KIND_STATE`); `None` when a test runs alone and brings up its own.
pub fn shared_kind_run() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("FIREDRILL_KIND_RUN").filter(|d| !d.is_empty())?;
    let state = std::env::var_os("FIREDRILL_KIND_STATE").filter(|d| !d.is_empty()).expect("FIREDRILL_KIND_RUN comes with FIREDRILL_KIND_STATE");
    Some((PathBuf::from(dir), PathBuf::from(state)))
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

/// `firedrill ARGS` from the repository's root with the state directory `state`, off the
/// async runtime; snapshots are never left for review.
pub async fn firedrill_in(state: &Path, args: Vec<String>) -> std::process::Output {
    let state = state.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(firedrill()).args(&args).current_dir(paths().root).env("FIREDRILL_STATE", &state).env("INSTA_UPDATE", "no").output().unwrap()
    })
    .await
    .unwrap()
}

/// The identity suite's `instances-down` (suites/identity.yaml, snapshots/), run on the
/// existing backend against `context` of `kubeconfig` as cluster main, with the state
/// directory `state`. Checks what such a run must show wherever it runs: the table
/// matches the document; the API server's two rows are not observed, each saying why in
/// results.json and in the report; nothing the run deployed is left, dex's own resource
/// definitions included. Returns the run's output.
pub async fn identity_on_existing(state: &Path, kubeconfig: &Path, context: &str, client: kube::Client) -> String {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let dex_crds = || async {
        let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
        let all = crds.list(&Default::default()).await.unwrap().items;
        // Those being deleted are gone once their objects are.
        all.into_iter()
            .filter(|c| c.spec.group == "dex.coreos.com" && c.metadata.deletion_timestamp.is_none())
            .filter_map(|c| c.metadata.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(dex_crds().await, Vec::<String>::new(), "no resource definition of dex before the run");
    let report = state.join("identity-existing-report");
    let args: Vec<String> = ["run", "--backend", "existing", "--kubeconfig", &kubeconfig.display().to_string(), "--context", &format!("main={context}")]
        .into_iter()
        .chain(["--report", &report.display().to_string(), "identity::instances-down"])
        .map(String::from)
        .collect();
    let o = firedrill_in(state, args).await;
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{out}");
    let v = verdicts(&report);
    assert_eq!(v["identity::instances-down"].0, "match", "{v:?}\n{out}");
    assert!(out.contains("=> identity::instances-down: matches the document in the 7 rows observed (2 of 9 not observable on this backend)"), "{out}");
    let results: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(report.join("results.json")).unwrap()).unwrap();
    let ops = results[0]["operations"].as_array().unwrap();
    let not_observed: Vec<&str> = ops.iter().filter(|o| o["not_observed"].is_string()).map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(not_observed, ["cached-keys", "apiserver-start"], "{out}");
    for o in ops.iter().filter(|o| o["not_observed"].is_string()) {
        assert!(o["samples"].is_null() && o["classification"].is_null(), "nothing is sampled of an operation not observed: {o}");
        let why = o["not_observed"].as_str().unwrap();
        assert!(why.starts_with("not observed on the existing backend: the API server of cluster main keeps the authentication configuration"), "{why}");
    }
    assert!(ops.iter().filter(|o| o["not_observed"].is_null()).all(|o| o["samples"].as_array().is_some_and(|s| !s.is_empty())), "every other row is sampled");
    assert!(
        out.contains("not runnable on this backend: partition between main/control-plane and lb"),
        "a partition with a host for a side is announced as not runnable: {out}"
    );
    // The recording judged again without a cluster: the same verdict, the same two rows.
    let rechecked = state.join("identity-existing-check");
    let again = std::process::Command::new(firedrill()).arg("check").arg(&report).arg("--report").arg(&rechecked).current_dir(paths().root).output().unwrap();
    let again_out = format!("{}{}", String::from_utf8_lossy(&again.stdout), String::from_utf8_lossy(&again.stderr));
    assert_eq!(again.status.code(), Some(0), "firedrill check: {again_out}");
    assert!(
        again_out
            .contains("=> identity::instances-down: matches the document in the 7 rows observed (2 of 9 not observable on this backend) (as the live run)"),
        "{again_out}"
    );
    let md = std::fs::read_to_string(rechecked.join("report.md")).unwrap();
    assert!(md.contains("| API server authenticates users with cached keys | — | not observed on the existing backend: "), "{md}");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("| API server authenticates users with cached keys | — | not observed on the existing backend: "), "{md}");
    assert!(md.contains("| Starting an API server that needs the issuer | ❌ | not observed | — | — | — | — | not observed on the existing backend: "), "{md}");
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("matches the document</strong> in the 7 rows observed (2 of 9 not observable on this backend)"), "{html}");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let identity = namespaces.get_opt("identity").await.unwrap();
    assert!(identity.is_none_or(|n| n.metadata.deletion_timestamp.is_some()), "the identity namespace the run made is removed");
    assert_eq!(dex_crds().await, Vec::<String>::new(), "the resource definitions dex made are removed");
    out
}
