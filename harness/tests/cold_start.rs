//! The cold-start probe ("starting an API server that needs the issuer") on a real
//! `single` run with the identity component (needs root and `make setup`). Every attempt
//! must be answered by a kube-apiserver it started itself, and none may outlive its
//! attempt.

use std::sync::Arc;
use std::time::Duration;

use firedrill::env::Env;
use firedrill::model::{Dur, Outcome};
use firedrill::probe::{self, ProbeSpec};
use firedrill::wait::{self, Deadline};

mod common;

/// kube-apiserver processes in the run's cgroup tree, as `pgrep` would count them there.
fn apiservers(env: &Env) -> usize {
    let run = env.local().expect("local backend");
    firedrill::backend::local::process::cgroup_pids(&run.info.cgroup)
        .iter()
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e.file_name().is_some_and(|n| n == "kube-apiserver")))
        .count()
}

async fn extras_running(env: &Env) -> Vec<String> {
    env.processes().await.unwrap().into_iter().filter(|(n, running)| *running && n.contains("kube-apiserver-extra")).map(|(n, _)| n).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cold_start_attempts_own_their_api_servers() {
    common::on_suite_env("identity", |env, comps| async move { checks(&env, &comps).await }).await;
}

async fn checks(env: &Arc<Env>, comps: &[firedrill::component::Component]) {
    let deployed = firedrill::deploy::deploy(env, comps).await.unwrap_or_else(|e| panic!("{e}"));
    let spec = ProbeSpec::ApiserverColdStart { user: "local".into(), cluster: "main".into(), timeout: Dur::secs(3) };
    let probe = probe::build(&spec, env, &deployed).unwrap();
    probe.prepare().await.unwrap();
    assert_eq!(apiservers(env), 1, "one kube-apiserver before any attempt");

    // A whole attempt: its own server answers, and is gone afterwards.
    let (outcome, detail) = probe.attempt().await;
    assert_eq!(outcome, Outcome::Ok, "{detail:?}");
    assert!(extras_running(env).await.is_empty());
    assert_eq!(apiservers(env), 1, "the attempt's server is gone");

    // Regression: an attempt cut off mid-start (by its deadline, or by the sampler when
    // sampling stops) left its kube-apiserver running, and a later attempt on the same
    // port was answered by that old, already-warm server.
    let attempt = tokio::spawn({
        let probe = probe.clone();
        async move { probe.attempt().await }
    });
    wait::until(Deadline::after(Duration::from_secs(30)), "the attempt to start its kube-apiserver", || async {
        (!extras_running(env).await.is_empty()).then_some(())
    })
    .await
    .unwrap();
    attempt.abort();
    assert!(attempt.await.unwrap_err().is_cancelled());
    wait::until(Deadline::after(Duration::from_secs(10)), "no extra kube-apiserver to be left by the cancelled attempt", || async {
        (extras_running(env).await.is_empty() && apiservers(env) == 1).then_some(())
    })
    .await
    .unwrap();

    // Two servers at once never share a port, and stopping all of them leaves none.
    let a = env.start_extra_apiserver("main").await.unwrap();
    let b = env.start_extra_apiserver("main").await.unwrap();
    assert_ne!(a.port, b.port, "a port already in use is never handed out again");
    let stopped = env.stop_extra_apiservers().await.unwrap();
    assert_eq!(stopped.len(), 2, "{stopped:?}");
    drop((a, b));
    assert_eq!(apiservers(env), 1);
}
