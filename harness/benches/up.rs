//! Benchmark of the local backend: time for `up` to return (every API server healthy,
//! every node Ready), and memory of everything the run started. Not a timed test: it
//! reports medians. `make bench` (or `cargo bench -p firedrill --bench up`);
//! `FIREDRILL_BENCH_TOPOLOGY` (default `single`) and `FIREDRILL_BENCH_RUNS` (default 5).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use firedrill::backend::local::{self, LocalRun, UpOptions};
use firedrill::fixtures::Paths;
use firedrill::topology::Topology;

/// Resident memory of a process, and its peak, in KiB.
fn rss(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)?.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()).unwrap_or(0);
    (field("VmRSS:"), field("VmHWM:"))
}

fn pids(run: &LocalRun) -> Vec<i32> {
    let mut p = local::process::cgroup_pids(&run.info.cgroup);
    if let Some(d) = std::fs::read_to_string(run.info.dir.join("daemon.pid")).ok().and_then(|s| s.trim().parse().ok()) {
        p.push(d);
    }
    p
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `cargo bench` passes --bench; nothing else is configurable on the command line.
    let topology = std::env::var("FIREDRILL_BENCH_TOPOLOGY").unwrap_or_else(|_| "single".into());
    let runs: usize = std::env::var("FIREDRILL_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let paths = Paths::at(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    let topo = Topology::load(&paths.fixtures, &topology).unwrap();
    let firedrill = PathBuf::from(env!("CARGO_BIN_EXE_firedrill"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (mut ups, mut steady, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=runs {
        let (took, now_mib, peak_mib) = rt.block_on(async {
            let start = Instant::now();
            let run = LocalRun::up(&paths, UpOptions { topology: &topo, hosts: vec![], firedrill: firedrill.clone() }).await.expect("up");
            let took = start.elapsed();
            // Ten seconds of settling (controllers start after `up` returns), sampled.
            let mut now_kib = 0;
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                now_kib = now_kib.max(pids(&run).iter().map(|p| rss(*p).0).sum::<u64>());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let peak_kib: u64 = pids(&run).iter().map(|p| rss(*p).1).sum();
            run.down().await.expect("down");
            (took, now_kib as f64 / 1024.0, peak_kib as f64 / 1024.0)
        });
        println!("run {i}: up {:.2} s, RSS {:.0} MiB (sum of per-process peaks {:.0} MiB)", took.as_secs_f64(), now_mib, peak_mib);
        ups.push(took.as_secs_f64());
        steady.push(now_mib);
        peaks.push(peak_mib);
    }
    println!(
        "topology {topology}, {runs} runs: median up {:.2} s (min {:.2}, max {:.2}); median RSS {:.0} MiB; median sum of peaks {:.0} MiB",
        median(ups.clone()),
        ups.iter().cloned().fold(f64::MAX, f64::min),
        ups.iter().cloned().fold(0.0, f64::max),
        median(steady),
        median(peaks)
    );
}
