//! Faults always revert. On a real local `multi` run:
//!
//! - for every fault kind, firedrill is SIGKILLed while the fault is in place; `firedrill
//!   run` then refuses to start, `firedrill recover` reverts from the journal, a second
//!   `recover` does nothing;
//! - for every fault kind, scenarios complete, matching their snapshots or not: the fault
//!   is reverted;
//! - firedrill gets SIGINT while the fault is in place: it reverts and exits 2;
//! - a probe panics while the fault is in place: the fault is reverted.
//!
//! The last two are ways out of a scenario, and every way out reverts through the same
//! journal revert the completed scenarios take (`Session::run_scenario`): they run for one
//! fault of each way a revert works (`WAYS_OUT_KINDS`: an API object, the kernel's
//! nftables, a process, an etcd member's data), not for all fourteen again.
//!
//! Each time the environment must end exactly as it was before: replicas, bindings,
//! nftables rulesets, the set of processes, nodes Ready, etcd healthy.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use firedrill::backend::local::{self, LocalRun, UpOptions, rpc::Request};
use firedrill::fixtures::Paths;
use firedrill::journal::Journal;
use firedrill::topology::Topology;
use firedrill::wait::{self, Deadline};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::ListParams;

mod common;
use common::DownOnDrop;

static SERIAL: Mutex<()> = Mutex::new(());

const KINDS: [&str; 14] = [
    "scale",
    "revoke-rbac",
    "stop-host",
    "stop-host-kill",
    "unreachable-host",
    "partition",
    "stop-storage",
    "stop-storage-kill",
    "stop-control-plane",
    "lose-node",
    "stop-cluster",
    "kill-pod",
    "lose-etcd-data",
    "drain-node",
];

/// One fault kind of each way a revert works, for the ways out of a scenario that do not
/// depend on the fault's kind (SIGINT, a probe's panic).
const WAYS_OUT_KINDS: [&str; 4] = ["scale", "partition", "stop-control-plane", "lose-etcd-data"];

/// A killed pod is an event, not a state: its Deployment has replaced it within seconds,
/// so the environment may already look as before while the journal still holds the fault.
const SELF_HEALING: [&str; 1] = ["kill-pod"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_firedrill"))
}

const EAST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: workload, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: workload}}
  template:
    metadata: {labels: {app: workload}}
    spec:
      hostNetwork: true
      containers:
        - name: workload
          image: firedrill.local/workload:dev
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: watcher, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: watcher-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: watcher, namespace: default}]
"#;

/// A `multi` run with a workload and a bound service account in east, and a process on
/// host `spare`.
async fn setup() -> LocalRun {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let paths = Paths::at(root());
    let topo = Topology::load(&paths.fixtures, "multi").unwrap();
    let run = LocalRun::up(&paths, UpOptions { topology: &topo, hosts: vec!["spare".into()], firedrill: bin() }).await.unwrap();
    let east = local::daemon::kube_client(&run.info.cluster("east").unwrap().admin_kubeconfig).await.unwrap();
    firedrill::apply::apply(&east, "east fixtures", EAST).await.unwrap();
    let spare: Ipv4Addr = run.info.host("spare").unwrap().ip;
    let workload = bin().parent().unwrap().join("workload").display().to_string();
    run.call(Request::AddHostProcess {
        host: "spare".into(),
        name: "http".into(),
        argv: vec![workload],
        env: vec![("LISTEN".into(), format!("{spare}:8080"))],
        listen: vec![8080],
    })
    .await
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(east, "default");
    wait::until(Deadline::after(Duration::from_secs(60)), "the workload of east to be available", || {
        let d = deployments.clone();
        async move { (d.get("workload").await.ok()?.status?.available_replicas? == 1).then_some(()) }
    })
    .await
    .unwrap();
    run
}

/// What must be the same before a fault and after its revert.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    replicas: Option<i32>,
    /// Ready pods of east's workload: a reverted fault has not ended while they are missing.
    available: Option<i32>,
    binding_subjects: Vec<String>,
    nft: BTreeMap<String, String>,
    processes: BTreeMap<String, Vec<String>>,
    nodes_ready: BTreeMap<String, usize>,
    /// Nodes marked unschedulable, per cluster.
    cordoned: BTreeMap<String, Vec<String>>,
    etcd_healthy: BTreeMap<String, bool>,
}

