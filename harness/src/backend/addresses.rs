//! The address plan, written once. Every address firedrill uses — local bridges and
//! nodes, service ranges, Docker's bridge and pools, kind's network, pod and service
//! subnets — lies in 198.18.0.0/15, the range reserved for network testing, split so that
//! the backends can never collide:
//!
//! | block | what |
//! | --- | --- |
//! | 198.18.1.0/24 … 198.18.120.0/24 | local runs 1–120: one bridge each, its nodes and hosts |
//! | 198.19.1.0/24 … 198.19.120.0/24 | local runs 1–120: the service ranges of their clusters (/26 each) |
//! | 198.18.128.0/24 | Docker's default bridge |
//! | 198.18.192.0/19 | Docker's address pools (/24 networks it allocates itself) |
//! | 198.18.224.0/24 … 198.18.227.0/24 | kind runs 0–3: the Docker network of each (nodes from its lower /25, hosts at .200 on) |
//! | 198.19.128.0/18 | kind clusters' pod subnets (/22 each: run × 4 + cluster) |
//! | 198.19.192.0/18 | kind clusters' service subnets (/22 each, likewise) |
//!
//! Nothing here is routed, NATed or forwarded to the machine's uplink; the local backend
//! blackholes the whole test range on the host so that an address no bridge serves goes
//! nowhere.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

