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
//! | 198.18.192.0/18 | Docker's address pools (/24 networks): kind's network |
//! | 198.19.128.0/18 | kind clusters' pod subnets |
//! | 198.19.192.0/18 | kind clusters' service subnets |
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
/// Docker's default address pools, split into /24 networks (kind's network is one).
pub const DOCKER_POOLS: Block = Block::new(198, 18, 192, 0, 18);
/// Pod subnets of kind clusters.
pub const KIND_PODS: Block = Block::new(198, 19, 128, 0, 18);
/// Service subnets of kind clusters.
pub const KIND_SERVICES: Block = Block::new(198, 19, 192, 0, 18);

/// The blocks of local run `n`: its bridge, and its clusters' service ranges.
pub fn local_run(n: u8) -> [Block; 2] {
    [Block::new(198, 18, n, 0, 24), Block::new(198, 19, n, 0, 24)]
}

/// The blocks the backends share, named.
const SHARED: [(&str, Block); 4] = [
    ("Docker's default bridge (bip)", DOCKER_BRIDGE),
    ("Docker's address pools, /24 networks (kind's network)", DOCKER_POOLS),
    ("kind clusters' pod subnets", KIND_PODS),
    ("kind clusters' service subnets", KIND_SERVICES),
];

/// Every block of the plan, named, for checks and messages.
pub fn plan() -> Vec<(String, Block)> {
    let mut out: Vec<(String, Block)> = LOCAL_RUNS
        .flat_map(|n| {
            let [bridge, services] = local_run(n);
            [(format!("local run {n} bridge"), bridge), (format!("local run {n} services"), services)]
        })
        .collect();
    out.extend(SHARED.iter().map(|(name, b)| (name.to_string(), *b)));
    out
}

/// The configuration firedrill starts a Docker engine with (`dockerd --config-file`): its
/// bridge and address pools from the plan; neither IP forwarding nor masquerade, so no
/// container traffic is routed or NATed to the machine's uplink (containers of one network
/// reach each other bridged, and the host on the bridge address); `runtime`, when given,
/// as the default OCI runtime (the capability-bounding wrapper, see `fixtures/docker/`).
pub fn docker_daemon_config(runtime: Option<&std::path::Path>) -> serde_json::Value {
    let bip = Block { base: Ipv4Addr::from(DOCKER_BRIDGE.first() + 1), prefix: DOCKER_BRIDGE.prefix };
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
    fn blocks_parse_and_compare() {
        let b = Block::parse("198.18.192.0/18").unwrap();
        assert_eq!(b, DOCKER_POOLS);
        assert!(b.contains(Block::parse("198.18.200.0/24").unwrap()));
        assert!(!b.contains(Block::parse("198.18.128.0/24").unwrap()));
        assert!(Block::parse("198.18.0.0/33").is_none());
    }
}
