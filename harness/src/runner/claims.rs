//! Post-checks of the documents' recovery claims, run after every operation recovered.
//!
//! - `queued-and-applied`: every management change accepted during the fault was *not*
//!   applied on its target cluster when the fault ended (it was queued), and every change
//!   of the scenario is applied there after recovery — each change has a key of its own,
//!   so every write made during the fault is proven to survive, not only the last.
//! - `converged`: every replica's Clusters and ClusterPolicies equal the directory's.
//! - `nothing-lost`: every Cluster and ClusterPolicy of the directory before the fault is
//!   still there, every accepted change too, and each replica's metrics for the fault
//!   window reached the receiver (queued samples arrive late, not never).
//! - `instance-replaced`: a killed instance's replacement was Ready within the documented
//!   MTTR.
//! - `restored-from-backup` and `backup-refused`: the DR exercise's (see [`dr`]).
//! - `placement-conforms`, `drain-completed`, `drain-refused-by-pdb`: workload
//!   separation's, and `replaced-elsewhere`: a lost node's pods replaced on other nodes
//!   while it is gone (see [`placement`]).

mod dr;
mod placement;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::deploy::Deployed;
use crate::deploy::directory::{Directory, applied_changes, change_key, converged_diff, registry};
use crate::env::Env;
use crate::fault::FaultSpec;
use crate::suite::{Claim, ScenarioSpec, Suite};
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
    /// Why the suite makes the claim when the document does not state it; set from the
    /// suite when the scenario is judged.
    pub derived: Option<String>,
}

/// State taken before the fault, to compare with after.
#[derive(Default)]
pub struct Before {
    clusters: BTreeSet<String>,
    policies: BTreeSet<String>,
    /// For `placement-conforms` and `replaced-elsewhere`: the pods on the nodes the
    /// scenario's `lose-node` faults are about to lose.
    lost: Vec<placement::LostPod>,
}

pub async fn before(env: &Env, deployed: &Deployed, suite: &Suite, sc: &ScenarioSpec) -> Result<Before, String> {
    let wants = |c| sc.documented.recovery.claims.contains(&c);
    let lost = if wants(Claim::PlacementConforms) || wants(Claim::ReplacedElsewhere) { placement::on_lost_nodes(env, suite, sc).await? } else { vec![] };
    let Some(d) = &deployed.directory else { return Ok(Before { lost, ..Default::default() }) };
    let (c, p) = registry(env.cluster(&d.directory).map_err(|e| e.to_string())?).await?;
    Ok(Before { clusters: c.into_keys().collect(), policies: p.into_keys().collect(), lost })
}

/// What the end of the fault showed, for `queued-and-applied`.
#[derive(Default)]
pub struct During {
    /// Changes accepted during the fault that the target cluster had applied already.
    applied_early: Vec<String>,
    /// How the target cluster was looked at (or why it could not be).
    seen: String,
}

/// At the end of the fault window, before the revert: which changes accepted since `from`
/// the target cluster already has.
pub async fn during(claims: &[Claim], env: &Env, deployed: &Deployed, from: Instant) -> During {
    let Some(d) = deployed.directory.as_ref().filter(|_| claims.contains(&Claim::QueuedAndApplied)) else { return During::default() };
    let changes = d.changes.lock().expect("changes").clone();
    let during: Vec<String> = changes.accepted.iter().filter(|(_, at)| *at >= from).map(|(k, _)| change_key(*k)).collect();
    let Ok(cluster) = env.cluster(&changes.cluster) else { return During { applied_early: vec![], seen: format!("no cluster `{}`", changes.cluster) } };
    match applied_changes(cluster).await {
        Ok(held) => {
            let held = held.unwrap_or_default();
            let early: Vec<String> = during.iter().filter(|k| held.contains(*k)).cloned().collect();
            During {
                seen: format!("{} of the {} change(s) accepted during the fault applied on {} at its end", early.len(), during.len(), changes.cluster),
                applied_early: early,
            }
        }
        // A cluster whose API cannot be read at all applies nothing either.
        Err(e) => {
            During { applied_early: vec![], seen: format!("{} unreadable at the end of the fault ({e}): nothing can have been applied there", changes.cluster) }
        }
    }
}

