//! The kind backend on this machine's Docker engine (`make setup` starts one and builds the
//! node image offline), driven as a user drives it, through `firedrill up --backend kind`
//! and `firedrill down`:
//! - an `up` killed (SIGKILL, its whole process group) while kind is creating nodes leaves
//!   a plan from which `recover` and `down` remove everything it made;
//! - `up --topology single --hosts spare` comes up with every node Ready, as the pinned
//!   kubectl sees it, on the address plan's network and subnets, with the components'
//!   images loaded: the workload component's Deployment (fixtures/components/workload/)
//!   becomes available from its offline-built image. On that run: a host is a container
//!   at its planned address, its process one of its own image; an extra API server started
//!   in the control-plane node's namespace answers, and stopping it leaves nothing; the
//!   faults kind supports (a host's process stopped, a partition between a node and a host,
//!   a lost node, etcd killed, a partition between two nodes, a stopped cluster),
//!   journaled as the runner journals them, are proven in effect and then undone; a fault
//!   journaled and left in place is reverted by `firedrill recover`; the existing backend,
//!   given the cluster as a kubeconfig context, scales its workload through the API (the
//!   table matches) and reports stopping etcd not runnable, and runs the identity suite's
//!   `instances-down` with the identity component's hosts as pods (the API server's rows
//!   not observed, nothing left after); `down` leaves no container,
//!   network or volume of the run behind.
//!
//! Under `make test` the second test works on the kind run `ci/test.sh` brings up for the
//! kind tests to share (`FIREDRILL_KIND_RUN`, hosts ldap, lb and spare; tests/nightly.rs
//! runs its drill there after it): `ci/test.sh` takes it down, and its leftover check
//! fails on anything left. Alone (`cargo test --test kind`) it brings up a run of its own.
//!
//! The two share the engine and the machine's two cores, so they take turns.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use firedrill::backend::addresses::{Block, KIND_PODS};

mod common;

static TURN: Mutex<()> = Mutex::new(());

use common::kind::{assert_nothing_left, containers, containers_in, docker, firedrill, networks, text, volumes};

