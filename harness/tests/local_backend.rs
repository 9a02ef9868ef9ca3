//! The local backend against real upstream binaries (needs root and `make setup`).
//!
//! `single`: a Deployment of the workload binary (2 replicas, required anti-affinity)
//! runs as real processes on both workers through the real scheduler, answers HTTP from
//! the harness, and its processes are gone after scaling to 0; teardown leaves nothing.
//! Init containers run in order to completion before a pod's containers; one that fails
//! is restarted (restartPolicy Always), or fails the pod (Never) with its containers never
//! started.
//! `multi` and `ha` come up with their clusters, kubeconfigs and nodes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use firedrill::backend::local::{self, LocalRun, UpOptions};
use firedrill::fault::controlplane::{self, Component};
use firedrill::fixtures::Paths;
use firedrill::topology::Topology;
use firedrill::wait::{self, Deadline};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};

mod common;
use common::DownOnDrop;

/// Cluster tests run one at a time: they share two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn paths() -> Paths {
    Paths::at(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
}

fn firedrill() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_firedrill"))
}

async fn up(topology: &str, hosts: Vec<String>) -> LocalRun {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let p = paths();
    let topo = Topology::load(&p.fixtures, topology).unwrap();
    LocalRun::up(&p, UpOptions { topology: &topo, hosts, firedrill: firedrill() }).await.unwrap_or_else(|e| panic!("up {topology}: {e}"))
}

/// Everything a run created, by the names it gave them: namespaces, links, processes in
/// its cgroup, mounts and nftables tables mentioning it, its directory.
fn traces(run: &LocalRun) -> Vec<String> {
    let mut found = Vec::new();
    let prefix = format!("fd{}", run.info.subnet);
    let (netns, links) = local::net::firedrill_names();
    found.extend(netns.into_iter().filter(|n| n.starts_with(&format!("{prefix}-"))).map(|n| format!("netns {n}")));
    found.extend(links.into_iter().filter(|l| l.starts_with(&format!("{prefix}v")) || *l == format!("{prefix}br")).map(|l| format!("link {l}")));
    found.extend(local::process::cgroup_pids(&run.info.cgroup).into_iter().map(|p| format!("process {p}")));
    if run.info.cgroup.exists() {
        found.push(format!("cgroup {}", run.info.cgroup.display()));
    }
    let dir = run.info.dir.display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    found.extend(mountinfo.lines().filter(|l| l.contains(&dir) || l.contains(&format!("/run/netns/{prefix}-"))).map(|l| format!("mount {l}")));
    let tables =
        std::process::Command::new("nft").args(["list", "tables"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    found.extend(tables.lines().filter(|t| t.contains("firedrill")).map(|t| format!("nft {t}")));
    if run.info.dir.exists() {
        found.push(format!("directory {dir}"));
    }
    found
}

async fn down_and_check(run: LocalRun) {
    run.down().await.unwrap();
    let left = traces(&run);
    assert!(left.is_empty(), "left behind after down: {left:#?}");
    // A second down finds nothing and succeeds.
    local::down(&run.info.dir).await.unwrap();
}

async fn admin(run: &LocalRun, cluster: &str) -> kube::Client {
    local::daemon::kube_client(&run.info.cluster(cluster).unwrap().admin_kubeconfig).await.unwrap()
}

const WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: workload
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: workload}
  template:
    metadata:
      labels: {app: workload}
    spec:
      hostNetwork: true
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - labelSelector:
                matchLabels: {app: workload}
              topologyKey: kubernetes.io/hostname
      containers:
        - name: workload
          image: firedrill.local/workload:dev
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports:
            - containerPort: 8080
          readinessProbe:
            httpGet: {path: /healthz, port: 8080}
            periodSeconds: 1
"#;

/// The run's own workload processes (other runs on the machine have theirs).
fn workload_pids(cgroup: &Path) -> Vec<i32> {
    local::process::cgroup_pids(cgroup)
        .into_iter()
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "workload")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn single_runs_a_deployment_as_real_processes_and_leaves_nothing_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = up("single", vec![]).await;
    let _down = DownOnDrop(run.info.dir.clone());
    let client = admin(&run, "main").await;

    let nodes: Api<Node> = Api::all(client.clone());
    assert_eq!(nodes.list(&ListParams::default()).await.unwrap().items.len(), 3);

    firedrill::apply::apply(&client, "workload", WORKLOAD).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ready = wait::until(Deadline::after(Duration::from_secs(60)), "2 workload pods Running and Ready", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels("app=workload")).await.ok()?;
            let ready: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| {
                    let st = p.status.as_ref();
                    st.and_then(|s| s.phase.as_deref()) == Some("Running")
                        && st.and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .collect();
            (ready.len() == 2).then_some(ready)
        }
    })
    .await
    .unwrap();

    // Spread by the real scheduler's anti-affinity over the two workers.
    let mut on: Vec<String> = ready.iter().map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap()).collect();
    on.sort();
    assert_eq!(on, vec!["worker-1".to_string(), "worker-2".to_string()]);

    // Each answers over HTTP at its node's address, from the harness.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    for p in &ready {
        let ip: Ipv4Addr = p.status.as_ref().unwrap().pod_ip.as_ref().unwrap().parse().unwrap();
        let body = http.get(format!("http://{ip}:8080/")).send().await.unwrap().text().await.unwrap();
        assert_eq!(body.trim(), format!("{} ok", p.metadata.name.as_ref().unwrap()));
    }
    assert_eq!(workload_pids(&run.info.cgroup).len(), 2, "two workload processes run");

    init_containers_run_first_and_to_completion(&client).await;

    // Scaled to 0 through the API: the processes are gone.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments.patch_scale("workload", &PatchParams::default(), &Patch::Merge(&serde_json::json!({"spec": {"replicas": 0}}))).await.unwrap();
    wait::until(Deadline::after(Duration::from_secs(60)), "workload processes to exit and pods to be deleted", || {
        let pods = pods.clone();
        let cgroup = run.info.cgroup.clone();
        async move {
            let left = pods.list(&ListParams::default().labels("app=workload")).await.ok()?.items.len();
            (left == 0 && workload_pids(&cgroup).is_empty()).then_some(())
        }
    })
    .await
    .unwrap();

    down_and_check(run).await;
}

