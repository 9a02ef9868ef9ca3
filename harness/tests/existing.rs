//! The existing backend, driven as a user drives it: `firedrill run --backend existing
//! --context ROLE=CONTEXT…` against the three clusters of a local run, through one
//! kubeconfig holding a context per cluster (made from the run's admin kubeconfigs).
//! - Contexts whose clusters firedrill does not know (a state directory without the run)
//!   are refused, naming each context, its server and the faults the suite would put
//!   there; nothing is deployed.
//! - Named in `--allow-context`, but with a Service of the user's where the workload's
//!   would go: refused before anything is applied, naming it; the Service is exactly as it
//!   was (its whole object compared), nothing of the run is left.
//! - Named in `--allow-context`, the same contexts are used: a scale fault matches its
//!   table; a partition is NetworkPolicies, which the local backend's network does not
//!   enforce, so the canary pods get through and the scenario is a harness error "fault not
//!   in effect", never a table; a partition with a node for a side, and stopping a cluster,
//!   are not runnable. Afterwards no policy, canary or deployed component is left, and what
//!   was there before is.
//! - With the state directory that holds the local run, its contexts are firedrill's own:
//!   a run SIGKILLed with its fault in place is reverted by `firedrill recover` on its
//!   directory, and `firedrill down` then removes what it deployed.
//!
//! tests/kind.rs runs the same backend against a kind cluster's kubeconfig, and there the
//! identity suite's `instances-down` with the identity component's hosts as pods.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::ListParams;

mod common;

const SUITES: &str = "harness/tests/data/existing";
const SNAPSHOTS: &str = "harness/tests/data/snapshots";

fn firedrill(state: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(common::firedrill());
    c.args(args).current_dir(common::paths().root).env("FIREDRILL_STATE", state).env("INSTA_UPDATE", "no");
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn contexts_args(kubeconfig: &Path) -> Vec<String> {
    let mut a = vec!["run".to_string(), "--backend".into(), "existing".into(), "--kubeconfig".into(), kubeconfig.display().to_string()];
    for role in ["directory", "east", "west"] {
        a.extend(["--context".into(), format!("{role}={}", context(role))]);
    }
    a.extend(["--suites".into(), SUITES.into(), "--snapshots".into(), SNAPSHOTS.into()]);
    a
}

/// The user's name for the context of `role`.
fn context(role: &str) -> String {
    format!("lab-{role}")
}

async fn client(run: &firedrill::backend::local::LocalRun, cluster: &str) -> kube::Client {
    firedrill::backend::kube_client(&run.info.cluster(cluster).unwrap().admin_kubeconfig).await.unwrap()
}

async fn workload(run: &firedrill::backend::local::LocalRun, cluster: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(client(run, cluster).await, "default").get_opt("workload").await.unwrap()
}

/// Every NetworkPolicy and canary pod in the run's clusters.
async fn leftovers(run: &firedrill::backend::local::LocalRun) -> Vec<String> {
    let mut out = Vec::new();
    for c in ["directory", "east", "west"] {
        let client = client(run, c).await;
        for p in Api::<NetworkPolicy>::all(client.clone()).list(&ListParams::default()).await.unwrap().items {
            out.push(format!("{c}: NetworkPolicy {}/{}", p.metadata.namespace.unwrap_or_default(), p.metadata.name.unwrap_or_default()));
        }
        for p in Api::<Pod>::all(client).list(&ListParams::default().labels("firedrill.dev/canary")).await.unwrap().items {
            out.push(format!("{c}: canary pod {}", p.metadata.name.unwrap_or_default()));
        }
    }
    out
}

async fn namespaces(run: &firedrill::backend::local::LocalRun, cluster: &str) -> Vec<String> {
    Api::<Namespace>::all(client(run, cluster).await).list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|n| n.metadata.name).collect()
}

