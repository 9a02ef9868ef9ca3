//! Partitions and unreachable hosts, enforced by the kernel: an nftables table in the
//! network namespaces involved drops the packets. Connections across time out (nothing
//! answers), unlike a stopped process, whose host refuses them.
//!
//! A partition's side is a cluster (every node, and its API load balancer host), one node
//! (`cluster/node`) or a host; each side drops all traffic to and from the other. An
//! unreachable host drops everything but its loopback. On kind the tables go into the node
//! and host containers' namespaces, and also drop what a node forwards for its pods.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Expect, FaultError, Undo};
use crate::backend::local::net::{DISCARD_PORT, Reach, reach};
use crate::env::Env;

struct Side {
    name: String,
    netns: Vec<String>,
    ips: Vec<Ipv4Addr>,
}

/// Where a side's rules go: a network namespace by name, or a kind node's or host's
/// container (`docker:<container>`).
const CONTAINER: &str = "docker:";

fn kind_side(run: &crate::backend::kind::KindRun, name: &str) -> Result<Side, FaultError> {
    let (cluster, node) = match name.split_once('/') {
        Some((c, n)) => (c, Some(n)),
        None => (name, None),
    };
    // As on the local backend, a cluster's name wins over a host's.
    if node.is_none()
        && run.kind_cluster(cluster).is_err()
        && let Ok(h) = run.host(name)
    {
        let ip = h.ip.parse().map_err(|_| FaultError::Invalid(format!("partition: host {name} has no valid address ({})", h.ip)))?;
        return Ok(Side { name: name.into(), netns: vec![format!("{CONTAINER}{}", h.container)], ips: vec![ip] });
    }
    let c =
        run.kind_cluster(cluster).map_err(|_| FaultError::Invalid(format!("partition: `{name}` is neither a cluster, a node nor a host of this kind run")))?;
    let nodes = match node {
        Some(n) => vec![run.node(cluster, n).map_err(super::backend_err(format!("partition: node {name}")))?],
        None => c.nodes.iter().collect(),
    };
    let mut ips = Vec::new();
    for n in &nodes {
        let ip =
            n.ip.as_deref()
                .and_then(|ip| ip.parse().ok())
                .ok_or_else(|| FaultError::Invalid(format!("partition: node {} has no recorded address", n.container)))?;
        ips.push(ip);
    }
    Ok(Side { name: name.into(), netns: nodes.iter().map(|n| format!("{CONTAINER}{}", n.container)).collect(), ips })
}

fn side(env: &Env, name: &str) -> Result<Side, FaultError> {
    if let Some(run) = env.kind() {
        return kind_side(run, name);
    }
    let not_runnable = || FaultError::NotRunnable { kind: "partition", needs: "node network namespaces", backend: env.backend.name().into() };
    let local = env.local().ok_or_else(not_runnable)?;
    let (cluster, node) = match name.split_once('/') {
        Some((c, n)) => (c, Some(n)),
        None => (name, None),
    };
    if let Ok(c) = env.cluster(cluster) {
        let info = c.local.as_ref().ok_or_else(not_runnable)?;
        if let Some(node) = node {
            let n = info.node(node).map_err(super::backend_err(format!("partition: node {name}")))?;
            return Ok(Side { name: name.into(), netns: vec![n.netns.clone()], ips: vec![n.ip] });
        }
        let mut netns: Vec<String> = info.nodes.iter().map(|n| n.netns.clone()).collect();
        let mut ips: Vec<Ipv4Addr> = info.nodes.iter().map(|n| n.ip).collect();
        if let Some(lb) = &info.apiserver_lb
            && let Ok(h) = local.info.host(lb)
        {
            netns.push(h.netns.clone());
            ips.push(h.ip);
        }
        return Ok(Side { name: name.into(), netns, ips });
    }
    let h = local.info.host(name).map_err(super::backend_err(format!("partition: `{name}` is neither a cluster, a node nor a host")))?;
    Ok(Side { name: name.into(), netns: vec![h.netns.clone()], ips: vec![h.ip] })
}