/// A pod of the workload image: `inits` are the CONNECT targets of its init containers,
/// in order; its one container serves on `port` (pods share their node's ports here).
fn init_pod(name: &str, restart_policy: &str, inits: &[&str], port: u16) -> Pod {
    let init_containers: Vec<serde_json::Value> = inits
        .iter()
        .enumerate()
        .map(|(i, target)| {
            serde_json::json!({
                "name": format!("init-{i}"), "image": "firedrill.local/workload:dev",
                "env": [{"name": "CONNECT", "value": target}],
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"test": "init"}},
        "spec": {
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 2,
            "initContainers": init_containers,
            "containers": [{
                "name": "serve", "image": "firedrill.local/workload:dev",
                "env": [{"name": "LISTEN", "value": format!("0.0.0.0:{port}")}, {"name": "POD_NAME", "value": name}],
                "ports": [{"containerPort": port}],
            }],
        },
    }))
    .unwrap()
}

async fn init_containers_run_first_and_to_completion(client: &kube::Client) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Both init containers reach the API server (exit 0), one after the other; then the
    // container starts and serves.
    let api = "$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)";
    // Port 1 on the node's own address: nothing listens there, the connection is refused.
    let refused = "$(KUBERNETES_SERVICE_HOST):1";
    for p in [
        init_pod("init-ok", "Always", &[api, api], 8181),
        init_pod("init-retried", "Always", &[api, refused], 8182),
        init_pod("init-fails", "Never", &[refused], 8183),
    ] {
        pods.create(&Default::default(), &p).await.unwrap();
    }
    let status = |name: &'static str| {
        let pods = pods.clone();
        async move { pods.get(name).await.ok()?.status }
    };
    let condition = |s: &k8s_openapi::api::core::v1::PodStatus, kind: &str| {
        s.conditions.iter().flatten().find(|c| c.type_ == kind).map(|c| c.status.clone()).unwrap_or_default()
    };

    let ok = wait::until(Deadline::after(Duration::from_secs(60)), "pod init-ok Running and Ready", || async {
        let s = status("init-ok").await?;
        (s.phase.as_deref() == Some("Running") && condition(&s, "Ready") == "True").then_some(s)
    })
    .await
    .unwrap();
    assert_eq!(condition(&ok, "Initialized"), "True");
    let inits = ok.init_container_statuses.clone().unwrap();
    let done: Vec<_> = inits.iter().map(|c| c.state.as_ref().unwrap().terminated.clone().expect("init container terminated")).collect();
    assert_eq!(done.iter().map(|t| (t.exit_code, t.reason.clone().unwrap())).collect::<Vec<_>>(), [(0, "Completed".to_string()), (0, "Completed".to_string())]);
    assert!(inits.iter().all(|c| c.ready), "{inits:?}");
    let started = ok.container_statuses.as_ref().unwrap()[0].state.as_ref().unwrap().running.clone().unwrap().started_at.unwrap();
    assert!(done[0].finished_at.as_ref().unwrap().0 <= done[1].started_at.as_ref().unwrap().0, "init containers run one after the other: {done:?}");
    assert!(done[1].finished_at.as_ref().unwrap().0 <= started.0, "the container starts after the last init container: {done:?}, started {started:?}");
    let ip = ok.pod_ip.unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    assert_eq!(http.get(format!("http://{ip}:8181/")).send().await.unwrap().text().await.unwrap().trim(), "init-ok ok");

    // The second init container fails and is restarted with back-off; the pod stays
    // Pending and its container waits.
    let retried = wait::until(Deadline::after(Duration::from_secs(60)), "pod init-retried's second init container restarted twice", || async {
        let s = status("init-retried").await?;
        (s.init_container_statuses.as_ref()?.get(1)?.restart_count >= 2).then_some(s)
    })
    .await
    .unwrap();
    assert_eq!(retried.phase.as_deref(), Some("Pending"));
    assert_eq!(condition(&retried, "Initialized"), "False");
    let inits = retried.init_container_statuses.unwrap();
    assert_eq!(inits[0].restart_count, 0, "a completed init container is not run again: {inits:?}");
    assert_eq!(inits[1].last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 1);
    let waiting = retried.container_statuses.unwrap()[0].state.clone().unwrap().waiting.unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("PodInitializing"));

    // Under `Never`, the failed init container fails the pod; its container never starts.
    let failed = wait::until(Deadline::after(Duration::from_secs(60)), "pod init-fails Failed", || async {
        let s = status("init-fails").await?;
        (s.phase.as_deref() == Some("Failed")).then_some(s)
    })
    .await
    .unwrap();
    let init = &failed.init_container_statuses.unwrap()[0];
    assert_eq!((init.restart_count, init.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code), (0, 1));
    let serve = &failed.container_statuses.unwrap()[0];
    assert!(serve.state.as_ref().unwrap().waiting.is_some() && serve.restart_count == 0, "{serve:?}");

    pods.delete_collection(&Default::default(), &ListParams::default().labels("test=init")).await.unwrap();
    wait::until(Deadline::after(Duration::from_secs(60)), "the init test's pods to be gone", || {
        let pods = pods.clone();
        async move { pods.list(&ListParams::default().labels("test=init")).await.ok()?.items.is_empty().then_some(()) }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_brings_up_three_clusters_each_with_its_own_kubeconfig() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = up("multi", vec![]).await;
    let _down = DownOnDrop(run.info.dir.clone());
    let names: Vec<&str> = run.info.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["directory", "east", "west"]);
    let mut servers = Vec::new();
    for c in &run.info.clusters {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&c.admin_kubeconfig).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{} kubeconfig is private", c.name);
        let client = admin(&run, &c.name).await;
        let nodes: Api<Node> = Api::all(client);
        let list = nodes.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 2, "cluster {} has its own two nodes", c.name);
        servers.push(c.server.clone());
    }
    servers.dedup();
    assert_eq!(servers.len(), 3, "three distinct API servers");
    down_and_check(run).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ha_has_three_etcd_members_and_two_apiservers_behind_a_load_balancer() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = up("ha", vec![]).await;
    let _down = DownOnDrop(run.info.dir.clone());
    let c = run.info.cluster("main").unwrap().clone();
    assert_eq!(c.etcd_nodes.len(), 3);
    assert_eq!(c.apiserver_nodes.len(), 2);
    let lb = run.info.host(c.apiserver_lb.as_ref().unwrap()).unwrap().ip;
    assert_eq!(c.server, format!("https://{lb}:6443"));
    let http = reqwest::Client::new();
    let url = format!("http://{}:2379/v3/cluster/member/list", c.node(&c.etcd_nodes[0]).unwrap().ip);
    let members: serde_json::Value = http.post(url).body("{}").send().await.unwrap().json().await.unwrap();
    assert_eq!(members["members"].as_array().map(|m| m.len()), Some(3), "{members}");
    // Through the load balancer, with one API server stopped, the cluster still answers.
    let stopped =
        run.call(local::rpc::Request::StopProcess { name: format!("main/kube-apiserver-{}", c.apiserver_nodes[0]), how: Default::default() }).await.unwrap();
    assert_eq!(stopped.len(), 1);
    let client = admin(&run, "main").await;
    let nodes: Api<Node> = Api::all(client);
    wait::until(Deadline::after(Duration::from_secs(30)), "the API through the load balancer with one API server down", || {
        let nodes = nodes.clone();
        async move { nodes.list(&ListParams::default()).await.ok().map(|_| ()) }
    })
    .await
    .unwrap();

    // A paused etcd member (SIGSTOP) is listed as paused, still holds its port and answers
    // nothing; resumed (SIGCONT), it answers its health check again.
    let member = format!("main/etcd-{}", c.etcd_nodes[2]);
    let state = |want: &'static str| {
        let (run, member) = (&run, member.clone());
        async move {
            let list = run.call(local::rpc::Request::Processes).await.unwrap();
            assert!(list.iter().any(|l| *l == format!("{member}\t{want}")), "{member} not {want}: {list:?}");
        }
    };
    let health = format!("http://{}:2379/health", c.node(&c.etcd_nodes[2]).unwrap().ip);
    let quick = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();
    run.call(local::rpc::Request::StopProcess { name: member.clone(), how: local::rpc::StopHow::Pause }).await.unwrap();
    state("paused").await;
    let err = quick.get(&health).send().await.expect_err("a paused member answers nothing");
    assert!(err.is_timeout(), "a paused member's port stays open: the request times out ({err})");
    run.call(local::rpc::Request::StartProcess { name: member.clone() }).await.unwrap();
    state("running").await;
    wait::until(Deadline::after(Duration::from_secs(30)), "the resumed member to answer its health check", || {
        let (quick, health) = (quick.clone(), health.clone());
        async move { (quick.get(&health).send().await.ok()?.text().await.ok()?.contains("\"health\":\"true\"")).then_some(()) }
    })
    .await
    .unwrap();
    // The leader of each elected component is found, and is one of the instances.
    let info = &c;
    for component in [Component::Etcd, Component::KubeControllerManager, Component::KubeScheduler] {
        let leader = wait::until(Deadline::after(Duration::from_secs(30)), &format!("a {} leader", component.name()), || async move {
            controlplane::leader(info, component).await.ok()
        })
        .await
        .unwrap();
        assert!(c.nodes.iter().any(|n| n.name == leader), "{leader}");
    }
    down_and_check(run).await;
}

#[test]
fn up_without_root_fails_at_once_and_names_the_kind_backend() {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(firedrill())
        .args(["up", "--topology", "single"])
        .env("FIREDRILL_STATE", std::env::temp_dir().join("firedrill-nonroot"))
        .output()
        .expect("setpriv runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root") && err.contains("--backend kind"), "{err}");
}