/// The fault's span, in wall-clock time (for the metrics receiver) and monotonic time.
pub struct Window {
    pub from: SystemTime,
    pub to: SystemTime,
    pub from_i: Instant,
    pub to_i: Instant,
}

/// What a claim check needs.
pub struct Context<'a> {
    pub env: &'a Env,
    pub suite: &'a Suite,
    pub deployed: &'a Deployed,
    pub scenario: &'a ScenarioSpec,
    pub before: &'a Before,
    pub during: &'a During,
    pub window: &'a Window,
    /// The scenario's faults as journaled.
    pub undos: &'a [crate::fault::Undo],
    /// When every operation worked again for good (the end of the revert plus the MTTR).
    pub recovered_at: Option<SystemTime>,
}

pub async fn check(claim: Claim, cx: &Context<'_>) -> Result<ClaimResult, String> {
    let (holds, detail) = match claim {
        Claim::Converged => converged(cx, directory(cx, claim)?).await,
        Claim::QueuedAndApplied => queued_and_applied(cx, directory(cx, claim)?).await,
        Claim::NothingLost => nothing_lost(cx, directory(cx, claim)?).await?,
        Claim::InstanceReplaced => replaced(cx).await?,
        Claim::RestoredFromBackup => dr::restored_from_backup(cx).await?,
        Claim::BackupRefused => dr::backup_refused(cx).await?,
        Claim::PlacementConforms => placement::placement_conforms(cx).await?,
        Claim::DrainCompleted => placement::drain_completed(cx)?,
        Claim::DrainRefusedByPdb => placement::drain_refused_by_pdb(cx).await?,
        Claim::ReplacedElsewhere => placement::replaced_elsewhere(cx).await?,
    };
    Ok(ClaimResult { claim, holds, detail, derived: None })
}

fn directory<'a>(cx: &Context<'a>, claim: Claim) -> Result<&'a Directory, String> {
    cx.deployed.directory.as_ref().ok_or_else(|| format!("claim `{}` needs the directory component", claim.words()))
}

