//! The Docker engine `make setup` provides (ci/docker.sh), as the kind backend will need it:
//! its addresses follow the address plan, and a privileged container starts on this host
//! and holds every capability the host's bounding set can give (where the set lacks one,
//! only through the runtime wrapper fixtures/docker/runc-capbnd).
//!
//! The container's image is a one-file root filesystem (Debian's static busybox) imported
//! with `docker import`: nothing is pulled.

use std::process::{Command, Output, Stdio};

use firedrill::backend::addresses::{Block, DOCKER_BRIDGE, DOCKER_POOLS};

const IMAGE: &str = "firedrill-test/busybox:1";

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("the docker CLI runs (make setup installs an engine)")
}

fn ok(args: &[&str]) -> String {
    let o = docker(args);
    assert!(o.status.success(), "docker {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn engine() {
    let o = docker(&["info", "--format", "{{.ServerVersion}}"]);
    assert!(o.status.success(), "no Docker engine answers: `make setup` starts one (ci/docker.sh); {}", String::from_utf8_lossy(&o.stderr));
}

fn subnets(network: &str) -> Vec<Block> {
    ok(&["network", "inspect", network, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"])
        .split_whitespace()
        .map(|s| Block::parse(s).unwrap_or_else(|| panic!("network {network}: subnet `{s}` is not an IPv4 block")))
        .collect()
}

/// Removes the network when dropped.
struct Network(&'static str);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", self.0]);
    }
}

#[test]
fn the_engine_follows_the_address_plan() {
    engine();
    let fix = "set \"bip\" and \"default-address-pools\" as `firedrill addresses --docker-daemon-json` prints them";
    assert_eq!(subnets("bridge"), vec![DOCKER_BRIDGE], "the default bridge is outside the plan: {fix}");
    let _ = docker(&["network", "rm", "fd-test-pool"]);
    ok(&["network", "create", "fd-test-pool"]);
    let _net = Network("fd-test-pool");
    let got = subnets("fd-test-pool");
    assert!(!got.is_empty() && got.iter().all(|b| DOCKER_POOLS.contains(*b)), "a new network got {got:?}, outside {DOCKER_POOLS}: {fix}");
}

fn busybox_image() {
    if docker(&["image", "inspect", IMAGE]).status.success() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("bin/busybox")).expect("/bin/busybox (Debian's busybox-static; make setup installs it)");
    let tar = Command::new("tar").args(["-C"]).arg(dir.path()).args(["-c", "."]).stdout(Stdio::piped()).spawn().expect("tar runs");
    let import = Command::new("docker").args(["import", "-", IMAGE]).stdin(tar.stdout.expect("tar's output")).output().expect("docker import runs");
    assert!(import.status.success(), "docker import: {}", String::from_utf8_lossy(&import.stderr));
}

fn cap_bits(status: &str, field: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(line[field.len()..].trim(), 16).expect("a hex capability set")
}

/// Capabilities 0–37 (through CAP_AUDIT_READ): every Docker engine since 20.10 grants them
/// all to a privileged container; newer ones add the later capabilities.
const GRANTED_BY_EVERY_ENGINE: u64 = (1 << 38) - 1;

#[test]
fn a_privileged_container_starts_with_every_capability_the_host_can_give() {
    engine();
    busybox_image();
    let run = |runtime: Option<&str>| {
        let mut args = vec!["run", "--rm", "--privileged", "--network", "none"];
        if let Some(r) = runtime {
            args.extend(["--runtime", r]);
        }
        args.extend([IMAGE, "/bin/busybox", "cat", "/proc/self/status"]);
        docker(&args)
    };
    let o = run(None);
    assert!(o.status.success(), "a privileged container does not start: {}", String::from_utf8_lossy(&o.stderr));
    let inside = String::from_utf8_lossy(&o.stdout).into_owned();
    let host = cap_bits(&std::fs::read_to_string("/proc/self/status").unwrap(), "CapBnd:");
    let eff = cap_bits(&inside, "CapEff:");
    assert_eq!(eff, cap_bits(&inside, "CapBnd:"), "a privileged container holds its whole bounding set");
    assert_eq!(eff & !host, 0, "the container holds capabilities the host cannot give: {eff:x} vs {host:x}");
    assert_eq!(host & GRANTED_BY_EVERY_ENGINE & !eff, 0, "capabilities the host can give are missing: {eff:x} vs {host:x}");
    if host & GRANTED_BY_EVERY_ENGINE != GRANTED_BY_EVERY_ENGINE {
        // The host lacks one: plain runc is what fails, and the wrapper is what works.
        let plain = run(Some("runc"));
        let err = String::from_utf8_lossy(&plain.stderr);
        assert!(!plain.status.success() && err.contains("caps"), "plain runc should fail to apply capabilities here: {err}");
    }
}

/// A partition on kind is reverted in each node container's namespace, skipped only where
/// the container (and so its namespace and table) is gone. Before, any failure of `docker
/// inspect` (an engine that does not answer) counted as gone and the partition as
/// reverted.
#[test]
fn a_container_that_cannot_be_inspected_is_not_taken_for_gone() {
    use firedrill::backend::kind::ops;
    engine();
    assert!(!ops::has_netns("fd-no-such-container-of-the-tests").unwrap(), "a container that does not exist has no namespace left");
    let o = Command::new("docker")
        .args(["inspect", "--type", "container", "fd-no-such-container-of-the-tests"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!ops::is_no_such_container(&stderr), "an engine that does not answer read as a container gone: {stderr}");
}
