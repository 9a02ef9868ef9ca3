//! Post-checks of the documents' recovery claims, run after every operation recovered.
//!
//! - `queued-and-applied`: the last management change accepted reaches every replica.
//! - `converged`: every replica's Clusters and ClusterPolicies equal the directory's.
//! - `nothing-lost`: every Cluster and ClusterPolicy of the directory before the fault is
//!   still there, the last accepted change too, and each replica's metrics for the fault
//!   window reached the receiver (queued samples arrive late, not never).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::deploy::Deployed;
use crate::deploy::directory::{Registry, converged_diff, registry};
use crate::env::Env;
use crate::probe::management::GENERATION;
use crate::suite::Claim;
use crate::wait::Deadline;

/// How long a claim may take to come true after recovery.
const SETTLE: Duration = Duration::from_secs(60);
/// Share of a replica's expected metric samples that must reach the receiver.
const METRICS_KEPT: f64 = 0.95;

#[derive(Clone, Debug, Serialize)]
pub struct ClaimResult {
    pub claim: Claim,
    pub holds: bool,
    pub detail: String,
}

/// State taken before the fault, to compare with after.
#[derive(Default)]
pub struct Before {
    clusters: BTreeSet<String>,
    policies: BTreeSet<String>,
}

pub async fn before(env: &Env, deployed: &Deployed) -> Result<Before, String> {
    let Some(d) = &deployed.directory else { return Ok(Before::default()) };
    let (c, p) = registry(env.cluster(&d.directory).map_err(|e| e.to_string())?).await?;
    Ok(Before { clusters: c.into_keys().collect(), policies: p.into_keys().collect() })
}

/// The fault's span, in wall-clock time (for the metrics receiver) and monotonic time.
pub struct Window {
    pub from: SystemTime,
    pub to: SystemTime,
    pub from_i: Instant,
    pub to_i: Instant,
}

