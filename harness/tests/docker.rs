//! The Docker engine `make setup` provides (ci/docker.sh), as the kind backend will need it:
//! its addresses follow the address plan, and a privileged container starts on this host
//! and holds every capability the host's bounding set can give (where the set lacks one,
//! only through the runtime wrapper fixtures/docker/runc-capbnd).
//!
//! The container's image is a one-file root filesystem (Debian's static busybox) imported
//! with `docker import`: nothing is pulled.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use firedrill::backend::addresses::{Block, DOCKER_BRIDGE, DOCKER_POOLS};
use firedrill::backend::kind::engine;

const IMAGE: &str = "firedrill-test/busybox:1";

fn docker(args: &[&str]) -> Output {
    engine::command("docker").args(args).output().expect("the docker CLI runs (make setup installs an engine)")
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

/// What the kind backend needs of any engine, the user's or a runner's included: a network
/// with a subnet of the plan (each kind run's network is made so). The daemon's own bridge
/// and pools are the plan's only on an engine firedrill started: an engine of the user's is
/// left as it is.
#[test]
fn the_engine_takes_the_address_plan() {
    engine();
    let _ = docker(&["network", "rm", "fd-test-pool"]);
    let block = Block { base: DOCKER_POOLS.base, prefix: 24 };
    ok(&["network", "create", "--subnet", &block.to_string(), "fd-test-pool"]);
    let _net = Network("fd-test-pool");
    assert_eq!(subnets("fd-test-pool"), vec![block]);
    if engine::in_effect().as_deref() != Some(engine::own_host().as_str()) {
        return;
    }
    let fix = "ci/docker.sh starts firedrill's own engine with `firedrill addresses --docker-daemon-json --own-engine`";
    assert_eq!(subnets("bridge"), vec![DOCKER_BRIDGE], "firedrill's engine's default bridge is outside the plan: {fix}");
    assert_eq!(ok(&["network", "inspect", "bridge", "--format", "{{index .Options \"com.docker.network.bridge.name\"}}"]), engine::OWN_BRIDGE);
    let _ = docker(&["network", "rm", "fd-test-pool-2"]);
    ok(&["network", "create", "fd-test-pool-2"]);
    let _net2 = Network("fd-test-pool-2");
    let got = subnets("fd-test-pool-2");
    assert!(!got.is_empty() && got.iter().all(|b| DOCKER_POOLS.contains(*b)), "a new network got {got:?}, outside {DOCKER_POOLS}: {fix}");
}

/// Every dockerd on the machine, with the configuration file it was started with.
fn dockerds() -> Vec<(u32, Option<PathBuf>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if std::fs::read_to_string(entry.path().join("comm")).map(|c| c.trim() != "dockerd").unwrap_or(true) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let config = args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix("--config-file=").map(PathBuf::from).or_else(|| (a == "--config-file").then(|| args.get(i + 1).map(PathBuf::from)).flatten())
        });
        out.push((pid, config));
    }
    out
}

/// Root reads or executes `path`: it lies in no home directory, and it and every directory
/// above it are root's and writable by nobody else.
fn only_root_can_change(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    assert!(!path.starts_with("/root") && !path.starts_with("/home"), "root's engine uses {}, inside a home directory", path.display());
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let sticky = m.mode() & 0o1000 != 0;
        assert!(
            m.uid() == 0 && (m.mode() & 0o022 == 0 || sticky && p != path),
            "{} ({:o}, uid {}) can be changed by others than root",
            p.display(),
            m.mode(),
            m.uid()
        );
    }
}

/// An engine firedrill starts (ci/docker.sh) is its own: its own socket, data and exec
/// roots and bridge, configured from root-owned files; the machine's engine, installed but
/// not running (Debian's docker.io here), is neither started nor re-addressed by running
/// the set-up again. Before, ci/docker.sh started dockerd on /var/lib/docker and the
/// machine's socket, re-addressed docker0, and read its configuration and runtime wrapper
/// from the invoking user's cache.
#[test]
fn an_engine_firedrill_starts_is_its_own_and_the_machines_is_left_as_it_was() {
    engine();
    let default_socket = || std::os::unix::net::UnixStream::connect("/var/run/docker.sock").is_ok();
    let docker0 = || {
        Command::new("ip").args(["-o", "addr", "show", "dev", "docker0"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    };
    let (socket_before, docker0_before) = (default_socket(), docker0());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let setup = Command::new(root.join("ci/docker.sh")).arg(env!("CARGO_BIN_EXE_firedrill")).current_dir(root).output().unwrap();
    assert!(setup.status.success(), "ci/docker.sh: {}", String::from_utf8_lossy(&setup.stderr));
    assert_eq!(default_socket(), socket_before, "the set-up changed whether the machine's engine answers");
    assert_eq!(docker0(), docker0_before, "the set-up changed docker0");

    let ours: Vec<(u32, PathBuf)> =
        dockerds().into_iter().filter_map(|(pid, c)| c.filter(|c| c.to_string_lossy().contains("firedrill")).map(|c| (pid, c))).collect();
    if engine::in_effect().as_deref() == Some(engine::own_host().as_str()) {
        assert_eq!(ours.len(), 1, "firedrill's engine answers, so exactly one dockerd runs with firedrill's configuration: {ours:?}");
    }
    for (pid, config) in &ours {
        only_root_can_change(config);
        let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
        let get = |k: &str| {
            c.get(k).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("dockerd {pid} ({}): no \"{k}\": it would take the machine's", config.display()))
        };
        for (key, machines) in [("data-root", "/var/lib/docker"), ("exec-root", "/var/run/docker"), ("pidfile", "/var/run/docker.pid")] {
            assert!(!get(key).starts_with(machines), "dockerd {pid}: {key} {} is the machine's engine's", get(key));
        }
        let hosts = c["hosts"].as_array().expect("its own socket");
        assert!(!hosts.is_empty() && hosts.iter().all(|h| h != "unix:///var/run/docker.sock" && h != "unix:///run/docker.sock"), "dockerd {pid}: {hosts:?}");
        assert!(c.get("bip").is_none(), "dockerd {pid}: a bip re-addresses its bridge");
        assert_ne!(get("bridge"), "docker0");
        for runtime in c["runtimes"].as_object().into_iter().flat_map(|r| r.values()) {
            only_root_can_change(Path::new(runtime["path"].as_str().unwrap()));
        }
    }
}

fn busybox_image() {
    if docker(&["image", "inspect", IMAGE]).status.success() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("bin/busybox")).expect("/bin/busybox (Debian's busybox-static; make setup installs it)");
    let tar = Command::new("tar").args(["-C"]).arg(dir.path()).args(["-c", "."]).stdout(Stdio::piped()).spawn().expect("tar runs");
    let import = engine::command("docker").args(["import", "-", IMAGE]).stdin(tar.stdout.expect("tar's output")).output().expect("docker import runs");
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
    let o = engine::command("docker")
        .args(["inspect", "--type", "container", "fd-no-such-container-of-the-tests"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!ops::is_no_such_container(&stderr), "an engine that does not answer read as a container gone: {stderr}");
}
