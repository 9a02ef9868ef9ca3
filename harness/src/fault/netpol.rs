//! Partitions on the existing backend: NetworkPolicies. Each side gets, in every namespace
//! it had when the fault was planned, a policy that selects all pods and allows traffic
//! to and from anywhere except the other side (its nodes' addresses, its pod ranges, its
//! API server). A policy is only a request: a CNI that does not enforce NetworkPolicy
//! ignores it. So the proof is a canary pod on each side (the workload image with
//! `CONNECT`), which must reach its own API server and must not reach the other side's,
//! each at the address pods reach it at (the `kubernetes` Service's endpoint);
//! where the CNI does not enforce, the canary gets through and the scenario ends "fault not
//! in effect", never with a table.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde::{Deserialize, Serialize};

use super::{Expect, FaultError, Undo, kube_err};
use crate::env::{ClusterHandle, Env};

/// Where one of a partition's policies went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub cluster: String,
    pub namespace: String,
}

/// Canary pods run here; the label finds leftovers of an interrupted proof.
const CANARY_NAMESPACE: &str = "default";
const CANARY_LABEL: &str = "firedrill.dev/canary";
const CANARY_IMAGE: &str = "firedrill.local/workload:dev";
/// How long a canary pod may take from creation to its exit.
const CANARY_TIMEOUT: Duration = Duration::from_secs(45);
/// How long a canary waits after it starts before it connects. A network plugin learns a
/// new pod's address as the pod starts: a connection opened in that moment can leave
/// before any policy applies to the pod, and the connection tracking then lets the rest of
/// it through (seen with kube-network-policies on kind: every canary that connected at
/// once reached the other side, a pod that connected seconds later was cut off).
const CANARY_DELAY_SECONDS: u32 = 3;

fn policy_name(tag: &str) -> String {
    let clean: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let name = format!("firedrill-partition-{}", clean.trim_matches('-'));
    name.chars().take(63).collect::<String>().trim_end_matches('-').to_string()
}

fn sides<'a>(env: &'a Env, between: &[String]) -> Result<(&'a ClusterHandle, &'a ClusterHandle), FaultError> {
    let [a, b] = between else { return Err(FaultError::Invalid("partition needs exactly two sides".into())) };
    // A node or a host is not a side NetworkPolicies can cut off: not runnable here.
    let cluster = |name: &str| {
        env.cluster(name).map_err(|_| FaultError::NotRunnable {
            kind: "partition",
            needs: "sides that are nodes or hosts (NetworkPolicies cut off whole clusters only)",
            backend: env.backend.name().into(),
        })
    };
    Ok((cluster(a)?, cluster(b)?))
}

/// Every namespace of both sides gets a policy named after the fault.
pub async fn plan(env: &Env, between: &[String], tag: &str) -> Result<Undo, FaultError> {
    let (a, b) = sides(env, between)?;
    let mut placements = Vec::new();
    for c in [a, b] {
        let list = Api::<Namespace>::all(c.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(kube_err(format!("listing namespaces of cluster {}", c.name)))?;
        for ns in list.items {
            if ns.metadata.deletion_timestamp.is_none()
                && let Some(name) = ns.metadata.name
            {
                placements.push(Placement { cluster: c.name.clone(), namespace: name });
            }
        }
    }
    Ok(Undo::DeleteNetworkPolicies { name: policy_name(tag), placements })
}

/// `host:port` of a cluster's API server, from its URL.
fn api_address(c: &ClusterHandle) -> Result<(String, u16), String> {
    let rest = c.server.split_once("://").map(|(_, r)| r).unwrap_or(&c.server);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p.parse().map_err(|_| format!("cluster {}: API server {}: bad port", c.name, c.server))?),
        _ => (authority, 443),
    };
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Where pods of `c` reach its API servers: the `default/kubernetes` Service's endpoints
/// (the address each API server advertises). The kubeconfig's server is where the harness
/// reaches it, which a pod may not (kind's is a port published on the machine's
/// loopback); it is the fallback only where the cluster lists no endpoint.
async fn api_endpoints(c: &ClusterHandle) -> Result<Vec<(String, u16)>, String> {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let slices = Api::<EndpointSlice>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await
        .map_err(|e| format!("listing the API server's endpoints of cluster {}: {}", c.name, crate::error::kube_message(&e)))?;
    let mut out = Vec::new();
    for slice in slices.items {
        let port = slice.ports.unwrap_or_default().iter().find(|p| p.name.as_deref() == Some("https")).and_then(|p| p.port);
        let Some(port) = port.and_then(|p| u16::try_from(p).ok()) else { continue };
        for e in slice.endpoints.iter().flatten() {
            out.extend(e.addresses.iter().map(|a| (a.clone(), port)));
        }
    }
    if out.is_empty() {
        out.push(api_address(c)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// What the other side's pods, nodes and API server are reached at: the addresses a
/// side's policy excepts.
async fn addresses(c: &ClusterHandle) -> Result<Vec<String>, FaultError> {
    let mut out: Vec<String> = Vec::new();
    let nodes = Api::<Node>::all(c.client.clone()).list(&ListParams::default()).await.map_err(kube_err(format!("listing nodes of cluster {}", c.name)))?;
    for n in nodes.items {
        let spec = n.spec.unwrap_or_default();
        for cidr in spec.pod_cidrs.unwrap_or_default().into_iter().chain(spec.pod_cidr) {
            if is_cidr(&cidr) {
                out.push(cidr);
            }
        }
        out.extend(n.status.and_then(|s| s.addresses).unwrap_or_default().iter().filter_map(|a| host_block(&a.address)));
    }
    out.extend(api_endpoints(c).await.map_err(FaultError::Invalid)?.iter().filter_map(|(host, _)| host_block(host)));
    let (host, port) = api_address(c).map_err(FaultError::Invalid)?;
    let ips: Vec<std::net::IpAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| FaultError::Invalid(format!("resolving the API server of cluster {} ({host}): {e}", c.name)))?
            .map(|a| a.ip())
            .collect(),
    };
    out.extend(ips.iter().filter_map(|ip| host_block(&ip.to_string())));
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(FaultError::Invalid(format!("partition: cluster {} has no address to cut off", c.name)));
    }
    Ok(out)
}