pub async fn check(claim: Claim, env: &Env, deployed: &Deployed, before: &Before, w: &Window) -> Result<ClaimResult, String> {
    let d = deployed.directory.as_ref().ok_or_else(|| format!("claim `{}` needs the directory component", claim.words()))?;
    let deadline = Deadline::after(SETTLE);
    let started = Instant::now();
    let (holds, detail) = match claim {
        Claim::Converged => loop {
            let diff = converged_diff(env, d).await;
            match diff {
                Ok(v) if v.is_empty() => break (true, format!("every replica equals the directory after {:.1} s", started.elapsed().as_secs_f64())),
                Ok(v) if deadline.passed() => break (false, v.join("; ")),
                Err(e) if deadline.passed() => break (false, e),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        },
        Claim::QueuedAndApplied => {
            let accepted = d.accepted.lock().expect("accepted").clone();
            let during = accepted.iter().filter(|(_, at)| *at >= w.from_i && *at <= w.to_i).count();
            match accepted.iter().map(|(g, _)| *g).max() {
                None => (false, "no management change was accepted".into()),
                Some(_) if during == 0 => (false, "no management change was accepted during the fault".into()),
                Some(last) => loop {
                    let missing = replicas_without(env, d, last).await;
                    match missing {
                        Ok(m) if m.is_empty() => {
                            break (
                                true,
                                format!(
                                    "{during} change(s) accepted during the fault; the last (generation {last}) on every replica after {:.1} s",
                                    started.elapsed().as_secs_f64()
                                ),
                            );
                        }
                        Ok(m) if deadline.passed() => break (false, format!("generation {last} not on: {}", m.join(", "))),
                        Err(e) if deadline.passed() => break (false, e),
                        _ => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                },
            }
        }
        Claim::NothingLost => {
            let (c, p) = registry(env.cluster(&d.directory).map_err(|e| e.to_string())?).await?;
            let mut lost: Vec<String> = before.clusters.iter().filter(|n| !c.contains_key(*n)).map(|n| format!("Cluster {n}")).collect();
            lost.extend(before.policies.iter().filter(|n| !p.contains_key(*n)).map(|n| format!("ClusterPolicy {n}")));
            let last = d.accepted.lock().expect("accepted").iter().map(|(g, _)| *g).max();
            if let Some(g) = last
                && !holds_generation(&c, g)
            {
                lost.push(format!("the last accepted change (generation {g}; the directory holds {})", generation_held(&c)));
            }
            let mut notes = Vec::new();
            if let Some(m) = &deployed.metrics {
                for cluster in &m.collectors {
                    match metrics_kept(m, cluster, w, &deadline).await {
                        Ok((kept, expected)) if kept as f64 >= METRICS_KEPT * expected as f64 => {
                            notes.push(format!("{cluster}: {kept}/{expected} metric samples"))
                        }
                        Ok((kept, expected)) => {
                            lost.push(format!("{cluster}: only {kept} of {expected} metric samples of the fault window reached the receiver"))
                        }
                        Err(e) => lost.push(format!("{cluster}: metrics: {e}")),
                    }
                }
            }
            if lost.is_empty() { (true, format!("nothing missing; {}", notes.join(", "))) } else { (false, lost.join("; ")) }
        }
    };
    Ok(ClaimResult { claim, holds, detail })
}

async fn replicas_without(env: &Env, d: &crate::deploy::directory::Directory, g: u64) -> Result<Vec<String>, String> {
    let mut missing = Vec::new();
    for r in &d.replicas {
        let (c, _) = registry(env.cluster(r).map_err(|e| e.to_string())?).await?;
        if !holds_generation(&c, g) {
            missing.push(format!("{r} (holds {})", generation_held(&c)));
        }
    }
    Ok(missing)
}

/// Whether a copy of the registry holds management change `g`: a Cluster annotated with
/// generation `g` or a later one. Generations only grow, and each change replaces the one
/// annotation, so a later generation carries `g`'s change with it. A later one can exist
/// that was never seen accepted: the write of an attempt cut off when sampling stopped, or
/// whose response was lost, still lands (CI, central-control-plane-fails: every copy
/// equal, all one generation past the last acknowledged).
fn holds_generation(registry: &Registry, g: u64) -> bool {
    registry.values().any(|(_, ann, _)| ann.get(GENERATION).and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v >= g))
}

/// The highest generation a copy holds, for messages.
fn generation_held(registry: &Registry) -> String {
    registry
        .values()
        .filter_map(|(_, ann, _)| ann.get(GENERATION)?.parse::<u64>().ok())
        .max()
        .map(|g| format!("generation {g}"))
        .unwrap_or_else(|| "no generation".into())
}

/// Samples of a replica's heartbeat the receiver holds for the fault window, and how many
/// one per scrape interval (1 s) makes; waits for queued samples to arrive.
async fn metrics_kept(m: &crate::deploy::directory::Metrics, cluster: &str, w: &Window, deadline: &Deadline) -> Result<(u64, u64), String> {
    let secs = w.to.duration_since(w.from).map_err(|e| e.to_string())?.as_secs();
    let at = w.to.duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs_f64();
    let query = format!("count_over_time(workload_heartbeat_timestamp_seconds{{cluster=\"{cluster}\"}}[{secs}s])");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().map_err(|e| e.to_string())?;
    let expected = secs;
    let mut kept = 0;
    loop {
        let resp = http.get(format!("{}/api/v1/query", m.receiver)).query(&[("query", query.as_str()), ("time", &format!("{at:.3}"))]).send().await;
        if let Ok(r) = resp
            && let Ok(v) = r.json::<serde_json::Value>().await
        {
            kept = v.pointer("/data/result/0/value/1").and_then(|x| x.as_str()).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0) as u64;
        }
        if kept as f64 >= METRICS_KEPT * expected as f64 || deadline.passed() {
            return Ok((kept, expected));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_at(generation: Option<&str>) -> Registry {
        let ann = generation.map(|g| [(GENERATION.to_string(), g.to_string())].into()).unwrap_or_default();
        [("east".to_string(), (Default::default(), ann, serde_json::Value::Null)), ("west".to_string(), Default::default())].into()
    }

    #[test]
    fn a_write_cut_off_after_the_last_acknowledged_one_still_holds_it() {
        assert!(holds_generation(&copy_at(Some("100")), 100));
        assert!(holds_generation(&copy_at(Some("101")), 100), "a later generation carries the change");
        assert!(!holds_generation(&copy_at(Some("99")), 100));
        assert!(!holds_generation(&copy_at(None), 100));
        assert!(!holds_generation(&copy_at(Some("not-a-number")), 100));
        assert_eq!(generation_held(&copy_at(Some("99"))), "generation 99");
        assert_eq!(generation_held(&copy_at(None)), "no generation");
    }
}
