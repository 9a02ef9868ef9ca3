//! How exactly does firedrill measure an outage? The harness holds a blackhole in front of
//! the identity load balancer (every packet to and from host `lb` dropped) for exactly
//! 3.000 s, `FIREDRILL_BENCH_TRIALS` times (default 20), while HTTP-level operations are
//! sampled every 50 ms (attempts abandoned after 300 ms, up to 8 in flight). Each
//! operation's outage is read from its samples the way a person reads a timeline: down
//! from midway between its last working attempt and its first failing one, up again
//! midway between its last failing attempt and the first working one. Reported: the
//! error against the fault's known length (median, p95, max) and each operation's
//! resolution (interval plus attempt duration).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{Row, median, percentile};
use firedrill::backend::BackendKind;
use firedrill::fault::FaultSpec;
use firedrill::fixtures::Paths;
use firedrill::model::{Outcome, Sample};
use firedrill::probe::ProbeSpec;
use firedrill::probe::sampler::{Sampled, Sampler};
use firedrill::runner::{Session, Target};

const HOLD: Duration = Duration::from_millis(3_000);
const INTERVAL: Duration = Duration::from_millis(50);
const TIMEOUT: Duration = Duration::from_millis(300);

/// The outage an operation's samples show, from the scenario's clock: (down, up).
fn outage(samples: &[Sample], from: Duration) -> Option<(Duration, Duration)> {
    let s: Vec<&Sample> = samples.iter().filter(|s| s.at >= from).collect();
    let first_bad = s.iter().position(|x| x.outcome != Outcome::Ok)?;
    let last_bad = s.iter().rposition(|x| x.outcome != Outcome::Ok)?;
    let before = s[..first_bad].iter().rev().find(|x| x.outcome == Outcome::Ok)?;
    let after = s[last_bad + 1..].iter().find(|x| x.outcome == Outcome::Ok)?;
    let mid = |a: Duration, b: Duration| a + (b - a) / 2;
    Some((mid(before.at, s[first_bad].at), mid(s[last_bad].at, after.at)))
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let trials: usize = std::env::var("FIREDRILL_BENCH_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let root = common::root();
    let paths = Paths::at(&root);
    let suite = firedrill::suite::load_file(&root.join("harness/benches/data/bench-identity.yaml"), &paths.fixtures).expect("bench suite");
    let firedrill = PathBuf::from(env!("CARGO_BIN_EXE_firedrill"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rows = rt.block_on(async {
        let quiet: firedrill::runner::Emit = Arc::new(|_| {});
        let session = Session::open(&paths, Target::New(BackendKind::Local), &suite, &firedrill, quiet, false).await.expect("environment");
        let result = measure(&session, trials).await;
        session.close().await.expect("teardown");
        result
    });
    common::write("mttr", &rows);
}

async fn measure(session: &Session, trials: usize) -> Vec<Row> {
    let env = session.env.clone();
    let ops: Vec<(&str, ProbeSpec)> = vec![
        ("Discovery and keys through the load balancer", ProbeSpec::IssuerEndpoints),
        ("Console login, local user", ProbeSpec::OidcLogin { user: "local".into() }),
        ("Token refresh, local user", ProbeSpec::TokenRefresh { user: "local".into() }),
    ];
    let mut probes = Vec::new();
    for (name, spec) in &ops {
        let p = firedrill::probe::build(spec, &env, &session.deployed).expect("probe");
        p.prepare().await.expect("prepare");
        probes.push((*name, p));
    }
    let fault = FaultSpec::UnreachableHost { host: "lb".into() };
    let journal = firedrill::journal::Journal::at(&env.run_dir);
    let mut errors: Vec<Vec<f64>> = vec![Vec::new(); probes.len()];
    let mut resolution: Vec<Vec<f64>> = vec![Vec::new(); probes.len()];
    for trial in 1..=trials {
        let sampler = Sampler::start(
            probes.iter().map(|(name, p)| Sampled { id: name.to_string(), probe: p.clone(), interval: INTERVAL, concurrency: 8, timeout: TIMEOUT }).collect(),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let undo = fault.plan(&env, &format!("bench_mttr_{trial}")).await.expect("plan");
        let seq = journal.plan(&env.run_id, "bench::mttr", &fault, &undo).expect("journal");
        let before = sampler.now();
        fault.inject(&env, &undo).await.expect("inject");
        let held_from = sampler.now();
        tokio::time::sleep(HOLD).await;
        let held_to = sampler.now();
        undo.revert(&env).await.expect("revert");
        let after = sampler.now();
        journal.reverted(seq).expect("journal");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let samples = sampler.stop().await.expect("no probe panicked");
        // The blackhole was in place from some moment of the inject to some moment of the
        // revert: its length is known to within those two commands' durations.
        let known = (held_to - held_from).as_secs_f64() + ((held_from - before) + (after - held_to)).as_secs_f64() / 2.0;
        let mut line = format!("trial {trial}: blackhole {known:.3} s (±{:.3} s for nft);", ((held_from - before) + (after - held_to)).as_secs_f64() / 2.0);
        for (i, (name, _)) in probes.iter().enumerate() {
            let s = &samples[*name];
            match outage(s, Duration::from_millis(500)) {
                Some((down, up)) => {
                    let measured = (up - down).as_secs_f64();
                    errors[i].push((measured - known) * 1000.0);
                    let took: Vec<f64> = s.iter().filter(|x| x.outcome == Outcome::Ok).map(|x| x.took.as_secs_f64()).collect();
                    resolution[i].push((INTERVAL.as_secs_f64() + median(&took)) * 1000.0);
                    line.push_str(&format!(" {name} {measured:.3} s;"));
                }
                None => line.push_str(&format!(" {name}: no outage seen;")),
            }
        }
        println!("{line}");
    }
    let mut rows = Vec::new();
    for (i, (name, _)) in probes.iter().enumerate() {
        let abs: Vec<f64> = errors[i].iter().map(|e| e.abs()).collect();
        let n = errors[i].len();
        rows.push(Row::new(
            &format!("MTTR error, {name}: median |error|"),
            median(&abs),
            "ms",
            None,
            format!("{n} trials of a 3.000 s blackhole; signed median {:+.0} ms", median(&errors[i])),
        ));
        rows.push(Row::new(
            &format!("MTTR error, {name}: p95 |error|"),
            percentile(&abs, 0.95),
            "ms",
            Some(("<=", 250.0)),
            format!("max {:.0} ms", abs.iter().cloned().fold(0.0, f64::max)),
        ));
        rows.push(Row::new(&format!("MTTR resolution, {name}"), median(&resolution[i]), "ms", Some(("<=", 100.0)), "interval 50 ms plus the median attempt"));
    }
    rows
}
