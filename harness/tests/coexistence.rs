//! The local backend next to a Docker engine (needs root and `make setup`). A Docker
//! engine sets the FORWARD policy of iptables' `filter` table to drop, and with
//! br_netfilter loaded the kernel passes bridged frames through that chain: traffic between
//! the hosts of a run's bridge was dropped, and every drill failed its steady state.
//!
//! The engine's own rules are what this test reproduces when no engine runs here: the
//! table `ip filter` with a FORWARD chain whose policy drops, as iptables-nft writes it.
//! An engine whose chain already drops is used as it is. An engine that does not forward
//! (the one `make setup` starts has `ip-forward: false`, so its FORWARD policy stays
//! accept) gets the drop policy for the test's duration and its own policy back after.
//! br_netfilter is loaded (or `bridge-nf-call-iptables` set) only where it was not, and
//! unloaded (or set back) after. An identity scenario must then match its table, and
//! afterwards no rule of the run is left in that chain. The scenario
//! (harness/tests/data/coexistence) is seed 000's ldap-down with a 15 s window and the rows
//! whose traffic crosses the bridge; the full drill runs in tests/drills.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn nft(args: &[&str]) -> (bool, String) {
    let o = Command::new("nft").args(args).output().expect("nft runs");
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned())
}

/// What the test changed, undone when dropped: the table it created, or the policy it set
/// on an engine's chain. Written down before the change (a file in `/run/firedrill`), so
/// that a test killed before its undo ran (SIGKILL, a lost session) is undone by the next
/// run of the test before it looks at the chain.
struct DockerLikeForwardPolicy {
    created: bool,
    set_drop: bool,
}

/// A change to the machine noted, before it is made, in `/run/firedrill/NAME`; what a
/// killed run noted; the note removed once the change is undone.
fn note(name: &str, what: &str) {
    let dir = firedrill::backend::numbers::machine_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), what).unwrap();
}

fn noted(name: &str) -> Option<String> {
    std::fs::read_to_string(firedrill::backend::numbers::machine_dir().join(name)).ok()
}

fn forget(name: &str) {
    let _ = std::fs::remove_file(firedrill::backend::numbers::machine_dir().join(name));
}

const POLICY_NOTE: &str = "coexistence-forward-policy";

impl DockerLikeForwardPolicy {
    fn note(self) -> DockerLikeForwardPolicy {
        note(POLICY_NOTE, if self.created { "created" } else { "set-drop" });
        self
    }

    /// Undo what a killed run of this test left, from its note.
    fn undo_left() {
        if let Some(what) = noted(POLICY_NOTE) {
            drop(DockerLikeForwardPolicy { created: what == "created", set_drop: what == "set-drop" });
        }
    }

    fn ensure() -> DockerLikeForwardPolicy {
        Self::undo_left();
        let (exists, chain) = nft(&["list", "chain", "ip", "filter", "FORWARD"]);
        if exists {
            if chain.contains("policy drop") {
                return DockerLikeForwardPolicy { created: false, set_drop: false };
            }
            let changed = DockerLikeForwardPolicy { created: false, set_drop: true }.note();
            let (ok, _) = nft(&["chain", "ip", "filter", "FORWARD", "{ policy drop; }"]);
            assert!(ok, "setting the FORWARD policy to drop");
            return changed;
        }
        let changed = DockerLikeForwardPolicy { created: true, set_drop: false }.note();
        let script = "table ip filter {\n  chain FORWARD { type filter hook forward priority filter; policy drop; }\n}\n";
        let mut child = Command::new("nft").args(["-f", "-"]).stdin(std::process::Stdio::piped()).spawn().expect("nft runs");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "creating a FORWARD chain with a drop policy");
        changed
    }
}

impl Drop for DockerLikeForwardPolicy {
    fn drop(&mut self) {
        if self.created {
            let _ = nft(&["delete", "table", "ip", "filter"]);
        }
        if self.set_drop {
            let _ = nft(&["chain", "ip", "filter", "FORWARD", "{ policy accept; }"]);
        }
        forget(POLICY_NOTE);
    }
}

const BRIDGE_NF: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// The kernel passing bridged frames to iptables, as an engine makes it (br_netfilter
/// loaded, `bridge-nf-call-iptables` = 1): where it does not, the test makes it so for its
/// duration and undoes that after — the module unloaded, or the setting put back — noted
/// first, like the policy, so that the next run undoes a killed run's change.
struct BridgedFramesFiltered {
    loaded: bool,
    set: bool,
}

const BRIDGE_NF_NOTE: &str = "coexistence-br-netfilter";

fn bridged() -> bool {
    std::fs::read_to_string(BRIDGE_NF).map(|v| v.trim() == "1").unwrap_or(false)
}

impl BridgedFramesFiltered {
    fn ensure() -> BridgedFramesFiltered {
        if let Some(what) = noted(BRIDGE_NF_NOTE) {
            drop(BridgedFramesFiltered { loaded: what == "loaded", set: what == "set" });
        }
        let mut changed = BridgedFramesFiltered { loaded: false, set: false };
        if !Path::new(BRIDGE_NF).exists() {
            note(BRIDGE_NF_NOTE, "loaded");
            changed.loaded = true;
            let _ = Command::new("modprobe").arg("br_netfilter").status();
        }
        if !bridged() {
            note(BRIDGE_NF_NOTE, if changed.loaded { "loaded" } else { "set" });
            changed.set = !changed.loaded;
            let _ = std::fs::write(BRIDGE_NF, "1");
        }
        assert!(bridged(), "br_netfilter must pass bridged frames to iptables for this test to mean anything");
        changed
    }
}

impl Drop for BridgedFramesFiltered {
    fn drop(&mut self) {
        if self.loaded {
            let _ = Command::new("modprobe").args(["-r", "br_netfilter"]).status();
        } else if self.set {
            let _ = std::fs::write(BRIDGE_NF, "0");
        }
        forget(BRIDGE_NF_NOTE);
    }
}

#[test]
fn a_drill_passes_next_to_a_forward_drop_policy_and_leaves_no_rule() {
    let _bridged = BridgedFramesFiltered::ensure();
    let _policy = DockerLikeForwardPolicy::ensure();
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["run", "--suites", "harness/tests/data/coexistence", "--snapshots", "harness/tests/data/snapshots", "identity-coexistence::ldap-down"])
        .current_dir(&root)
        .env("INSTA_UPDATE", "no")
        .output()
        .expect("firedrill runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("=> identity-coexistence::ldap-down: matches the document"), "{text}");
    let (_, chain) = nft(&["list", "chain", "ip", "filter", "FORWARD"]);
    assert!(!chain.contains("firedrill"), "a rule of the run is left in FORWARD: {chain}");
}