/// One look at the environment. Every request has a deadline: with a fault in place (a
/// paused etcd member answers nothing at all) a look must still end, and says so.
async fn fingerprint(run: &LocalRun) -> Fingerprint {
    let east = local::daemon::kube_client(&run.info.cluster("east").unwrap().admin_kubeconfig).await.unwrap();
    let workload = bounded(Api::<Deployment>::namespaced(east.clone(), "default").get("workload")).await;
    let replicas = workload.as_ref().and_then(|d| d.spec.as_ref()?.replicas);
    let available = workload.as_ref().and_then(|d| d.status.as_ref()?.available_replicas);
    let binding_subjects = bounded(Api::<ClusterRoleBinding>::all(east).get_opt("watcher-view"))
        .await
        .flatten()
        .and_then(|b| b.subjects)
        .unwrap_or_default()
        .iter()
        .map(|s| format!("{}/{:?}/{}", s.kind, s.namespace, s.name))
        .collect();
    let mut nft = BTreeMap::new();
    for ns in run.info.clusters.iter().flat_map(|c| c.nodes.iter().map(|n| n.netns.clone())).chain(run.info.hosts.iter().map(|h| h.netns.clone())) {
        let out = Command::new("ip").args(["netns", "exec", &ns, "nft", "list", "ruleset"]).output().unwrap();
        nft.insert(ns, String::from_utf8_lossy(&out.stdout).into_owned());
    }
    // Processes by top-level group of the run's cgroup (cluster, or hosts) and executable.
    let mut processes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&run.info.cgroup).unwrap().filter_map(|e| e.ok()) {
        if !entry.path().is_dir() {
            continue;
        }
        let group = entry.file_name().to_string_lossy().into_owned();
        let mut exes: Vec<String> = local::process::cgroup_pids(&entry.path())
            .iter()
            .filter_map(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok())
            .map(|e| e.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        exes.sort();
        processes.insert(group, exes);
    }
    let mut nodes_ready = BTreeMap::new();
    let mut etcd_healthy = BTreeMap::new();
    let mut cordoned = BTreeMap::new();
    for c in &run.info.clusters {
        let client = local::daemon::kube_client(&c.admin_kubeconfig).await.unwrap();
        let nodes = bounded(Api::<Node>::all(client).list(&ListParams::default())).await;
        let unschedulable = nodes.as_ref().map(|l| {
            l.items.iter().filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)).filter_map(|n| n.metadata.name.clone()).collect()
        });
        cordoned.insert(c.name.clone(), unschedulable.unwrap_or_else(|| vec!["(nodes unreadable)".into()]));
        let ready = nodes
            .map(|l| {
                l.items
                    .iter()
                    .filter(|n| {
                        n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                    })
                    .count()
            })
            .unwrap_or(0);
        nodes_ready.insert(c.name.clone(), ready);
        let ip = c.node(&c.etcd_nodes[0]).unwrap().ip;
        let http = reqwest::Client::builder().timeout(LOOK).build().unwrap();
        let healthy = http.get(format!("http://{ip}:2379/health")).send().await.ok().map(|r| r.status().is_success()).unwrap_or(false);
        etcd_healthy.insert(c.name.clone(), healthy);
    }
    Fingerprint { replicas, available, binding_subjects, nft, processes, nodes_ready, cordoned, etcd_healthy }
}

/// How long one request of [`fingerprint`] may take.
const LOOK: Duration = Duration::from_secs(5);

/// The answer to an API request, or `None` if it failed or took longer than [`LOOK`].
async fn bounded<T>(request: impl std::future::Future<Output = Result<T, kube::Error>>) -> Option<T> {
    tokio::time::timeout(LOOK, request).await.ok()?.ok()
}

