//! Hosts as network namespaces on a bridge with no uplink.
//!
//! Every run gets one /24 of 198.18.0.0/15 (the range reserved for network testing) and one
//! bridge holding the host side of each namespace's veth. The bridge has an address so the
//! harness reaches every host; nothing routes, NATs or forwards anywhere else: hosts get no
//! default route and the machine's forwarding setting is never touched.

use std::net::Ipv4Addr;

use super::state::Ledger;
use crate::backend::BackendError;

/// Run `ip` (or any command) and turn a failure into an error naming the command.
pub fn run(program: &str, args: &[&str]) -> Result<String, BackendError> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| BackendError::Command { command: format!("{program} {}", args.join(" ")), stderr: e.to_string() })?;
    if !out.status.success() {
        return Err(BackendError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The addresses of run number `index` (1..=250).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub index: u8,
}

impl Subnet {
    pub fn bridge_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.index, 1)
    }
    pub fn host_ip(self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.index, n)
    }
    /// Service cluster-IP range of cluster number `k` (0..4): allocated by the API server,
    /// never routed; kept inside the test range all the same.
    pub fn service_range(self, k: usize) -> String {
        format!("198.19.{}.{}/26", self.index, k * 64)
    }
    pub fn bridge_name(self) -> String {
        format!("fd{}br", self.index)
    }
    pub fn veth_name(self, n: u8) -> String {
        format!("fd{}v{}", self.index, n)
    }
}

/// The whole test range, blackholed on the host: traffic to an address of 198.18.0.0/15 that
/// no run's bridge serves (a run already torn down) is dropped here instead of following
/// the default route out of the machine. Bridges' own /24 routes are more specific and win.
/// Added by the first local run on the machine (with a marker saying firedrill added it),
/// removed by `down` of the last one; a route of the same kind that was there before is
/// the machine's, and stays. Both under the lock run numbers are claimed under.
pub const TEST_RANGE: &str = "198.18.0.0/15";
const _: () = assert!(crate::backend::addresses::TEST_RANGE.prefix == 15);

fn blackhole_marker() -> std::path::PathBuf {
    crate::backend::numbers::machine_dir().join("blackhole-route")
}

pub fn blackhole_present() -> Result<bool, BackendError> {
    Ok(!run("ip", &["route", "show", "type", "blackhole", TEST_RANGE])?.trim().is_empty())
}

pub fn ensure_test_range_blackhole() -> Result<(), BackendError> {
    if !blackhole_present()? {
        let marker = blackhole_marker();
        std::fs::write(&marker, format!("firedrill added `ip route add blackhole {TEST_RANGE}`\n")).map_err(|e| BackendError::io(&marker, e))?;
        run("ip", &["route", "add", "blackhole", TEST_RANGE])?;
    }
    Ok(())
}

/// Remove the blackhole when firedrill added it and no local run holds a number any more.
pub fn release_test_range_blackhole() -> Result<(), BackendError> {
    let marker = blackhole_marker();
    if crate::backend::numbers::held("local") > 0 || !marker.exists() {
        return Ok(());
    }
    if blackhole_present()? {
        run("ip", &["route", "del", "blackhole", TEST_RANGE])?;
    }
    std::fs::remove_file(&marker).map_err(|e| BackendError::io(&marker, e))
}

pub fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Create the run's bridge. Recorded in the ledger before it is created.
pub fn create_bridge(ledger: &Ledger, subnet: Subnet) -> Result<(), BackendError> {
    let br = subnet.bridge_name();
    ledger.record("link", &br)?;
    if !link_exists(&br) {
        run("ip", &["link", "add", &br, "type", "bridge"])?;
    }
    // Idempotent: `replace` rather than `add` for the address.
    run("ip", &["addr", "replace", &format!("{}/24", subnet.bridge_ip()), "dev", &br])?;
    run("ip", &["link", "set", &br, "up"])?;
    Ok(())
}

/// Where a Docker engine (or anything else driving iptables) sets the FORWARD policy of
/// table `ip filter` to drop while the kernel passes bridged frames through it
/// (`bridge-nf-call-iptables` = 1, as br_netfilter does), traffic between two hosts of the
/// run's bridge is dropped. Then let the run's own bridge through: one rule at the top of
/// that chain, for frames entering and leaving this bridge only, recorded in the ledger
/// before it is added and removed by `down` (and by the daemon's teardown). Nothing is
/// changed where the path does not drop.
pub fn let_bridge_through(ledger: &Ledger, subnet: Subnet) -> Result<(), BackendError> {
    let br = subnet.bridge_name();
    if std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").map(|v| v.trim() != "1").unwrap_or(true) {
        return Ok(());
    }
    let Ok(chain) = run("nft", &["list", "chain", "ip", "filter", "FORWARD"]) else { return Ok(()) };
    if !chain.contains("policy drop") || chain.contains(&forward_comment(&br)) {
        return Ok(());
    }
    ledger.record("forward-rule", &br)?;
    run("nft", &["insert", "rule", "ip", "filter", "FORWARD", "iifname", &br, "oifname", &br, "accept", "comment", &format!("\"{}\"", forward_comment(&br))])
        .map_err(|e| BackendError::Setup(format!("bridged traffic of {br} is dropped by the FORWARD policy of table ip filter (a Docker engine sets it), and letting it through failed: {e}; allow it with `nft insert rule ip filter FORWARD iifname {br} oifname {br} accept`, or stop the engine")))?;
    Ok(())
}

