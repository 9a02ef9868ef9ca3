//! Benchmark of the kind backend's bring-up against the local backend's: time for
//! `firedrill up --backend kind` (network, `kind create cluster`, every node Ready, the
//! components' images loaded) with the
//! offline node image, over `FIREDRILL_BENCH_RUNS` runs (default 3), beside the local `up`
//! median the `up` benchmark wrote for the same topology (`target/bench/up-<topology>.json`).
//! `make bench` (or `cargo bench -p firedrill --bench kind_up`); `FIREDRILL_BENCH_TOPOLOGY`
//! (default `single`).

mod common;

use std::time::Instant;

use common::{Row, median};
use firedrill::backend::kind::KindRun;
use firedrill::fixtures::Paths;
use firedrill::topology::Topology;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let topology = std::env::var("FIREDRILL_BENCH_TOPOLOGY").unwrap_or_else(|_| "single".into());
    let runs: usize = std::env::var("FIREDRILL_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let paths = Paths::at(common::root());
    let topo = Topology::load(&paths.fixtures, &topology).unwrap();
    let firedrill = std::path::PathBuf::from(env!("CARGO_BIN_EXE_firedrill"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut ups = Vec::new();
    for i in 1..=runs {
        let took = rt.block_on(async {
            let start = Instant::now();
            let run = KindRun::up(&paths, &topo, &[], &firedrill).await.expect("up --backend kind");
            let took = start.elapsed().as_secs_f64();
            run.down().await.expect("down");
            took
        });
        println!("run {i}: kind up {took:.2} s");
        ups.push(took);
    }
    let kind = median(&ups);
    let spread = format!("{runs} runs, {:.2}–{:.2} s", ups.iter().cloned().fold(f64::MAX, f64::min), ups.iter().cloned().fold(0.0, f64::max));
    let mut rows = vec![Row::new(&format!("kind `up` {topology}: every node Ready, components' images loaded"), kind, "s", None, spread)];
    let local = std::fs::read_to_string(common::out_dir().join(format!("up-{topology}.json")))
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<Row>>(&t).ok())
        .and_then(|rows| rows.into_iter().find(|r| r.figure.starts_with("`up`") && !r.unmeasured));
    let figure = format!("kind `up` / local `up`, {topology}");
    rows.push(match local {
        Some(l) => Row::new(&figure, kind / l.measured, "×", Some((">=", 4.0)), format!("kind {kind:.2} s, local {:.2} s", l.measured)),
        None => Row::unmeasured(&figure, "×", Some((">=", 4.0)), format!("no local `up` {topology} figure in target/bench/ (run the `up` benchmark first)")),
    });
    common::write(&format!("kind-up-{topology}"), &rows);
}