/// Wait until the environment is exactly as `before` (a restarted cluster takes seconds; a
/// node that was lost takes longer to have its pods Ready again).
async fn assert_restored(run: &LocalRun, before: &Fingerprint, what: &str) {
    let mut last = None;
    let deadline = Deadline::after(Duration::from_secs(180));
    while !deadline.passed() {
        let now = fingerprint(run).await;
        if &now == before {
            return;
        }
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}: the environment is not as before\nbefore: {before:#?}\nafter: {last:#?}");
}

fn start(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(bin()).args(args).current_dir(root()).env("INSTA_UPDATE", "no").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    for stream in [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stderr.take().unwrap())] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

/// Read output lines until one contains `needle`; returns everything read.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, timeout: Duration) -> String {
    let mut seen = String::new();
    let end = std::time::Instant::now() + timeout;
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(needle) {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with `{needle}` within {timeout:?}; output so far:\n{seen}");
}

/// Wait for the process and every line it printed.
fn run_to_end(mut child: Child, rx: mpsc::Receiver<String>) -> (Option<i32>, String) {
    let status = child.wait().unwrap();
    let text: Vec<String> = rx.iter().collect();
    (status.code(), text.join("\n"))
}

/// Lines of the final verdicts (`=> suite::scenario: …`) containing `what`.
fn verdicts(out: &str, what: &str) -> usize {
    out.lines().filter(|l| l.starts_with("=> ") && l.contains(what)).count()
}

fn dir(run: &LocalRun) -> String {
    run.info.dir.display().to_string()
}

/// The four ways a scenario can end with its fault in place, one after the other on one
/// environment: each must leave it exactly as it was (`assert_restored`), so the next
/// starts from the same state as the first.
#[tokio::test(flavor = "multi_thread")]
async fn every_way_out_of_a_scenario_reverts_its_fault() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = setup().await;
    let _down = DownOnDrop(run.info.dir.clone());
    let before = fingerprint(&run).await;
    sigkill_mid_fault_then_recover_restores_everything(&run, &before).await;
    sigint_mid_fault_reverts_and_exits_2(&run, &before).await;
    a_probe_panicking_during_a_fault_leaves_nothing_in_place(&run, &before).await;
    completed_scenarios_revert_whether_their_table_matches_or_not(&run, &before).await;
    run.down().await.unwrap();
}

/// For every fault kind: SIGKILLed mid-fault, `run` refuses, `recover` reverts, a second
/// `recover` does nothing.
async fn sigkill_mid_fault_then_recover_restores_everything(run: &LocalRun, before: &Fingerprint) {
    for (i, kind) in KINDS.iter().enumerate() {
        let (mut child, rx) = start(&["run", "--on", &dir(run), "--suites", "harness/tests/data/safety/long", &format!("safety-long::{kind}")]);
        wait_for(&rx, "injected", Duration::from_secs(120));
        child.kill().unwrap();
        child.wait().unwrap();
        let pending = Journal::at(&run.info.dir).pending().unwrap();
        assert_eq!(pending.len(), 1, "{kind}: the journal holds the fault");
        if !SELF_HEALING.contains(kind) {
            assert_ne!(&fingerprint(run).await, before, "{kind}: the fault was in place when firedrill died");
        }
        if i == 0 {
            let o = Command::new(bin())
                .args(["run", "--on", &dir(run), "--suites", "harness/tests/data/safety/long", "safety-long::scale"])
                .current_dir(root())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{text}");
            assert!(text.contains("unreverted fault") && text.contains("firedrill recover"), "{text}");
        }
        let o = Command::new(bin()).args(["recover", &dir(run)]).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{kind}: {text}{}", String::from_utf8_lossy(&o.stderr));
        assert!(text.contains("recover: reverted: "), "{kind}: {text}");
        assert_restored(run, before, &format!("{kind} after SIGKILL and recover")).await;
        let o = Command::new(bin()).args(["recover", &dir(run)]).output().unwrap();
        assert!(String::from_utf8_lossy(&o.stdout).contains("nothing to revert"), "{kind}: a second recover is a no-op");
    }
}