/// The one-address range of `address` (`/32`, `/128`); None when it is not an address.
fn host_block(address: &str) -> Option<String> {
    match address.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(ip) => Some(format!("{ip}/32")),
        std::net::IpAddr::V6(ip) => Some(format!("{ip}/128")),
    }
}

/// Whether `s` is an address range `ip/n` of either family.
fn is_cidr(s: &str) -> bool {
    s.split_once('/').is_some_and(|(ip, len)| match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len.parse::<u8>().is_ok_and(|l| l <= 32),
        Ok(std::net::IpAddr::V6(_)) => len.parse::<u8>().is_ok_and(|l| l <= 128),
        Err(_) => false,
    })
}

/// Every pod of `namespace` talks to anywhere, of both address families, except the other
/// side's ranges (each family's in its own block): traffic that does not cross the
/// partition, IPv6 included, is kept.
fn policy(name: &str, namespace: &str, except: &[String]) -> serde_json::Value {
    let (v6, v4): (Vec<&String>, Vec<&String>) = except.iter().partition(|c| c.contains(':'));
    let anywhere_but = serde_json::json!([
        { "ipBlock": { "cidr": "0.0.0.0/0", "except": v4 } },
        { "ipBlock": { "cidr": "::/0", "except": v6 } },
        { "namespaceSelector": {} }
    ]);
    serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": { "name": name, "namespace": namespace, "labels": { "app.kubernetes.io/managed-by": "firedrill" } },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{ "from": anywhere_but }],
            "egress": [{ "to": anywhere_but }]
        }
    })
}

pub async fn inject(env: &Env, between: &[String], name: &str, placements: &[Placement]) -> Result<(), FaultError> {
    let (a, b) = sides(env, between)?;
    for (side, other) in [(a, b), (b, a)] {
        let except = addresses(other).await?;
        let docs: Vec<String> = placements
            .iter()
            .filter(|p| p.cluster == side.name)
            .map(|p| serde_json::to_string(&policy(name, &p.namespace, &except)).expect("a policy serialises"))
            .collect();
        crate::apply::apply(&side.client, &format!("partition policies in cluster {}", side.name), &docs.join("\n---\n")).await.map_err(FaultError::Invalid)?;
    }
    Ok(())
}

/// Delete the policies (those already gone are fine) and any canary an interrupted proof
/// left.
pub async fn revert(env: &Env, name: &str, placements: &[Placement]) -> Result<(), FaultError> {
    for p in placements {
        let c = env.cluster(&p.cluster).map_err(super::backend_err(format!("partition: cluster {}", p.cluster)))?;
        let api: Api<k8s_openapi::api::networking::v1::NetworkPolicy> = Api::namespaced(c.client.clone(), &p.namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(kube_err(format!("deleting NetworkPolicy {}/{name} of cluster {}", p.namespace, p.cluster))(e)),
        }
    }
    let clusters: std::collections::BTreeSet<&str> = placements.iter().map(|p| p.cluster.as_str()).collect();
    for cluster in clusters {
        let c = env.cluster(cluster).map_err(super::backend_err(format!("partition: cluster {cluster}")))?;
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), CANARY_NAMESPACE);
        pods.delete_collection(&DeleteParams { grace_period_seconds: Some(0), ..Default::default() }, &ListParams::default().labels(CANARY_LABEL))
            .await
            .map_err(kube_err(format!("deleting canary pods of cluster {cluster}")))?;
    }
    Ok(())
}