/// An IPv4 block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Block {
    pub const fn new(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Block {
        Block { base: Ipv4Addr::new(a, b, c, d), prefix }
    }

    fn mask(self) -> u32 {
        if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) }
    }

    pub fn first(self) -> u32 {
        u32::from(self.base) & self.mask()
    }

    pub fn last(self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(self, other: Block) -> bool {
        other.first() >= self.first() && other.last() <= self.last()
    }

    pub fn overlaps(self, other: Block) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    pub fn parse(text: &str) -> Option<Block> {
        let (ip, prefix) = text.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        Some(Block { base: ip.parse().ok()?, prefix })
    }
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// The whole test range.
pub const TEST_RANGE: Block = Block::new(198, 18, 0, 0, 15);
/// Local run numbers: run `n` uses 198.18.n.0/24 and 198.19.n.0/24.
pub const LOCAL_RUNS: RangeInclusive<u8> = 1..=120;
/// Docker's default bridge (`bip`).
pub const DOCKER_BRIDGE: Block = Block::new(198, 18, 128, 0, 24);
/// Docker's default address pools, split into /24 networks.
pub const DOCKER_POOLS: Block = Block::new(198, 18, 192, 0, 19);
/// kind run numbers: run `n` creates its Docker network in 198.18.(224+n).0/24.
pub const KIND_RUNS: RangeInclusive<u8> = 0..=3;
/// Clusters per kind run (each gets a /22 of pod and of service addresses).
pub const KIND_CLUSTERS_PER_RUN: u8 = 4;
/// Pod subnets of kind clusters.
pub const KIND_PODS: Block = Block::new(198, 19, 128, 0, 18);
/// Service subnets of kind clusters.
pub const KIND_SERVICES: Block = Block::new(198, 19, 192, 0, 18);

/// The blocks of local run `n`: its bridge, and its clusters' service ranges.
pub fn local_run(n: u8) -> [Block; 2] {
    [Block::new(198, 18, n, 0, 24), Block::new(198, 19, n, 0, 24)]
}

/// The Docker network of kind run `n`.
pub fn kind_network(n: u8) -> Block {
    Block::new(198, 18, 224 + n, 0, 24)
}

/// Where Docker allocates node containers' addresses in kind run `n`'s network: its lower
/// half, so that the fixed addresses of hosts above never collide with a node's.
pub fn kind_nodes(n: u8) -> Block {
    let net = kind_network(n);
    Block { base: net.base, prefix: net.prefix + 1 }
}

/// How many hosts outside the clusters a kind run may have.
pub const KIND_HOSTS_PER_RUN: u8 = 32;

/// The fixed address of host `i` (in the order the run lists them) of kind run `n`.
pub fn kind_host(n: u8, i: u8) -> Ipv4Addr {
    assert!(KIND_RUNS.contains(&n) && i < KIND_HOSTS_PER_RUN, "kind run {n} host {i} is outside the plan");
    Ipv4Addr::from(kind_network(n).first() + 200 + u32::from(i))
}

/// The pod and service subnets of cluster `k` of kind run `n`.
pub fn kind_cluster(n: u8, k: u8) -> (Block, Block) {
    assert!(KIND_RUNS.contains(&n) && k < KIND_CLUSTERS_PER_RUN, "kind run {n} cluster {k} is outside the plan");
    let offset = (u32::from(n) * u32::from(KIND_CLUSTERS_PER_RUN) + u32::from(k)) << 10;
    let at = |b: Block| Block { base: Ipv4Addr::from(b.first() + offset), prefix: 22 };
    (at(KIND_PODS), at(KIND_SERVICES))
}

/// The blocks the backends share, named.
const SHARED: [(&str, Block); 4] = [
    ("Docker's default bridge (bip)", DOCKER_BRIDGE),
    ("Docker's address pools, /24 networks it allocates itself", DOCKER_POOLS),
    ("kind clusters' pod subnets, /22 each (run × 4 + cluster)", KIND_PODS),
    ("kind clusters' service subnets, /22 each (run × 4 + cluster)", KIND_SERVICES),
];

/// Every block of the plan, named, for checks and messages.
pub fn plan() -> Vec<(String, Block)> {
    let mut out: Vec<(String, Block)> = LOCAL_RUNS
        .flat_map(|n| {
            let [bridge, services] = local_run(n);
            [(format!("local run {n} bridge"), bridge), (format!("local run {n} services"), services)]
        })
        .collect();
    out.extend(KIND_RUNS.map(|n| (format!("kind run {n} network"), kind_network(n))));
    out.extend(SHARED.iter().map(|(name, b)| (name.to_string(), *b)));
    out
}

/// The configuration firedrill starts a Docker engine with (`dockerd --config-file`): its
/// bridge and address pools from the plan; neither IP forwarding nor masquerade, so no
/// container traffic is routed or NATed to the machine's uplink (containers of one network
/// reach each other bridged, and the host on the bridge address); `runtime`, when given,
/// as the default OCI runtime (the capability-bounding wrapper, see `fixtures/docker/`).
pub fn docker_daemon_config(runtime: Option<&std::path::Path>) -> serde_json::Value {
    let bip = own_bridge_address();
    let mut config = serde_json::json!({
        "bip": bip.to_string(),
        "default-address-pools": [{ "base": DOCKER_POOLS.to_string(), "size": 24 }],
        "ip-forward": false,
        "ip-masq": false,
        "log-driver": "json-file",
        "log-opts": { "max-size": "10m", "max-file": "2" },
    });
    if let Some(path) = runtime {
        config["runtimes"] = serde_json::json!({ "firedrill-runc": { "path": path.display().to_string() } });
        config["default-runtime"] = "firedrill-runc".into();
    }
    config
}

/// The configuration of firedrill's own engine (`ci/docker.sh` starts it only where no
/// engine runs): [`docker_daemon_config`] on paths, a socket and a bridge of its own
/// (`kind::engine`), so that an engine of the machine's, installed but stopped, keeps its
/// data, its socket and its `docker0` as they were. The bridge carries the plan's address.
pub fn own_engine_config(runtime: Option<&std::path::Path>) -> serde_json::Value {
    use super::kind::engine;
    let mut config = docker_daemon_config(runtime);
    let object = config.as_object_mut().expect("the configuration is an object");
    object.remove("bip");
    object.insert("bridge".into(), engine::OWN_BRIDGE.into());
    object.insert("data-root".into(), engine::OWN_DATA_ROOT.into());
    object.insert("exec-root".into(), engine::OWN_EXEC_ROOT.into());
    object.insert("pidfile".into(), engine::OWN_PIDFILE.into());
    object.insert("hosts".into(), serde_json::json!([engine::own_host()]));
    config
}

/// The address of firedrill's own engine's bridge, with its prefix.
pub fn own_bridge_address() -> Block {
    Block { base: Ipv4Addr::from(DOCKER_BRIDGE.first() + 1), prefix: DOCKER_BRIDGE.prefix }
}

/// The plan as a table, for `firedrill addresses`.
pub fn describe() -> String {
    let first = *LOCAL_RUNS.start();
    let last = *LOCAL_RUNS.end();
    let [b1, s1] = local_run(first);
    let [bn, sn] = local_run(last);
    let mut rows = vec![
        (format!("{b1} … {bn}"), format!("local runs {first}–{last}: one bridge each, its nodes and hosts")),
        (format!("{s1} … {sn}"), format!("local runs {first}–{last}: their clusters' service ranges")),
    ];
    let (k1, kn) = (*KIND_RUNS.start(), *KIND_RUNS.end());
    rows.push((
        format!("{} … {}", kind_network(k1), kind_network(kn)),
        format!("kind runs {k1}–{kn}: the Docker network of each: nodes in its lower /25, hosts from .200"),
    ));
    rows.extend(SHARED.iter().map(|(name, b)| (b.to_string(), name.to_string())));
    let mut out = format!("every address lies in {TEST_RANGE}\n");
    for (block, what) in rows {
        out.push_str(&format!("  {block:<34} {what}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docker_configuration_is_the_plan() {
        let c = docker_daemon_config(None);
        let bip = Block::parse(c["bip"].as_str().unwrap()).unwrap();
        assert!(DOCKER_BRIDGE.contains(Block { base: bip.base, prefix: 32 }));
        assert_eq!(bip.prefix, DOCKER_BRIDGE.prefix);
        assert_eq!(Block::parse(c["default-address-pools"][0]["base"].as_str().unwrap()), Some(DOCKER_POOLS));
        assert_eq!(c["ip-masq"], false);
        assert_eq!(c["ip-forward"], false);
        assert!(c.get("default-runtime").is_none());
        let w = docker_daemon_config(Some(std::path::Path::new("/x/runc-capbnd")));
        assert_eq!(w["default-runtime"], "firedrill-runc");
        assert_eq!(w["runtimes"]["firedrill-runc"]["path"], "/x/runc-capbnd");
    }

    #[test]
    fn firedrills_own_engine_has_its_own_socket_paths_and_bridge() {
        let c = own_engine_config(None);
        assert!(c.get("bip").is_none(), "a bip re-addresses the bridge the engine is given");
        assert_eq!(c["bridge"], "fd-docker0");
        assert_eq!(c["hosts"], serde_json::json!(["unix:///run/firedrill/docker.sock"]));
        for key in ["data-root", "exec-root", "pidfile"] {
            let p = c[key].as_str().unwrap();
            assert!(!p.starts_with("/var/lib/docker") && !p.starts_with("/var/run/docker") && !p.starts_with("/run/docker"), "{key}: {p}");
        }
        assert_eq!(c["default-address-pools"], docker_daemon_config(None)["default-address-pools"]);
    }

    #[test]
    fn every_block_is_inside_the_test_range_and_none_overlaps_another() {
        let plan = plan();
        for (name, b) in &plan {
            assert!(TEST_RANGE.contains(*b), "{name} ({b}) is outside {TEST_RANGE}");
        }
        for (i, (a_name, a)) in plan.iter().enumerate() {
            for (b_name, b) in &plan[i + 1..] {
                assert!(!a.overlaps(*b), "{a_name} ({a}) overlaps {b_name} ({b})");
            }
        }
    }

    #[test]
    fn the_local_backend_stays_inside_its_blocks() {
        use crate::backend::local::net::Subnet;
        for n in LOCAL_RUNS {
            let s = Subnet { index: n };
            let [bridge, services] = local_run(n);
            for host in [1, 10, 250] {
                assert!(bridge.contains(Block { base: s.host_ip(host), prefix: 32 }));
            }
            assert!(bridge.contains(Block { base: s.bridge_ip(), prefix: 32 }));
            for k in 0..4 {
                let r = Block::parse(&s.service_range(k)).expect("a block");
                assert!(services.contains(r), "run {n}: service range {r} outside {services}");
            }
        }
    }

    #[test]
    fn kind_clusters_get_distinct_subnets_inside_their_blocks() {
        let mut all = Vec::new();
        for n in KIND_RUNS {
            assert!(TEST_RANGE.contains(kind_network(n)));
            for k in 0..KIND_CLUSTERS_PER_RUN {
                let (pods, services) = kind_cluster(n, k);
                assert!(KIND_PODS.contains(pods), "{pods}");
                assert!(KIND_SERVICES.contains(services), "{services}");
                all.extend([pods, services]);
            }
        }
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| !a.overlaps(*b)), "{a} overlaps another kind subnet");
        }
        assert_eq!(kind_cluster(0, 0).0.to_string(), "198.19.128.0/22");
        assert_eq!(kind_cluster(3, 3).1.to_string(), "198.19.252.0/22");
    }

    #[test]
    fn kind_hosts_sit_above_the_nodes_and_inside_their_network() {
        for n in KIND_RUNS {
            let nodes = kind_nodes(n);
            assert!(kind_network(n).contains(nodes));
            for i in [0, KIND_HOSTS_PER_RUN - 1] {
                let h = Block { base: kind_host(n, i), prefix: 32 };
                assert!(kind_network(n).contains(h), "{h}");
                assert!(!nodes.contains(h), "{h} is in the nodes' range {nodes}");
                assert!(kind_host(n, i).octets()[3] < 255, "{h} is the broadcast address");
            }
        }
        assert_eq!(kind_host(1, 0).to_string(), "198.18.225.200");
    }

    #[test]
    fn blocks_parse_and_compare() {
        let b = Block::parse("198.18.192.0/19").unwrap();
        assert_eq!(b, DOCKER_POOLS);
        assert!(b.contains(Block::parse("198.18.200.0/24").unwrap()));
        assert!(!b.contains(Block::parse("198.18.128.0/24").unwrap()));
        assert!(Block::parse("198.18.0.0/33").is_none());
    }
}