fn table_name(tag: &str) -> String {
    format!("firedrill_{tag}").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// `between` has two sides for a partition, one host for an unreachable host.
pub fn plan(env: &Env, between: &[String], tag: &str) -> Result<Undo, FaultError> {
    let mut netns = Vec::new();
    for name in between {
        netns.extend(side(env, name)?.netns);
    }
    Ok(Undo::Unpartition { table: table_name(tag), netns })
}

/// The table of a side: with `peers`, drop what comes from or goes to them (also what a
/// node forwards, for `forward`: a kind node's pods); without, drop all but loopback.
fn ruleset(table: &str, peers: Option<&[Ipv4Addr]>, forward: bool) -> String {
    // Declaring then deleting the table first makes the script idempotent.
    let body = match peers {
        Some(peers) => {
            let set = peers.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", ");
            let forward = if forward {
                "  chain forward { type filter hook forward priority -10; policy accept; ip saddr @peers drop; ip daddr @peers drop; }\n"
            } else {
                ""
            };
            format!(
                "  set peers {{ type ipv4_addr; elements = {{ {set} }} }}\n  chain input {{ type filter hook input priority -10; policy accept; ip saddr @peers drop; }}\n  chain output {{ type filter hook output priority -10; policy accept; ip daddr @peers drop; }}\n{forward}"
            )
        }
        None => "  chain input { type filter hook input priority -10; policy drop; iif lo accept; }\n  chain output { type filter hook output priority -10; policy drop; oif lo accept; }\n".to_string(),
    };
    format!("table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n{body}}}\n")
}