fn forward_comment(bridge: &str) -> String {
    format!("firedrill {bridge}")
}

/// Remove the rules [`let_bridge_through`] added for `bridge`; absent is fine.
pub fn delete_forward_rule(bridge: &str) -> Result<(), BackendError> {
    let Ok(chain) = run("nft", &["-a", "list", "chain", "ip", "filter", "FORWARD"]) else { return Ok(()) };
    let comment = format!("comment \"{}\"", forward_comment(bridge));
    for line in chain.lines().filter(|l| l.contains(&comment)) {
        if let Some(handle) = line.rsplit_once("# handle ").map(|(_, h)| h.trim()) {
            run("nft", &["delete", "rule", "ip", "filter", "FORWARD", "handle", handle])?;
        }
    }
    Ok(())
}

/// Create a namespace with one veth on the bridge at `ip`. Recorded before it is created.
pub fn create_host(ledger: &Ledger, subnet: Subnet, netns: &str, veth_n: u8, ip: Ipv4Addr) -> Result<(), BackendError> {
    let veth = subnet.veth_name(veth_n);
    ledger.record("netns", netns)?;
    ledger.record("link", &veth)?;
    if !netns_exists(netns) {
        run("ip", &["netns", "add", netns])?;
    }
    run("ip", &["-n", netns, "link", "set", "lo", "up"])?;
    let peer = format!("{veth}p");
    if !link_exists(&veth) {
        run("ip", &["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
        run("ip", &["link", "set", &peer, "netns", netns])?;
        run("ip", &["-n", netns, "link", "set", &peer, "name", "eth0"])?;
    }
    run("ip", &["-n", netns, "addr", "replace", &format!("{ip}/24"), "dev", "eth0"])?;
    run("ip", &["-n", netns, "link", "set", "eth0", "up"])?;
    run("ip", &["link", "set", &veth, "master", &subnet.bridge_name()])?;
    run("ip", &["link", "set", &veth, "up"])?;
    Ok(())
}

/// Delete a namespace (its veth goes with it). Absent is fine.
pub fn delete_netns(name: &str) -> Result<(), BackendError> {
    if netns_exists(name) {
        run("ip", &["netns", "del", name])?;
    }
    Ok(())
}

/// Delete a link. Absent is fine.
pub fn delete_link(name: &str) -> Result<(), BackendError> {
    if link_exists(name) {
        run("ip", &["link", "del", name])?;
    }
    Ok(())
}

/// Every namespace and link name this machine has that firedrill's naming could have made.
pub fn firedrill_names() -> (Vec<String>, Vec<String>) {
    let netns = std::fs::read_dir("/run/netns").into_iter().flatten().filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| is_ours(n)).collect();
    let links =
        std::fs::read_dir("/sys/class/net").into_iter().flatten().filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| is_ours(n)).collect();
    (netns, links)
}

/// `fd<digits>…`: the prefix of every namespace, bridge and veth firedrill creates.
fn is_ours(name: &str) -> bool {
    name.strip_prefix("fd").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interface_limits_and_stay_in_the_test_range() {
        let s = Subnet { index: *crate::backend::addresses::LOCAL_RUNS.end() };
        assert!(s.bridge_name().len() <= 15);
        assert!(s.veth_name(250).len() + 1 <= 15, "peer name adds one char");
        assert_eq!(s.host_ip(10).octets()[..2], [198, 18]);
        assert!(s.service_range(3).starts_with("198.19.120.192/"));
        assert!(is_ours("fd3br") && is_ours("fd12-main-worker-1") && !is_ours("fdisk") && !is_ours("eth0"));
    }
}

/// What a TCP connection attempt met: the kernel's view of reachability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Something accepted the connection.
    Connected,
    /// The peer answered with a reset: reachable, nothing listening.
    Refused,
    /// No answer at all within the timeout: packets dropped on the way.
    TimedOut,
    Other(String),
}

/// Try a TCP connection to `addr` from inside network namespace `netns` (from the
/// harness's own namespace when `None`). The attempt runs on a thread of its own, which
/// enters the namespace: a namespace is per thread, so nothing else moves.
pub fn reach(netns: Option<&str>, addr: std::net::SocketAddr, timeout: std::time::Duration) -> Reach {
    let netns = netns.map(String::from);
    let attempt = std::thread::spawn(move || {
        if let Some(ns) = netns {
            // A name under /run/netns, or a namespace's path (`/proc/<pid>/ns/net`).
            let path = if ns.starts_with('/') { std::path::PathBuf::from(&ns) } else { std::path::Path::new("/run/netns").join(&ns) };
            let file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) => return Reach::Other(format!("opening network namespace {ns}: {e}")),
            };
            if let Err(e) = nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET) {
                return Reach::Other(format!("entering network namespace {ns}: {e}"));
            }
        }
        match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => Reach::Connected,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Reach::Refused,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock => Reach::TimedOut,
            Err(e) => Reach::Other(e.to_string()),
        }
    });
    attempt.join().unwrap_or_else(|_| Reach::Other("the connection attempt panicked".into()))
}

/// The discard port: nothing of a run listens on it, so a reachable peer refuses it at
/// once and an unreachable one does not answer — what faults prove partitions with.
pub const DISCARD_PORT: u16 = 9;
