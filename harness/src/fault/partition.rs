//! Partition two clusters: an nftables table in every node (and API load balancer)
//! namespace of each cluster drops all traffic to and from the other's addresses, both
//! directions, enforced by the kernel.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::{FaultError, Undo};
use crate::env::Env;

struct Side {
    netns: Vec<String>,
    ips: Vec<Ipv4Addr>,
}

fn side(env: &Env, cluster: &str) -> Result<Side, FaultError> {
    let c = env.cluster(cluster).map_err(super::backend_err(format!("partition: cluster {cluster}")))?;
    let info =
        c.local.as_ref().ok_or(FaultError::NotRunnable { kind: "partition", needs: "node network namespaces", backend: format!("{:?}", env.backend) })?;
    let mut netns: Vec<String> = info.nodes.iter().map(|n| n.netns.clone()).collect();
    let mut ips: Vec<Ipv4Addr> = info.nodes.iter().map(|n| n.ip).collect();
    if let Some(lb) = &info.apiserver_lb
        && let Some(local) = env.local()
        && let Ok(h) = local.info.host(lb)
    {
        netns.push(h.netns.clone());
        ips.push(h.ip);
    }
    Ok(Side { netns, ips })
}

pub fn plan(env: &Env, between: &[String], tag: &str) -> Result<Undo, FaultError> {
    let [a, b] = between else { return Err(FaultError::Invalid("partition needs exactly two clusters".into())) };
    let (sa, sb) = (side(env, a)?, side(env, b)?);
    let table: String = format!("firedrill_{tag}").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    Ok(Undo::Unpartition { table, netns: sa.netns.into_iter().chain(sb.netns).collect() })
}

fn ruleset(table: &str, peers: &[Ipv4Addr]) -> String {
    let set = peers.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", ");
    // Declaring then deleting the table first makes the script idempotent.
    format!(
        "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n  set peers {{ type ipv4_addr; elements = {{ {set} }} }}\n  chain input {{ type filter hook input priority -10; policy accept; ip saddr @peers drop; }}\n  chain output {{ type filter hook output priority -10; policy accept; ip daddr @peers drop; }}\n}}\n"
    )
}

fn nft(netns: &str, script: &str) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft in {netns}: {e}"))?;
    child.stdin.take().expect("piped").write_all(script.as_bytes()).map_err(|e| format!("writing to nft in {netns}: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft in {netns}: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("nft in {netns}: {}", String::from_utf8_lossy(&out.stderr).trim())) }
}

pub async fn inject(env: &Env, between: &[String], table: &str) -> Result<(), FaultError> {
    let [a, b] = between else { return Err(FaultError::Invalid("partition needs exactly two clusters".into())) };
    let (sa, sb) = (side(env, a)?, side(env, b)?);
    for (from, to) in [(&sa, &sb), (&sb, &sa)] {
        let script = ruleset(table, &to.ips);
        for ns in &from.netns {
            nft(ns, &script).map_err(FaultError::Invalid)?;
        }
    }
    Ok(())
}

/// Delete the table wherever it is; absent tables and namespaces are fine.
pub async fn revert(table: &str, netns: &[String]) -> Result<(), FaultError> {
    for ns in netns {
        if !crate::backend::local::net::netns_exists(ns) {
            continue;
        }
        nft(ns, &format!("table inet {table}\ndelete table inet {table}\n")).map_err(FaultError::Invalid)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ruleset_is_idempotent_and_drops_both_ways() {
        let r = super::ruleset("firedrill_x", &["198.18.1.10".parse().unwrap(), "198.18.1.11".parse().unwrap()]);
        assert!(r.starts_with("table inet firedrill_x\ndelete table inet firedrill_x\n"));
        assert!(r.contains("ip saddr @peers drop") && r.contains("ip daddr @peers drop"));
        assert!(r.contains("198.18.1.10, 198.18.1.11"));
    }
}