#[test]
fn an_up_killed_while_kind_creates_nodes_is_removed_by_down() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let before = volumes();
    // Under `make test` the kind tests' shared run is up meanwhile: only what this `up`
    // makes counts.
    let (nodes_before, nets_before) = (containers("fd-k"), networks());
    let new = |now: Vec<String>, before: &[String]| now.into_iter().filter(|c| !before.contains(c)).collect::<Vec<_>>();
    // Its output is kept, to say why if it ends on its own.
    let log = state.path().join("up.log");
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(common::firedrill())
            .args(["up", "--backend", "kind", "--topology", "single"])
            .env("FIREDRILL_STATE", state.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let start = Instant::now();
    while new(containers_in("fd-k", &["--filter", "status=running"]), &nodes_before).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("firedrill up ended ({status}) before kind started a node: {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        assert!(start.elapsed() < Duration::from_secs(120), "kind started no node container within 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The whole group: firedrill and the kind it runs.
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let (left, nets) = (new(containers("fd-k"), &nodes_before), new(networks(), &nets_before));
    assert!(!left.is_empty() && !nets.is_empty(), "the killed run left its network and nodes (what down must remove): {left:?} {nets:?}");

    let runs: Vec<_> = std::fs::read_dir(state.path().join("kind-runs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "the killed up recorded its plan before creating anything");
    let dir = runs[0].display().to_string();
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(runs[0].join("kind-run.json")).unwrap()).unwrap();
    let number = plan["number"].as_u64().expect("the plan names the run's number") as u8;
    let recover = firedrill(state.path(), &["recover", &dir]);
    assert!(recover.status.success() && text(&recover).contains("nothing to revert"), "{}", text(&recover));
    let down = firedrill(state.path(), &["down", &dir]);
    assert!(down.status.success(), "firedrill down: {}", text(&down));
    assert!(!runs[0].exists());
    assert_nothing_left(number, &before);
}

/// What `up --backend kind --topology single` must give: every node Ready as the pinned
/// kubectl reports it, with a pod CIDR in the run's block; the workload component's
/// Deployment available from its offline-built image; the nodes on the run's network.
fn check_single(run: &firedrill::backend::kind::KindRunInfo) {
    let main = run.cluster("main").unwrap();

    // Every node Ready, as the pinned kubectl reports it.
    let kubectl = firedrill::fixtures::Binaries::locate(&common::paths()).unwrap().kubectl;
    let nodes = Command::new(&kubectl)
        .args(["--kubeconfig", &main.kubeconfig.display().to_string(), "get", "nodes", "-o"])
        .arg(r#"jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.spec.podCIDR}{"\n"}{end}"#)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let nodes = String::from_utf8_lossy(&nodes.stdout).to_string();
    let mut names: Vec<&str> = nodes.lines().map(|l| l.split(' ').next().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["fd-k0-main-control-plane", "fd-k0-main-worker", "fd-k0-main-worker2"].map(|n| n.replace("k0", &format!("k{}", run.number))));
    for l in nodes.lines() {
        let [name, ready, cidr] = l.split(' ').collect::<Vec<_>>()[..] else { panic!("unexpected line `{l}`") };
        assert_eq!(ready, "True", "node {name} is not Ready");
        let cidr = Block::parse(cidr).unwrap_or_else(|| panic!("node {name} has no pod CIDR"));
        assert!(Block::parse(&main.pods).unwrap().contains(cidr) && KIND_PODS.contains(cidr), "node {name}: pod CIDR {cidr} outside {}", main.pods);
    }

    // A component from its offline-built image: the workload Deployment turns available.
    let kubeconfig = main.kubeconfig.display().to_string();
    let manifests = common::paths().fixtures.join("components/workload/manifests.yaml");
    let apply = Command::new(&kubectl).args(["--kubeconfig", &kubeconfig, "apply", "-f"]).arg(&manifests).output().unwrap();
    assert!(apply.status.success(), "kubectl apply: {}", text(&apply));
    let rollout = Command::new(&kubectl)
        .args(["--kubeconfig", &kubeconfig, "-n", "default", "rollout", "status", "deployment/workload", "--timeout=120s"])
        .output()
        .unwrap();
    assert!(rollout.status.success(), "the workload Deployment did not turn available on kind: {}", text(&rollout));

    // The nodes sit on the run's network, inside the plan.
    let subnet = docker(&["network", "inspect", &run.network, "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"]);
    assert_eq!(subnet, run.subnet);
    for n in &main.nodes {
        let ip = docker(&["inspect", &n.container, "--format", &format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", run.network)]);
        let ip = Block::parse(&format!("{ip}/32")).unwrap_or_else(|| panic!("node {}: no address on {}", n.container, run.network));
        assert!(Block::parse(&run.subnet).unwrap().contains(ip), "node {} at {ip}", n.container);
    }
}

/// Freeze one pod container's cgroup inside a node container with cgroup v1's freezer, as
/// runc inside the node does while it sets a container up. `None` on a host without the v1
/// freezer (under cgroup v2 a frozen process still dies of SIGKILL).
fn freeze_a_pod_container(node: &str) -> Option<std::path::PathBuf> {
    let pid = docker(&["inspect", "--format", "{{.State.Pid}}", node]);
    let id = docker(&["inspect", "--format", "{{.Id}}", node]);
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroups.lines().find_map(|l| {
        let mut p = l.splitn(3, ':');
        let (_, controllers, path) = (p.next()?, p.next()?, p.next()?);
        controllers.split(',').any(|c| c == "freezer").then(|| path.to_string())
    })?;
    let at = path.find(&id).unwrap_or_else(|| panic!("the node's freezer cgroup {path} does not name its id {id}"));
    let root = std::path::Path::new("/sys/fs/cgroup/freezer").join(&path[1..at + id.len()]);
    // The node's pods may still be starting again after the earlier faults: wait for one.
    // A container may also end between being found and being frozen (its cgroup is gone):
    // another is looked for. A cgroup stays FREEZING while one of its tasks cannot be
    // stopped yet (in uninterruptible sleep): it is thawed, and freezing is tried again a
    // second later.
    let mut stuck = Vec::new();
    for _ in 0..120 {
        if let Some(scope) = pod_container_scope(&root) {
            let state = scope.join("freezer.state");
            if std::fs::write(&state, "FROZEN").is_ok() {
                for _ in 0..50 {
                    match std::fs::read_to_string(&state) {
                        Ok(s) if s.trim() == "FROZEN" => return Some(scope),
                        Ok(_) => std::thread::sleep(Duration::from_millis(100)),
                        Err(_) => break,
                    }
                }
                if std::fs::write(&state, "THAWED").is_ok() {
                    stuck.push(scope.display().to_string());
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("no pod container under {} froze within 120 s; stuck freezing: {stuck:?}", root.display());
}

/// A pod container's cgroup (`cri-containerd-<id>.scope`) with processes in it, under `root`.
fn pod_container_scope(root: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).ok()?.filter_map(|e| e.ok()) {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("cri-containerd-")
                && name.ends_with(".scope")
                && !std::fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default().trim().is_empty()
            {
                return Some(p);
            }
            todo.push(p);
        }
    }
    None
}

/// Plan, journal, inject and prove `fault` in effect; revert, mark it reverted and prove it
/// undone — as the runner does for a scenario's window.
async fn drill_fault(env: &firedrill::env::Env, fault: &firedrill::fault::FaultSpec) {
    use firedrill::fault::Expect;
    use firedrill::wait::Deadline;
    let journal = firedrill::journal::Journal::at(&env.run_dir);
    let undo = fault.plan(env, "kind-faults").await.unwrap_or_else(|e| panic!("{}: plan: {e:?}", fault.describe()));
    let seq = journal.plan(&env.run_id, "kind-faults", fault, &undo).unwrap();
    fault.inject(env, &undo).await.unwrap_or_else(|e| panic!("{}: inject: {e:?}", fault.describe()));
    fault.verify(env, &undo, Expect::InEffect, Deadline::after(Duration::from_secs(60))).await.unwrap_or_else(|e| panic!("{e}"));
    undo.revert(env).await.unwrap_or_else(|e| panic!("{}: revert: {e:?}", fault.describe()));
    journal.reverted(seq).unwrap();
    fault.verify(env, &undo, Expect::Reverted, Deadline::after(Duration::from_secs(180))).await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn up_gives_ready_nodes_and_hosts_faults_are_proven_then_undone_recover_reverts_and_down_leaves_nothing() {
    use firedrill::fault::{Expect, FaultSpec, Signal};
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let paths = common::paths();
    let own_state = tempfile::tempdir().unwrap();
    let before = volumes();
    let shared = common::shared_kind_run();
    let (state, dir) = match &shared {
        Some((dir, state)) => (state.clone(), dir.display().to_string()),
        None => {
            let up = firedrill(own_state.path(), &["up", "--backend", "kind", "--topology", "single", "--hosts", HOST]);
            let out = text(&up);
            assert!(up.status.success(), "firedrill up --backend kind: {out}");
            let dir = out.lines().find_map(|l| l.strip_prefix("tear down with: firedrill down ")).expect("up names its run directory").to_string();
            (own_state.path().to_path_buf(), dir)
        }
    };
    let run = firedrill::backend::kind::KindRun::attach(std::path::Path::new(&dir)).unwrap();
    let number = run.info.number;
    let host_index = run.info.hosts.iter().position(|h| h.name == HOST).unwrap_or_else(|| panic!("the kind run {dir} has no host {HOST}")) as u8;
    let env = firedrill::env::Env::from_kind(&paths, run).await.unwrap_or_else(|e| panic!("attaching to the kind run: {e}"));
    let outcome = async {
        let info = env.kind().unwrap().info.clone();
        tokio::task::spawn_blocking(move || check_single(&info)).await.unwrap();

        // A host at its planned address, running haproxy from its image.
        let lb = env.host(HOST).unwrap();
        assert_eq!(lb, firedrill::backend::addresses::kind_host(number, host_index));
        let cfg = env.run_dir.join(format!("hosts/{HOST}/haproxy.cfg"));
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(&cfg, format!("defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nfrontend f\n  bind {lb}:5556\n  default_backend b\nbackend b\n  server s 127.0.0.1:1\n")).unwrap();
        let argv = vec!["/usr/sbin/haproxy".to_string(), "-db".into(), "-f".into(), cfg.display().to_string()];
        // Adding the process (and every start of the host) ends when haproxy accepts connections.
        env.add_host_process(HOST, "haproxy", argv, vec![], &[5556]).await.unwrap_or_else(|e| panic!("haproxy on host {HOST}: {e}"));
        accepts(lb, 5556).await;

        // An extra API server in the control-plane node's namespace answers, and is gone once stopped.
        let extra = env.start_extra_apiserver("main").await.unwrap_or_else(|e| panic!("extra API server: {e}"));
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(env.cluster("main").unwrap().ca_pem.as_bytes()).unwrap())
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let url = format!("{}/readyz", extra.url);
        firedrill::wait::until(firedrill::wait::Deadline::after(Duration::from_secs(60)), &format!("{url} to answer ok"), || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.ok()?.status().is_success().then_some(()) }
        })
        .await
        .unwrap();
        extra.stop().await.unwrap();
        assert!(http.get(&url).send().await.is_err(), "{url} still answers after the server was stopped");
        assert!(std::fs::read_dir(env.run_dir.join("extra-apiservers")).unwrap().next().is_none(), "a pid file outlived its server");

        let faults = [
            FaultSpec::StopHost { host: HOST.into(), signal: Signal::Term },
            FaultSpec::Partition { between: vec!["main/control-plane".into(), HOST.into()] },
            FaultSpec::LoseNode { cluster: "main".into(), node: "worker-1".into() },
            FaultSpec::StopStorage { cluster: "main".into(), signal: Signal::Kill },
            FaultSpec::Partition { between: vec!["main/worker-1".into(), "main/worker-2".into()] },
        ];
        for f in &faults {
            drill_fault(&env, f).await;
        }
        accepts(lb, 5556).await;
        // A cluster stopped while runc in a node holds a pod container's cgroup frozen (it
        // does while it sets a container up): frozen processes never die, and without the
        // backend thawing them a plain `docker stop` of the node usually fails ("did not
        // receive an exit event"; not always, so the test does not depend on it).
        let worker = env.kind().unwrap().node("main", "worker-1").unwrap().container.clone();
        let frozen = tokio::task::spawn_blocking(move || freeze_a_pod_container(&worker)).await.unwrap();
        drill_fault(&env, &FaultSpec::StopCluster { cluster: "main".into() }).await;
        if let Some(scope) = frozen {
            let state = std::fs::read_to_string(scope.join("freezer.state")).unwrap_or_default();
            assert_ne!(state.trim(), "FROZEN", "{} is still frozen", scope.display());
        }
        // The API answers again at the address recorded at creation (kept across the restart).
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(env.cluster("main").unwrap().client.clone());
        assert_eq!(nodes.list(&Default::default()).await.unwrap().items.len(), 3);

        // A fault journaled and left in place, as a killed run leaves it: `firedrill recover`
        // (another process, from the journal and the run's plan alone) reverts it.
        let lost = FaultSpec::LoseNode { cluster: "main".into(), node: "worker-2".into() };
        let journal = firedrill::journal::Journal::at(&env.run_dir);
        let undo = lost.plan(&env, "kind-recover").await.unwrap();
        journal.plan(&env.run_id, "kind-recover", &lost, &undo).unwrap();
        lost.inject(&env, &undo).await.unwrap();
        lost.verify(&env, &undo, Expect::InEffect, firedrill::wait::Deadline::after(Duration::from_secs(60))).await.unwrap();
        let dir = env.run_dir.display().to_string();
        let recover = tokio::task::spawn_blocking(move || Command::new(common::firedrill()).args(["recover", &dir]).output().unwrap()).await.unwrap();
        assert!(recover.status.success(), "firedrill recover: {}", text(&recover));
        assert!(text(&recover).contains("reverted: restore node main/worker-2"), "{}", text(&recover));
        assert!(journal.pending().unwrap().is_empty());
        lost.verify(&env, &undo, Expect::Reverted, firedrill::wait::Deadline::after(Duration::from_secs(10))).await.unwrap_or_else(|e| panic!("{e}"));
        // The node is back, but the pods it ran restart only now (the workload's replica may
        // be one of them): the run below starts from a workload that serves, for 5 s in a row.
        workload_serving(&env).await;

        // The existing backend, through a kubeconfig context for this cluster (at its
        // address on the run's network): the API fault matches its table, the fault kind
        // it lacks is not runnable, and the Deployment it found (applied above with
        // kubectl, not by the run) is left as it was.
        let kubeconfig = env.run_dir.join("lab.kubeconfig");
        common::kubeconfig_with_contexts(&[("kind-lab", env.cluster("main").unwrap().admin_kubeconfig.as_path())], &kubeconfig);
        let report = env.run_dir.join("existing-report");
        let args: Vec<String> = [
            "run",
            "--backend",
            "existing",
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--context",
            "main=kind-lab",
            "--suites",
            "harness/tests/data/existing",
            "--snapshots",
            "harness/tests/data/snapshots",
            "--report",
            &report.display().to_string(),
            "existing-single",
        ]
        .map(String::from)
        .to_vec();
        let o = common::firedrill_in(&state, args).await;
        assert_eq!(o.status.code(), Some(2), "storage-stopped is not runnable there: {}", text(&o));
        assert!(text(&o).contains("context `kind-lab` (created by firedrill run"), "{}", text(&o));
        let v = common::verdicts(&report);
        assert_eq!(v["existing-single::workload-scaled-down"].0, "match", "{v:?}\n{}", text(&o));
        assert_eq!(v["existing-single::storage-stopped"].0, "not-runnable", "{v:?}");
        let workload = kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(env.cluster("main").unwrap().client.clone(), "default")
            .get("workload")
            .await
            .unwrap();
        assert_eq!(workload.spec.and_then(|s| s.replicas), Some(1), "the Deployment the run found stays, scaled back");

        // The identity suite's `instances-down` there, its hosts as pods of the cluster.
        let out = common::identity_on_existing(&state, &kubeconfig, "kind-lab", env.cluster("main").unwrap().client.clone()).await;
        assert!(out.contains("context `kind-lab` (created by firedrill run"), "{out}");
    };
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(outcome)).await;
    if shared.is_some() {
        // The run is ci/test.sh's, for tests/nightly.rs next; it takes it down.
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
        return;
    }
    let down = tokio::task::spawn_blocking(move || firedrill(&state, &["down", &dir])).await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(down.status.success(), "firedrill down: {}", text(&down));
    assert_nothing_left(number, &before);
}

/// The host the test puts its own haproxy on and faults (`lb` and `ldap` of the shared run
/// are the identity component's, for tests/nightly.rs).
const HOST: &str = "spare";

/// Wait (up to 120 s) until the workload Service of cluster main has a ready endpoint that
/// answers `/healthz`, five times in a row a second apart.
async fn workload_serving(env: &firedrill::env::Env) {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let api: kube::Api<EndpointSlice> = kube::Api::namespaced(env.cluster("main").unwrap().client.clone(), "default");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let deadline = firedrill::wait::Deadline::after(Duration::from_secs(120));
    let (mut streak, mut last) = (0, String::new());
    while streak < 5 {
        assert!(!deadline.passed(), "the workload of main does not serve after the lost node came back: {last}");
        let slices = api.list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=workload")).await.map(|l| l.items).unwrap_or_default();
        let ready: Vec<String> = slices
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .flat_map(|e| e.addresses.clone())
            .collect();
        let ok = match ready.first() {
            None => {
                last = "no ready endpoint".into();
                false
            }
            Some(ip) => match http.get(format!("http://{ip}:8080/healthz")).send().await {
                Ok(r) if r.status().is_success() => true,
                Ok(r) => {
                    last = format!("{ip}: HTTP {}", r.status());
                    false
                }
                Err(e) => {
                    last = format!("{ip}: {e}");
                    false
                }
            },
        };
        streak = if ok { streak + 1 } else { 0 };
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `ip:port` accepts a connection now, not after a wait.
async fn accepts(ip: std::net::Ipv4Addr, port: u16) {
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect((ip, port))).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("{ip}:{port} refuses connections: {e}"),
        Err(_) => panic!("{ip}:{port} does not answer within 1 s"),
    }
}
