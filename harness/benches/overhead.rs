//! What sampling costs the harness itself: ten operations of the identity document sampled
//! at 10 Hz each for `FIREDRILL_BENCH_SECONDS` (default 30) on a real `single` environment.
//! Reported: the harness process's CPU (share of one core) and resident memory, the
//! attempts it really made per second, and — apart — the memory of everything the
//! environment runs.

mod common;

use std::time::{Duration, Instant};

use common::Row;
use firedrill::probe::ProbeSpec;
use firedrill::probe::sampler::{Sampled, Sampler};
use firedrill::runner::Session;

fn main() {
    let seconds: u64 = std::env::var("FIREDRILL_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let rows = common::with_bench_identity(async |session| measure(session, Duration::from_secs(seconds)).await);
    common::write("overhead", &rows);
}

async fn measure(session: &Session, span: Duration) -> Vec<Row> {
    let env = session.env.clone();
    let specs = vec![
        ProbeSpec::OidcLogin { user: "local".into() },
        ProbeSpec::OidcLogin { user: "ldap".into() },
        ProbeSpec::TokenRefresh { user: "local".into() },
        ProbeSpec::TokenRefresh { user: "ldap".into() },
        ProbeSpec::CachedKeyAuth { user: "local".into(), cluster: "main".into() },
        ProbeSpec::CachedKeyAuth { user: "ldap".into(), cluster: "main".into() },
        ProbeSpec::KeyRotation { allowed_overdue: firedrill::model::Dur::secs(35) },
        ProbeSpec::BreakGlass { cluster: "main".into() },
        ProbeSpec::IssuerEndpoints,
        ProbeSpec::IssuerEndpoints,
    ];
    let mut ops = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let p = firedrill::probe::build(spec, &env, &session.deployed).expect("probe");
        p.prepare().await.expect("prepare");
        ops.push(Sampled { id: format!("op{i}"), probe: p, interval: Duration::from_millis(100), concurrency: 1, timeout: Duration::from_secs(30) });
    }
    let sampler = Sampler::start(ops);
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, t0, n0) = (common::own_cpu_seconds(), Instant::now(), count(&sampler));
    let mut rss_max = 0;
    let mut cluster_kib = 0;
    let run = env.local().expect("local backend");
    while t0.elapsed() < span {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_max = rss_max.max(common::rss(std::process::id() as i32).0);
        let mut pids = firedrill::backend::local::process::cgroup_pids(&run.info.cgroup);
        if let Some(d) = std::fs::read_to_string(run.info.dir.join("daemon.pid")).ok().and_then(|s| s.trim().parse().ok()) {
            pids.push(d);
        }
        cluster_kib = cluster_kib.max(pids.iter().map(|p| common::rss(*p).0).sum::<u64>());
    }
    let (cpu1, wall, n1) = (common::own_cpu_seconds(), t0.elapsed().as_secs_f64(), count(&sampler));
    let _ = sampler.stop().await;
    let rate = (n1 - n0) as f64 / wall;
    println!("{} attempts in {wall:.1} s ({rate:.1}/s across 10 operations); harness CPU {:.1} s", n1 - n0, cpu1 - cpu0);
    vec![
        Row::new(
            "Harness CPU while sampling 10 operations at 10 Hz",
            100.0 * (cpu1 - cpu0) / wall,
            "% of a core",
            Some(("<=", 10.0)),
            format!("{rate:.0} attempts/s made (100 asked)"),
        ),
        Row::new("Harness RSS while sampling", rss_max as f64 / 1024.0, "MiB", Some(("<=", 100.0)), "the harness process only"),
        Row::new("Environment RSS (single + identity), apart", cluster_kib as f64 / 1024.0, "MiB", None, "every process the run started, and its daemon"),
    ]
}

fn count(s: &Sampler) -> usize {
    s.samples().values().map(|v| v.len()).sum()
}
