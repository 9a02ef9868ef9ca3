//! Benchmark of the local backend: time for `up` to return (every API server healthy,
//! every node Ready), memory of everything the run started, and the floor no local
//! backend can beat: the upstream binaries' own start-up, each measured alone on the same
//! run (etcd from start to healthy; kube-apiserver from start to ready, its etcd up).
//! Not a timed test: it reports medians. `make bench` (or `cargo bench -p firedrill
//! --bench up`); `FIREDRILL_BENCH_TOPOLOGY` (default `single`), `FIREDRILL_BENCH_RUNS`
//! (default 5).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Row, median};
use firedrill::backend::local::{self, LocalRun, UpOptions, rpc::Request};
use firedrill::fixtures::Paths;
use firedrill::topology::Topology;
use firedrill::wait::{self, Deadline};

fn pids(run: &LocalRun) -> Vec<i32> {
    let mut p = local::process::cgroup_pids(&run.info.cgroup);
    if let Some(d) = std::fs::read_to_string(run.info.dir.join("daemon.pid")).ok().and_then(|s| s.trim().parse().ok()) {
        p.push(d);
    }
    p
}

/// etcd alone: stopped, then timed from start to healthy. Then kube-apiserver alone:
/// stopped, then timed from start to `/readyz` answering 200.
async fn floor(run: &LocalRun) -> (f64, f64) {
    let c = run.info.clusters[0].clone();
    run.call(Request::StopStorage { cluster: c.name.clone(), kill: false }).await.expect("stop etcd");
    let t = Instant::now();
    run.call(Request::StartStorage { cluster: c.name.clone() }).await.expect("start etcd");
    let etcd = t.elapsed().as_secs_f64();
    let name = format!("{}/kube-apiserver-{}", c.name, c.apiserver_nodes[0]);
    run.call(Request::StopProcess { name: name.clone(), how: Default::default() }).await.expect("stop kube-apiserver");
    let http = local::controlplane::admin_http(&c).expect("admin client");
    let url = format!("https://{}:6443/readyz", c.node(&c.apiserver_nodes[0]).expect("node").ip);
    let t = Instant::now();
    run.call(Request::StartProcess { name }).await.expect("start kube-apiserver");
    wait::until(Deadline::after(Duration::from_secs(60)), "kube-apiserver to be ready", || {
        let (http, url) = (http.clone(), url.clone());
        async move { http.get(&url).send().await.ok()?.status().is_success().then_some(()) }
    })
    .await
    .expect("kube-apiserver ready");
    (etcd, t.elapsed().as_secs_f64())
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let topology = std::env::var("FIREDRILL_BENCH_TOPOLOGY").unwrap_or_else(|_| "single".into());
    let runs: usize = std::env::var("FIREDRILL_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let paths = Paths::at(common::root());
    let topo = Topology::load(&paths.fixtures, &topology).unwrap();
    let firedrill = PathBuf::from(env!("CARGO_BIN_EXE_firedrill"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (mut ups, mut steady, mut etcds, mut apis) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 1..=runs {
        let (took, now_mib, etcd, api) = rt.block_on(async {
            let start = Instant::now();
            let run = LocalRun::up(&paths, UpOptions { topology: &topo, hosts: vec![], firedrill: firedrill.clone() }).await.expect("up");
            let took = start.elapsed();
            // Ten seconds of settling (controllers start after `up` returns), sampled.
            let mut now_kib = 0;
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                now_kib = now_kib.max(pids(&run).iter().map(|p| common::rss(*p).0).sum::<u64>());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let (etcd, api) = floor(&run).await;
            run.down().await.expect("down");
            (took, now_kib as f64 / 1024.0, etcd, api)
        });
        println!("run {i}: up {:.2} s, RSS {:.0} MiB; alone: etcd {etcd:.2} s, kube-apiserver {api:.2} s", took.as_secs_f64(), now_mib);
        ups.push(took.as_secs_f64());
        steady.push(now_mib);
        etcds.push(etcd);
        apis.push(api);
    }
    let (up, fl) = (median(&ups), median(&etcds) + median(&apis));
    let target = match topology.as_str() {
        "single" => Some(("<=", 3.0)),
        "multi" => Some(("<=", 5.0)),
        _ => None,
    };
    let spread = format!("{runs} runs, {:.2}–{:.2} s", ups.iter().cloned().fold(f64::MAX, f64::min), ups.iter().cloned().fold(0.0, f64::max));
    let rows = vec![
        Row::new(&format!("`up` {topology} to every node Ready"), up, "s", target, spread),
        Row::new(&format!("floor: etcd alone, start to healthy ({topology})"), median(&etcds), "s", None, "upstream start-up, not ours"),
        Row::new(&format!("floor: kube-apiserver alone, start to ready ({topology})"), median(&apis), "s", None, "upstream start-up, not ours"),
        Row::new(&format!("`up` {topology} / floor (etcd + kube-apiserver)"), up / fl, "×", None, format!("floor {fl:.2} s")),
        Row::new(&format!("RSS of everything `up` {topology} started"), median(&steady), "MiB", None, "median over runs"),
    ];
    common::write(&format!("up-{topology}"), &rows);
}