async fn converged(cx: &Context<'_>, d: &Directory) -> (bool, String) {
    let deadline = Deadline::after(SETTLE);
    let started = Instant::now();
    loop {
        match converged_diff(cx.env, d).await {
            Ok(v) if v.is_empty() => return (true, format!("every replica equals the directory after {:.1} s", started.elapsed().as_secs_f64())),
            Ok(v) if deadline.passed() => return (false, v.join("; ")),
            Err(e) if deadline.passed() => return (false, e),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn queued_and_applied(cx: &Context<'_>, d: &Directory) -> (bool, String) {
    let changes = d.changes.lock().expect("changes").clone();
    let during = changes.accepted.iter().filter(|(_, at)| *at >= cx.window.from_i && *at <= cx.window.to_i).count();
    if during == 0 {
        return (false, "no management change was accepted during the fault: nothing could be queued".into());
    }
    if !cx.during.applied_early.is_empty() {
        return (false, format!("{}: not queued — {}", cx.during.seen, cx.during.applied_early.join(", ")));
    }
    let Ok(cluster) = cx.env.cluster(&changes.cluster) else { return (false, format!("no cluster `{}`", changes.cluster)) };
    let want: BTreeSet<String> = changes.accepted.iter().map(|(k, _)| change_key(*k)).collect();
    let deadline = Deadline::after(SETTLE);
    let started = Instant::now();
    loop {
        let missing: Result<Vec<String>, String> = applied_changes(cluster).await.map(|held| {
            let held = held.unwrap_or_default();
            want.iter().filter(|k| !held.contains(*k)).cloned().collect()
        });
        match missing {
            Ok(m) if m.is_empty() => {
                return (
                    true,
                    format!(
                        "{during} change(s) accepted during the fault; {}; all {} change(s) of the scenario applied on {} {:.1} s after recovery",
                        cx.during.seen,
                        want.len(),
                        changes.cluster,
                        started.elapsed().as_secs_f64()
                    ),
                );
            }
            Ok(m) if deadline.passed() => {
                return (false, format!("{} of {} change(s) never applied on {}: {}", m.len(), want.len(), changes.cluster, m.join(", ")));
            }
            Err(e) if deadline.passed() => return (false, e),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn nothing_lost(cx: &Context<'_>, d: &Directory) -> Result<(bool, String), String> {
    let deadline = Deadline::after(SETTLE);
    let (c, p) = registry(cx.env.cluster(&d.directory).map_err(|e| e.to_string())?).await?;
    let mut lost: Vec<String> = cx.before.clusters.iter().filter(|n| !c.contains_key(*n)).map(|n| format!("Cluster {n}")).collect();
    lost.extend(cx.before.policies.iter().filter(|n| !p.contains_key(*n)).map(|n| format!("ClusterPolicy {n}")));
    // Every accepted change is in the stored policy.
    let stored: BTreeSet<String> = p
        .get(crate::deploy::directory::CHANGES)
        .and_then(|(_, _, spec)| spec.pointer("/clusterRoles/0/rules/0/resources")?.as_array().cloned())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let accepted: Vec<String> = d.changes.lock().expect("changes").accepted.iter().map(|(k, _)| change_key(*k)).collect();
    let missing: Vec<&String> = accepted.iter().filter(|k| !stored.contains(*k)).collect();
    if !missing.is_empty() {
        lost.push(format!(
            "{} accepted change(s) not in the stored policy: {}",
            missing.len(),
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut notes = vec![format!("{} accepted change(s) stored", accepted.len())];
    if let Some(m) = &cx.deployed.metrics {
        for cluster in &m.collectors {
            match metrics_kept(m, cluster, cx.window, &deadline).await {
                Ok((kept, expected)) if kept as f64 >= METRICS_KEPT * expected as f64 => notes.push(format!("{cluster}: {kept}/{expected} metric samples")),
                Ok((kept, expected)) => lost.push(format!("{cluster}: only {kept} of {expected} metric samples of the fault window reached the receiver")),
                Err(e) => lost.push(format!("{cluster}: metrics: {e}")),
            }
        }
    }
    Ok(if lost.is_empty() { (true, format!("nothing missing; {}", notes.join(", "))) } else { (false, lost.join("; ")) })
}

/// Every killed pod's Deployment is back at full strength, each replacement Ready within
/// the documented bound of the kill.
async fn replaced(cx: &Context<'_>) -> Result<(bool, String), String> {
    let bound = cx.scenario.documented.recovery.bound().ok_or("claim `instance-replaced` needs the scenario's `mttr`")?;
    let mut notes = Vec::new();
    let mut holds = true;
    let killed = cx.scenario.faults.iter().filter_map(|f| match f {
        FaultSpec::KillPod { cluster, namespace, deployment } => Some((cluster, namespace, deployment)),
        _ => None,
    });
    for (cluster, namespace, deployment) in killed {
        let c = cx.env.cluster(cluster).map_err(|e| e.to_string())?;
        let killed_at = jiff::Timestamp::try_from(cx.window.from).map_err(|e| e.to_string())?;
        let pods = Api::<Pod>::namespaced(c.client.clone(), namespace).list(&ListParams::default()).await.map_err(|e| crate::error::kube_message(&e))?;
        // The replacement: created after the kill, now Ready; its Ready time from the API.
        let replacement = pods.items.iter().filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with(&format!("{deployment}-")))).find_map(|p| {
            // The API keeps whole seconds: a pod created in the second of the kill counts.
            let created = p.metadata.creation_timestamp.as_ref()?.0;
            if created.as_second() < killed_at.as_second() {
                return None;
            }
            let ready = crate::objects::ready_condition(p)?;
            Some((p.metadata.name.clone().unwrap_or_default(), ready.last_transition_time.as_ref()?.0))
        });
        match replacement {
            Some((name, ready)) => {
                let took = Duration::from_secs_f64((ready.as_second() - killed_at.as_second()).max(0) as f64);
                let within = took <= bound;
                holds &= within;
                notes.push(format!(
                    "{namespace}/{name} Ready {} s after the kill ({} the {} s bound; the API's times are whole seconds)",
                    took.as_secs(),
                    if within { "within" } else { "over" },
                    bound.as_secs()
                ));
            }
            None => {
                holds = false;
                notes.push(format!("no replacement pod of {namespace}/{deployment} created after the kill is Ready"));
            }
        }
    }
    if notes.is_empty() {
        return Err("claim `instance-replaced` needs a `kill-pod` fault in the scenario".into());
    }
    Ok((holds, notes.join("; ")))
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
