//! Stop instances of one control-plane component of a cluster (etcd members, API servers,
//! controller-managers, schedulers): the first ones in node order, or the one that leads
//! right now; gracefully, killed, or paused with SIGSTOP (frozen: its sockets stay open,
//! it answers nothing). The local backend runs each instance as a process of its own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Expect, FaultError, Signal, Undo, backend_err};
use crate::backend::local::ClusterInfo;
use crate::backend::local::rpc::StopHow;
use crate::env::Env;

/// A control-plane component, as its processes are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
        }
    }

    /// Whether the component elects a leader (etcd's Raft, or a Lease).
    pub fn has_leader(self) -> bool {
        self != Component::KubeApiserver
    }
}

/// Which instances a fault stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// The first `count` instances, in the topology's node order.
    #[default]
    First,
    /// The instance that leads when the fault is planned (one).
    Leader,
}

/// The nodes running `component` in `c`, in order.
fn nodes(c: &ClusterInfo, component: Component) -> &[String] {
    match component {
        Component::Etcd => &c.etcd_nodes,
        _ => &c.apiserver_nodes,
    }
}

fn process(cluster: &str, component: Component, node: &str) -> String {
    format!("{cluster}/{}-{node}", component.name())
}

pub(super) fn info<'a>(env: &'a Env, cluster: &str) -> Result<&'a ClusterInfo, FaultError> {
    env.cluster(cluster)
        .map_err(backend_err(format!("cluster {cluster}")))?
        .local
        .as_ref()
        .ok_or_else(|| FaultError::Invalid(format!("cluster {cluster} has no control-plane processes of the local backend")))
}

/// Choose the instances; changes nothing.
pub async fn plan(env: &Env, cluster: &str, component: Component, pick: Pick, count: u32) -> Result<Undo, FaultError> {
    let c = info(env, cluster)?;
    let all = nodes(c, component);
    let chosen: Vec<String> = match pick {
        Pick::First => {
            if count == 0 || count as usize > all.len() {
                return Err(FaultError::Invalid(format!("cluster {cluster} runs {} {} instance(s); cannot stop {count}", all.len(), component.name())));
            }
            all[..count as usize].to_vec()
        }
        Pick::Leader => vec![
            leader(c, component)
                .await
                .map_err(|message| FaultError::Kube { what: format!("finding the {} leader of cluster {cluster}", component.name()), message })?,
        ],
    };
    Ok(Undo::StartProcesses { cluster: cluster.to_string(), names: chosen.iter().map(|n| process(cluster, component, n)).collect() })
}

/// The node whose instance of `component` leads now: etcd's own status (each member names
/// the leader's id), or the `leader_election_master_status` gauge the controller-manager
/// and the scheduler export on their secure ports.
pub async fn leader(c: &ClusterInfo, component: Component) -> Result<String, String> {
    match component {
        Component::Etcd => {
            let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build().map_err(|e| e.to_string())?;
            let mut seen = Vec::new();
            for n in &c.etcd_nodes {
                let ip = c.node(n).map_err(|e| e.to_string())?.ip;
                let status: serde_json::Value = match http.post(format!("http://{ip}:2379/v3/maintenance/status")).body("{}").send().await {
                    Ok(r) => r.json().await.map_err(|e| format!("etcd member {n}: status: {e}"))?,
                    Err(e) => {
                        seen.push(format!("{n}: {}", crate::probe::http_error(&e)));
                        continue;
                    }
                };
                let id = status["header"]["member_id"].as_str().unwrap_or_default();
                let leader = status["leader"].as_str().unwrap_or_default();
                if !id.is_empty() && id == leader {
                    return Ok(n.clone());
                }
                seen.push(format!("{n}: member {id}, leader {leader}"));
            }
            Err(format!("no member says it leads ({})", seen.join("; ")))
        }
        Component::KubeControllerManager | Component::KubeScheduler => {
            let (port, lease) = if component == Component::KubeScheduler { (10259, "kube-scheduler") } else { (10257, "kube-controller-manager") };
            let http = crate::backend::local::controlplane::admin_http_self_signed(c).map_err(|e| e.to_string())?;
            let gauge = format!("leader_election_master_status{{name=\"{lease}\"}} 1");
            let mut seen = Vec::new();
            for n in &c.apiserver_nodes {
                let ip = c.node(n).map_err(|e| e.to_string())?.ip;
                match http.get(format!("https://{ip}:{port}/metrics")).send().await {
                    Ok(r) if r.status().is_success() => {
                        let text = r.text().await.map_err(|e| e.to_string())?;
                        if text.lines().any(|l| l.trim() == gauge) {
                            return Ok(n.clone());
                        }
                        seen.push(format!("{n}: not leading"));
                    }
                    Ok(r) => seen.push(format!("{n}: HTTP {}", r.status().as_u16())),
                    Err(e) => seen.push(format!("{n}: {}", crate::probe::http_error(&e))),
                }
            }
            Err(format!("no instance holds the {lease} lease ({})", seen.join("; ")))
        }
        Component::KubeApiserver => Err("API servers elect no leader".into()),
    }
}

pub async fn stop(env: &Env, names: &[String], signal: Signal) -> Result<(), FaultError> {
    let how = match signal {
        Signal::Term => StopHow::Term,
        Signal::Kill => StopHow::Kill,
        Signal::Stop => StopHow::Pause,
    };
    for n in names {
        env.stop_process(n, how).await.map_err(backend_err(format!("stopping {n}")))?;
    }
    Ok(())
}

/// Start (or resume) every chosen instance.
pub async fn start(env: &Env, names: &[String]) -> Result<(), FaultError> {
    for n in names {
        env.start_process(n).await.map_err(backend_err(format!("starting {n}")))?;
    }
    Ok(())
}

/// In effect: every chosen instance is stopped (paused, for SIGSTOP); undone: every one
/// runs, and a restarted etcd member answers its health check.
pub async fn check(env: &Env, cluster: &str, names: &[String], signal: Signal, expect: Expect) -> Result<(), String> {
    let states = env.process_states().await.map_err(|e| e.to_string())?;
    let want = match (expect, signal) {
        (Expect::InEffect, Signal::Stop) => "paused",
        (Expect::InEffect, _) => "stopped",
        (Expect::Reverted, _) => "running",
    };
    let wrong: Vec<String> = names
        .iter()
        .filter_map(|n| match states.iter().find(|(name, _)| name == n) {
            Some((_, s)) if s == want => None,
            Some((_, s)) => Some(format!("{n} {s}")),
            None => Some(format!("{n} unknown")),
        })
        .collect();
    if !wrong.is_empty() {
        return Err(format!("want {want}: {}", wrong.join(", ")));
    }
    if expect == Expect::Reverted {
        let c = env.cluster(cluster).map_err(|e| e.to_string())?.local.as_ref().ok_or("no local cluster")?;
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build().map_err(|e| e.to_string())?;
        for node in c.etcd_nodes.iter().filter(|n| names.contains(&process(cluster, Component::Etcd, n))) {
            let ip = c.node(node).map_err(|e| e.to_string())?.ip;
            crate::probe::controlplane::etcd_member_healthy(&http, ip).await.map_err(|why| format!("etcd member {node}: {why}"))?;
        }
    }
    Ok(())
}