/// SIGINT mid-fault: firedrill reverts and exits 2.
async fn sigint_mid_fault_reverts_and_exits_2(run: &LocalRun, before: &Fingerprint) {
    for kind in WAYS_OUT_KINDS {
        let (child, rx) = start(&["run", "--on", &dir(run), "--suites", "harness/tests/data/safety/long", &format!("safety-long::{kind}")]);
        wait_for(&rx, "injected", Duration::from_secs(120));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
        let (code, out) = run_to_end(child, rx);
        assert_eq!(code, Some(2), "{kind}: {out}");
        // The harness's own words, so the test cannot drift from them.
        let interrupted = firedrill::runner::RunError::Interrupted.to_string();
        assert!(out.contains(&interrupted) && out.contains("reverted:"), "{kind}: {out}");
        assert!(Journal::at(&run.info.dir).pending().unwrap().is_empty(), "{kind}: nothing left pending");
        assert_restored(run, before, &format!("{kind} after SIGINT")).await;
    }
}

/// A probe panics mid-fault: the fault is reverted.
async fn a_probe_panicking_during_a_fault_leaves_nothing_in_place(run: &LocalRun, before: &Fingerprint) {
    let filters: Vec<String> = WAYS_OUT_KINDS.iter().map(|k| format!("safety-panic::{k}")).collect();
    let d = dir(run);
    let mut args = vec!["run", "--on", d.as_str(), "--suites", "harness/tests/data/safety/panic"];
    args.extend(filters.iter().map(String::as_str));
    let (child, rx) = start(&args);
    let (code, out) = run_to_end(child, rx);
    assert_eq!(code, Some(2), "{out}");
    assert_eq!(verdicts(&out, "panicked"), WAYS_OUT_KINDS.len(), "every scenario reports the panic: {out}");
    assert_eq!(out.matches("reverted:").count(), WAYS_OUT_KINDS.len(), "every fault reverted: {out}");
    assert!(Journal::at(&run.info.dir).pending().unwrap().is_empty());
    assert_restored(run, before, "after probe panics").await;
}

/// For every fault kind, scenarios that complete, matching their snapshots or not, revert.
async fn completed_scenarios_revert_whether_their_table_matches_or_not(run: &LocalRun, before: &Fingerprint) {
    let (child, rx) =
        start(&["run", "--on", &dir(run), "--suites", "harness/tests/data/safety/short", "--snapshots", "harness/tests/data/safety/snapshots-mixed"]);
    let (code, out) = run_to_end(child, rx);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(verdicts(&out, ": matches the document"), KINDS.len() - 3, "{out}");
    assert_eq!(verdicts(&out, ": DIFFERS from the document"), 3, "{out}");
    assert_eq!(out.matches("reverted:").count(), KINDS.len(), "{out}");
    assert!(Journal::at(&run.info.dir).pending().unwrap().is_empty());
    assert_restored(run, before, "after complete scenarios").await;
}

/// What broke CI once: a session ended mid-fault and took the run's daemon with it. Such
/// an environment has nothing left to revert in place; `recover` says so and points at
/// `down`, which removes everything it had.
#[tokio::test(flavor = "multi_thread")]
async fn an_environment_whose_daemon_died_mid_fault_is_named_and_removed_by_down() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = setup().await;
    let _down = DownOnDrop(run.info.dir.clone());
    let (mut child, rx) = start(&["run", "--on", &dir(&run), "--suites", "harness/tests/data/safety/long", "safety-long::scale"]);
    wait_for(&rx, "injected", Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();
    let pid: i32 = std::fs::read_to_string(run.info.dir.join("daemon.pid")).unwrap().trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let run_dir = run.info.dir.clone();
    wait::until(Deadline::after(Duration::from_secs(10)), "the daemon to die", || {
        let d = run_dir.clone();
        async move { (!local::daemon_alive(&d)).then_some(()) }
    })
    .await
    .unwrap();
    assert_eq!(Journal::at(&run.info.dir).pending().unwrap().len(), 1);

    let o = Command::new(bin()).args(["recover", &dir(&run)]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("no longer running") && text.contains(&format!("firedrill down {}", dir(&run))), "{text}");

    let o = Command::new(bin()).args(["down", &dir(&run)]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!run.info.dir.exists());
    assert!(local::process::cgroup_pids(&run.info.cgroup).is_empty(), "no process of the dead environment survives `down`");
    let (netns, _) = local::net::firedrill_names();
    assert!(!netns.iter().any(|n| n.starts_with(&format!("fd{}-", run.info.subnet))), "its namespaces are gone: {netns:?}");
}
