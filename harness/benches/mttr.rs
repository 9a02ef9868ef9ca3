//! How exactly does firedrill measure an outage? The harness holds a blackhole in front of
//! the identity load balancer (every packet to and from host `lb` dropped) for exactly
//! 3.000 s, `FIREDRILL_BENCH_TRIALS` times (default 20), while operations are sampled: the
//! HTTP-level one (discovery and keys) every 50 ms, abandoned after 300 ms, up to 6 in
//! flight; the login and refresh flows (several requests, and for a login dex's bcrypt
//! check of the password) every 200 ms, abandoned after 1 s, up to 2 logins in flight and
//! one refresh (each rotates the token the next needs) — at
//! 50 ms a login flow alone saturates both cores and nothing measures anything. Each
//! operation's outage is read from its samples the way a person reads a timeline: down
//! from midway between its last working attempt and its first failing one, up again
//! midway between its last failing attempt and the first working one. Reported: the
//! error against the fault's known length (median, p95, max) and each operation's
//! resolution (interval plus attempt duration).

mod common;

use std::time::Duration;

use common::{Row, median, percentile};
use firedrill::fault::FaultSpec;
use firedrill::model::{Outcome, Sample};
use firedrill::probe::ProbeSpec;
use firedrill::probe::sampler::{Sampled, Sampler};
use firedrill::runner::Session;

const HOLD: Duration = Duration::from_millis(3_000);

/// How an operation is sampled: interval, attempts in flight, timeout.
struct Pace {
    interval: Duration,
    concurrency: usize,
    timeout: Duration,
}

const HTTP: Pace = Pace { interval: Duration::from_millis(50), concurrency: 6, timeout: Duration::from_millis(300) };
const FLOW: Pace = Pace { interval: Duration::from_millis(200), concurrency: 2, timeout: Duration::from_secs(1) };
/// A refresh rotates the token the next one needs: attempts cannot overlap (the probe holds
/// the token while it asks), so one at a time.
const REFRESH: Pace = Pace { concurrency: 1, ..FLOW };

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
    let trials: usize = std::env::var("FIREDRILL_BENCH_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let rows = common::with_bench_identity(async |session| measure(session, trials).await);
    common::write("mttr", &rows);
}

async fn measure(session: &Session, trials: usize) -> Vec<Row> {
    let env = session.env.clone();
    let ops: Vec<(&str, ProbeSpec, Pace)> = vec![
        ("Discovery and keys through the load balancer", ProbeSpec::IssuerEndpoints, HTTP),
        ("Console login, local user", ProbeSpec::OidcLogin { user: "local".into() }, FLOW),
        ("Token refresh, local user", ProbeSpec::TokenRefresh { user: "local".into() }, REFRESH),
    ];
    let mut probes = Vec::new();
    for (name, spec, pace) in ops {
        let p = firedrill::probe::build(&spec, &env, &session.deployed).expect("probe");
        p.prepare().await.expect("prepare");
        probes.push((name, p, pace));
    }
    let fault = FaultSpec::UnreachableHost { host: "lb".into() };
    let journal = firedrill::journal::Journal::at(&env.run_dir);
    let mut errors: Vec<Vec<f64>> = vec![Vec::new(); probes.len()];
    let mut resolution: Vec<Vec<f64>> = vec![Vec::new(); probes.len()];
    for trial in 1..=trials {
        let sampler = Sampler::start(
            probes
                .iter()
                .map(|(name, p, pace)| Sampled {
                    id: name.to_string(),
                    probe: p.clone(),
                    interval: pace.interval,
                    concurrency: pace.concurrency,
                    timeout: pace.timeout,
                })
                .collect(),
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
        {
            // Every trial's timelines, to read when a figure looks wrong.
            let mut text = format!(
                "blackhole from {:.3} to {:.3} (inject began {:.3}, revert ended {:.3})\n",
                held_from.as_secs_f64(),
                held_to.as_secs_f64(),
                before.as_secs_f64(),
                after.as_secs_f64()
            );
            for (name, _, _) in &probes {
                text.push_str(&format!("{name}\n"));
                for x in samples[*name].iter().filter(|x| x.at + Duration::from_secs(1) >= before && x.at <= after + Duration::from_secs(1)) {
                    text.push_str(&format!(
                        "  start {:.3} took {:.3} {:?} {}\n",
                        x.at.as_secs_f64(),
                        x.took.as_secs_f64(),
                        x.outcome,
                        x.detail.as_deref().unwrap_or("")
                    ));
                }
            }
            let _ = std::fs::write(common::out_dir().join(format!("mttr-trial-{trial}.txt")), text);
        }
        let mut line = format!("trial {trial}: blackhole {known:.3} s (±{:.3} s for nft);", ((held_from - before) + (after - held_to)).as_secs_f64() / 2.0);
        for (i, (name, _, pace)) in probes.iter().enumerate() {
            let s = &samples[*name];
            match outage(s, Duration::from_millis(500)) {
                Some((down, up)) => {
                    let measured = (up - down).as_secs_f64();
                    errors[i].push((measured - known) * 1000.0);
                    let took: Vec<f64> = s.iter().filter(|x| x.outcome == Outcome::Ok).map(|x| x.took.as_secs_f64()).collect();
                    resolution[i].push((pace.interval.as_secs_f64() + median(&took)) * 1000.0);
                    line.push_str(&format!(" {name} {measured:.3} s;"));
                }
                None => line.push_str(&format!(" {name}: no outage seen;")),
            }
        }
        println!("{line}");
    }
    let mut rows = Vec::new();
    for (i, (name, _, pace)) in probes.iter().enumerate() {
        let n = errors[i].len();
        let median_name = format!("MTTR error, {name}: median |error|");
        let p95_name = format!("MTTR error, {name}: p95 |error|");
        let res_name = format!("MTTR resolution, {name}");
        if n == 0 {
            let why = format!("no outage seen in {trials} trials");
            rows.push(Row::unmeasured(&median_name, "ms", None, why.clone()));
            rows.push(Row::unmeasured(&p95_name, "ms", Some(("<=", 250.0)), why.clone()));
            rows.push(Row::unmeasured(&res_name, "ms", Some(("<=", 100.0)), why));
            continue;
        }
        let abs: Vec<f64> = errors[i].iter().map(|e| e.abs()).collect();
        rows.push(Row::new(
            &median_name,
            median(&abs),
            "ms",
            None,
            format!("{n} of {trials} trials of a 3.000 s blackhole; signed median {:+.0} ms", median(&errors[i])),
        ));
        rows.push(Row::new(&p95_name, percentile(&abs, 0.95), "ms", Some(("<=", 250.0)), format!("max {:.0} ms", abs.iter().cloned().fold(0.0, f64::max))));
        rows.push(Row::new(
            &res_name,
            median(&resolution[i]),
            "ms",
            Some(("<=", 100.0)),
            format!("interval {} ms plus the median attempt", pace.interval.as_millis()),
        ));
    }
    rows
}