/// Run a canary pod in `c` that connects to each of `targets`; its exit code (bit i set:
/// target i not reached).
async fn canary(env: &Env, c: &ClusterHandle, targets: &[String]) -> Result<i32, String> {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), CANARY_NAMESPACE);
    let name = format!("firedrill-canary-{}", crate::deploy::random_hex(4));
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { CANARY_LABEL: "true" } },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{ "name": "canary", "image": env.image(CANARY_IMAGE), "env": [{ "name": "CONNECT", "value": targets.join(",") }, { "name": "CONNECT_DELAY", "value": CANARY_DELAY_SECONDS.to_string() }] }]
        }
    }))
    .expect("a canary pod");
    pods.create(&PostParams::default(), &pod).await.map_err(|e| format!("creating canary pod in cluster {}: {}", c.name, crate::error::kube_message(&e)))?;
    let started = std::time::Instant::now();
    let result = loop {
        if let Ok(p) = pods.get(&name).await {
            let status = p.status.unwrap_or_default();
            if let Some(t) = status.container_statuses.unwrap_or_default().first().and_then(|s| s.state.as_ref()?.terminated.clone()) {
                break Ok(t.exit_code);
            }
            if started.elapsed() > CANARY_TIMEOUT {
                break Err(format!(
                    "canary pod {name} in cluster {} did not finish within {CANARY_TIMEOUT:?} (phase {})",
                    c.name,
                    status.phase.unwrap_or_default()
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = pods.delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
    result
}

/// In effect: a canary on each side reaches its own API server and not the other side's.
/// Undone: it reaches both.
pub async fn check(env: &Env, between: &[String], expect: Expect) -> Result<(), String> {
    let (a, b) = sides(env, between).map_err(|e| e.to_string())?;
    let mut wrong = Vec::new();
    for (side, other) in [(a, b), (b, a)] {
        let dial = |(host, port): (String, u16)| if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let own = dial(api_endpoints(side).await?.remove(0));
        let peer = dial(api_endpoints(other).await?.remove(0));
        let code = canary(env, side, &[own.clone(), peer.clone()]).await?;
        if code & 1 != 0 {
            return Err(format!(
                "a pod in {} cannot reach its own cluster's API server ({own}), so its view of {} proves nothing (canary exit {code})",
                side.name, other.name
            ));
        }
        let reached = code & 2 == 0;
        match (expect, reached) {
            (Expect::InEffect, true) => wrong.push(format!(
                "a pod in {} still reaches {}'s API server at {peer} (the cluster's network plugin does not enforce the NetworkPolicy)",
                side.name, other.name
            )),
            (Expect::Reverted, false) => wrong.push(format!("a pod in {} still cannot reach {}'s API server at {peer}", side.name, other.name)),
            _ => {}
        }
    }
    if wrong.is_empty() { Ok(()) } else { Err(wrong.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_both_families_are_cut_off_and_nothing_else() {
        assert!(is_cidr("198.19.128.0/24") && is_cidr("fd00::/64"));
        assert!(!is_cidr("198.19.128.0/33") && !is_cidr("198.19.128.0") && !is_cidr("fd00::/129"));
        assert_eq!(host_block("198.18.224.7").as_deref(), Some("198.18.224.7/32"));
        assert_eq!(host_block("fd00::5").as_deref(), Some("fd00::5/128"));
        assert_eq!(host_block("fd-k0-east-control-plane"), None);
    }

    #[test]
    fn policy_names_are_dns_labels() {
        let n = policy_name("management::east-partitioned/1");
        assert_eq!(n, "firedrill-partition-management--east-partitioned-1");
        assert!(policy_name(&"x".repeat(100)).len() <= 63);
    }

    #[test]
    fn the_policy_isolates_every_pod_and_excepts_only_the_other_side() {
        let p = policy("firedrill-partition-x", "default", &["198.18.64.5/32".into()]);
        assert_eq!(p["spec"]["podSelector"], serde_json::json!({}));
        assert_eq!(p["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
        assert_eq!(p["spec"]["egress"][0]["to"][0]["ipBlock"]["except"], serde_json::json!(["198.18.64.5/32"]));
        assert_eq!(p["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"], "0.0.0.0/0");
    }

    /// Before, only `0.0.0.0/0` was allowed: every IPv6 peer outside the cluster was cut
    /// off too, not only the other side.
    #[test]
    fn ipv6_that_does_not_cross_the_partition_is_kept_and_the_other_sides_is_cut() {
        let p = policy("firedrill-partition-x", "default", &["198.18.64.0/24".into(), "fd00:1::/64".into(), "fd00:2::5/128".into()]);
        for rule in [&p["spec"]["egress"][0]["to"], &p["spec"]["ingress"][0]["from"]] {
            assert_eq!(rule[0]["ipBlock"], serde_json::json!({"cidr": "0.0.0.0/0", "except": ["198.18.64.0/24"]}));
            assert_eq!(rule[1]["ipBlock"], serde_json::json!({"cidr": "::/0", "except": ["fd00:1::/64", "fd00:2::5/128"]}));
        }
        assert!(!is_cidr("nonsense/8"));
    }
}