fn existing_runs(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("existing-runs")).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())).collect()
}

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[tokio::test(flavor = "multi_thread")]
async fn contexts_of_a_local_run_are_refused_unless_allowed_or_known_faulted_through_the_api_and_left_as_found() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state = tempfile::tempdir().unwrap();
    let up = firedrill(state.path(), &["up", "--topology", "multi"]).output().unwrap();
    assert!(up.status.success(), "firedrill up: {}", text(&up));
    let dir = text(&up).lines().find_map(|l| l.strip_prefix("tear down with: firedrill down ")).expect("up names its run directory").to_string();
    let run = firedrill::backend::local::LocalRun::attach(Path::new(&dir)).unwrap();
    let outcome = async {
        let kubeconfig = state.path().join("lab.kubeconfig");
        let files: Vec<(String, PathBuf)> =
            ["directory", "east", "west"].iter().map(|r| (context(r), run.info.cluster(r).unwrap().admin_kubeconfig.clone())).collect();
        let pairs: Vec<(&str, &Path)> = files.iter().map(|(c, f)| (c.as_str(), f.as_path())).collect();
        common::kubeconfig_with_contexts(&pairs, &kubeconfig);
        let namespaces_before = namespaces(&run, "east").await;

        // A state directory that does not hold the run: its clusters are strangers.
        let stranger = tempfile::tempdir().unwrap();
        let mut args = contexts_args(&kubeconfig);
        args.push("existing-multi::east-scaled-down".into());
        let o = firedrill(stranger.path(), &args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{out}");
        let east = &run.info.cluster("east").unwrap().server;
        assert!(out.contains("refusing to touch clusters firedrill did not create"), "{out}");
        assert!(
            out.contains(&format!("context `lab-east` (cluster east, server {east})")) && out.contains("deployment east/default/workload scaled to 0"),
            "{out}"
        );
        assert!(out.contains("--allow-context lab-directory,lab-east,lab-west"), "{out}");
        assert!(workload(&run, "east").await.is_none(), "nothing is deployed to a refused context");
        assert!(existing_runs(stranger.path()).is_empty());

        // East's CA at another server (here, another port of east's address): the CA alone
        // does not make it firedrill's cluster, even with the state directory that holds
        // the run. Refused before anything is sent to it.
        let mixed = state.path().join("mixed.kubeconfig");
        common::kubeconfig_with_contexts(
            &[
                ("lab-directory", run.info.cluster("directory").unwrap().admin_kubeconfig.as_path()),
                ("lab-mixed", run.info.cluster("east").unwrap().admin_kubeconfig.as_path()),
                ("lab-west", run.info.cluster("west").unwrap().admin_kubeconfig.as_path()),
            ],
            &mixed,
        );
        let elsewhere = east.rsplit_once(':').map(|(host, _)| format!("{host}:6444")).unwrap();
        let text_of = std::fs::read_to_string(&mixed).unwrap();
        let east_at = format!("\"server\": \"{east}\"");
        assert!(text_of.contains(&east_at), "{text_of}");
        std::fs::write(&mixed, text_of.replace(&east_at, &format!("\"server\": \"{elsewhere}\""))).unwrap();
        let args: Vec<String> = ["run", "--backend", "existing", "--kubeconfig", &mixed.display().to_string()]
            .into_iter()
            .chain(["--context", "directory=lab-directory", "--context", "east=lab-mixed", "--context", "west=lab-west"])
            .chain(["--suites", SUITES, "--snapshots", SNAPSHOTS, "existing-multi::east-scaled-down"])
            .map(String::from)
            .collect();
        let o = firedrill(state.path(), &args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{out}");
        assert!(out.contains(&format!("context `lab-mixed` (cluster east, server {elsewhere}) was not created by firedrill")), "{out}");

        // Allowed, but east holds a Service of the user's named as the workload's: refused
        // before anything is applied over it, and the Service is exactly as it was.
        let services = Api::<Service>::namespaced(client(&run, "east").await, "default");
        let users: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "workload", "labels": {"owner": "the-user"}},
            "spec": {"selector": {"app": "the-users-app"}, "ports": [{"name": "web", "port": 9999, "targetPort": 9999}]}
        }))
        .unwrap();
        services.create(&Default::default(), &users).await.unwrap();
        let before = serde_json::to_string(&services.get("workload").await.unwrap()).unwrap();
        let mut args = contexts_args(&kubeconfig);
        args.extend(["--allow-context".into(), "lab-directory,lab-east,lab-west".into(), "existing-multi::east-scaled-down".into()]);
        let o = firedrill(stranger.path(), &args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{out}");
        assert!(
            out.contains("refusing to apply over objects that exist on this cluster and are not this run's") && out.contains("Service default/workload"),
            "{out}"
        );
        let after = serde_json::to_string(&services.get("workload").await.unwrap()).unwrap();
        assert_eq!(after, before, "the user's Service is exactly as it was");
        assert!(workload(&run, "east").await.is_none_or(|d| d.metadata.deletion_timestamp.is_some()), "nothing of the refused component is left: {out}");
        assert!(existing_runs(stranger.path()).is_empty());
        services.delete("workload", &Default::default()).await.unwrap();
        firedrill::wait::until(firedrill::wait::Deadline::after(std::time::Duration::from_secs(30)), "the test's Service to be gone", || {
            let services = services.clone();
            async move { matches!(services.get_opt("workload").await, Ok(None)).then_some(()) }
        })
        .await
        .unwrap();

        // Allowed by name, the same strangers: the whole suite, with a report.
        let report = state.path().join("report");
        let mut args = contexts_args(&kubeconfig);
        args.extend(["--allow-context".into(), "lab-directory,lab-east".into(), "--allow-context".into(), "lab-west".into()]);
        args.extend(["--report".into(), report.display().to_string(), "existing-multi".into()]);
        let o = firedrill(stranger.path(), &args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "a scenario that cannot be proven or run is the harness's: {out}");
        assert!(out.contains(&format!("context `lab-east` (allowed by --allow-context, server {east})")), "{out}");
        assert!(out.contains("is cluster east; faults there: deployment east/default/workload scaled to 0; partition between east and west; not runnable on this backend: partition between east/worker-1 and west"), "{out}");
        assert!(out.contains("is cluster west; faults there: partition between east and west; not runnable on this backend: cluster west stopped; partition between east/worker-1 and west"), "{out}");
        let v = common::verdicts(&report);
        assert_eq!(v["existing-multi::east-scaled-down"].0, "match", "{v:?}\n{out}");
        let (verdict, error) = &v["existing-multi::east-west-partitioned"];
        assert_eq!(verdict, "harness-error", "{v:?}");
        assert!(error.contains("fault not in effect") && error.contains("does not enforce the NetworkPolicy"), "{error}");
        let (verdict, reason) = &v["existing-multi::east-worker-partitioned"];
        assert_eq!(verdict, "not-runnable", "{v:?}");
        assert!(reason.contains("sides that are nodes or hosts"), "{reason}");
        let (verdict, reason) = &v["existing-multi::west-stopped"];
        assert_eq!(verdict, "not-runnable", "{v:?}");
        assert!(reason.contains("stopping whole clusters") && reason.contains("existing"), "{reason}");
        assert_eq!(leftovers(&run).await, Vec::<String>::new(), "the partition's policies and canaries are gone");
        for c in ["east", "west"] {
            assert!(workload(&run, c).await.is_none_or(|d| d.metadata.deletion_timestamp.is_some()), "the workload the run deployed to {c} is removed");
        }
        let namespaces_after = namespaces(&run, "east").await;
        assert_eq!(namespaces_after, namespaces_before, "east's namespaces are as they were");
        assert!(existing_runs(stranger.path()).is_empty(), "the run's directory is removed when it ends");

        // Known to this state directory (it holds the local run), killed with the fault in place: `recover` reverts it from the journal, `down`
        // removes what was deployed.
        let mut args = contexts_args(&kubeconfig);
        args.push("existing-multi::east-scaled-down".into());
        let mut child =
            firedrill(state.path(), &args.iter().map(String::as_str).collect::<Vec<_>>()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let mut seen = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("injected") {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen.contains("injected") && seen.contains("context `lab-east` (created by firedrill run"), "{seen}");
        let dirs = existing_runs(state.path());
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        let dir = dirs[0].display().to_string();
        assert_eq!(firedrill::journal::Journal::at(&dirs[0]).pending().unwrap().len(), 1);
        assert_eq!(workload(&run, "east").await.and_then(|d| d.spec?.replicas), Some(0), "the fault is in place");
        let o = firedrill(state.path(), &["down", &dir]).output().unwrap();
        assert!(!o.status.success() && text(&o).contains("firedrill recover"), "down refuses while a fault is in place: {}", text(&o));
        let o = firedrill(state.path(), &["recover", &dir]).output().unwrap();
        assert!(o.status.success() && text(&o).contains("reverted: scale east/default/deployment/workload back to 1"), "{}", text(&o));
        assert_eq!(workload(&run, "east").await.and_then(|d| d.spec?.replicas), Some(1));
        let o = firedrill(state.path(), &["down", &dir]).output().unwrap();
        assert!(o.status.success() && text(&o).contains("down: deleted east: Deployment default/workload"), "{}", text(&o));
        assert!(workload(&run, "east").await.is_none_or(|d| d.metadata.deletion_timestamp.is_some()));
        assert!(existing_runs(state.path()).is_empty());
    };
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(outcome)).await;
    let down = firedrill(state.path(), &["down", "--all"]).output().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(down.status.success(), "firedrill down --all: {}", text(&down));
}