/// Run an nftables script in a network namespace, or in a kind container's (the
/// harness's own nft, entering the namespace of the container's first process: a host's
/// container has no nft of its own).
fn nft(netns: &str, script: &str) -> Result<(), String> {
    let argv: Vec<String> = match netns.strip_prefix(CONTAINER) {
        Some(container) => {
            let pid = crate::backend::kind::ops::pid(container).map_err(|e| e.to_string())?;
            ["nsenter".to_string(), format!("--net=/proc/{pid}/ns/net"), "nft".into(), "-f".into(), "-".into()].to_vec()
        }
        None => ["ip", "netns", "exec", netns, "nft", "-f", "-"].map(String::from).to_vec(),
    };
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft in {netns}: {e}"))?;
    child.stdin.take().expect("piped").write_all(script.as_bytes()).map_err(|e| format!("writing to nft in {netns}: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft in {netns}: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("nft in {netns}: {}", String::from_utf8_lossy(&out.stderr).trim())) }
}

fn two_sides(env: &Env, between: &[String]) -> Result<(Side, Side), FaultError> {
    let [a, b] = between else { return Err(FaultError::Invalid("partition needs exactly two sides".into())) };
    Ok((side(env, a)?, side(env, b)?))
}

pub async fn inject(env: &Env, between: &[String], table: &str) -> Result<(), FaultError> {
    let (sa, sb) = two_sides(env, between)?;
    for (from, to) in [(&sa, &sb), (&sb, &sa)] {
        let script = ruleset(table, Some(&to.ips), env.kind().is_some());
        for ns in &from.netns {
            nft(ns, &script).map_err(FaultError::Invalid)?;
        }
    }
    Ok(())
}

/// Drop every packet of `host` but its loopback's.
pub async fn isolate(env: &Env, host: &str, table: &str) -> Result<(), FaultError> {
    let s = side(env, host)?;
    for ns in &s.netns {
        nft(ns, &ruleset(table, None, false)).map_err(FaultError::Invalid)?;
    }
    Ok(())
}

/// Delete the table wherever it is; absent tables and namespaces are fine.
pub async fn revert(table: &str, netns: &[String]) -> Result<(), FaultError> {
    for ns in netns {
        let present = match ns.strip_prefix(CONTAINER) {
            // A stopped or removed container's namespace, and its table, are gone with it;
            // an engine that does not answer says nothing of the kind.
            Some(container) => crate::backend::kind::ops::has_netns(container)
                .map_err(|e| FaultError::Invalid(format!("whether the table {table} in container {container} is still there: {e}")))?,
            None => crate::backend::local::net::netns_exists(ns),
        };
        if !present {
            continue;
        }
        nft(ns, &format!("table inet {table}\ndelete table inet {table}\n")).map_err(FaultError::Invalid)?;
    }
    Ok(())
}

/// How long a connection attempt may take to show it is dropped.
const PROBE: Duration = Duration::from_millis(700);

async fn try_reach(from: Option<String>, to: Ipv4Addr) -> Reach {
    // A container's namespace is its first process's.
    let from = match from.as_deref().and_then(|f| f.strip_prefix(CONTAINER)) {
        Some(container) => match crate::backend::kind::ops::pid(container) {
            Ok(pid) => Some(format!("/proc/{pid}/ns/net")),
            Err(e) => return Reach::Other(e.to_string()),
        },
        None => from,
    };
    let addr = SocketAddr::from((to, DISCARD_PORT));
    tokio::task::spawn_blocking(move || reach(from.as_deref(), addr, PROBE)).await.unwrap_or_else(|e| Reach::Other(e.to_string()))
}

/// In effect: a connection attempt across (to the discard port, which a reachable peer
/// refuses at once) gets no answer, both ways; undone: it is answered. For a single host,
/// the attempt comes from the harness's own namespace.
pub async fn check(env: &Env, between: &[String], table: &str, expect: Expect) -> Result<(), String> {
    let _ = table;
    let pairs: Vec<(Option<String>, String, Ipv4Addr, String)> = match between {
        [host] => {
            let s = side(env, host).map_err(|e| e.to_string())?;
            vec![(None, "the harness".into(), s.ips[0], s.name)]
        }
        _ => {
            let (a, b) = two_sides(env, between).map_err(|e| e.to_string())?;
            vec![(Some(a.netns[0].clone()), a.name.clone(), b.ips[0], b.name.clone()), (Some(b.netns[0].clone()), b.name, a.ips[0], a.name)]
        }
    };
    let mut wrong = Vec::new();
    for (from_ns, from, to_ip, to) in pairs {
        let r = try_reach(from_ns, to_ip).await;
        let dropped = r == Reach::TimedOut;
        if dropped != (expect == Expect::InEffect) {
            wrong.push(format!("{from} → {to} ({to_ip}:{DISCARD_PORT}): {r:?}"));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("connection attempts {}: {}", if expect == Expect::InEffect { "not dropped" } else { "still dropped" }, wrong.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ruleset_is_idempotent_and_drops_both_ways() {
        let r = super::ruleset("firedrill_x", Some(&["198.18.1.10".parse().unwrap(), "198.18.1.11".parse().unwrap()]), false);
        assert!(r.starts_with("table inet firedrill_x\ndelete table inet firedrill_x\n"));
        assert!(r.contains("ip saddr @peers drop") && r.contains("ip daddr @peers drop"));
        assert!(r.contains("198.18.1.10, 198.18.1.11"));
        assert!(!r.contains("hook forward"));
        let k = super::ruleset("firedrill_x", Some(&["198.18.224.2".parse().unwrap()]), true);
        assert!(k.contains("hook forward priority -10; policy accept; ip saddr @peers drop; ip daddr @peers drop;"), "{k}");
    }

    #[test]
    fn an_unreachable_host_drops_everything_but_loopback() {
        let r = super::ruleset("firedrill_y", None, false);
        assert!(r.contains("policy drop; iif lo accept") && r.contains("policy drop; oif lo accept"), "{r}");
    }
}
