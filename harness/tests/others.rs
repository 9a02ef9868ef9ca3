//! Nothing of another's is ours (needs root, `make setup`'s Docker engine). On a machine
//! with a kept local run of another state directory and a kind cluster of the user's named
//! `fd-keycloak` (its node container as kind labels it: created, never started, from an
//! image this test imports and removes):
//!
//! - `firedrill down --all` of an empty state directory removes nothing: the other run's
//!   daemon, namespaces and links are there, and so is the user's container;
//! - a run of a third state directory takes a run number of its own (numbers are claimed
//!   machine-wide), never the kept run's;
//! - `firedrill sweep` lists the kept run's namespaces as recorded by no run of its state
//!   directory, not the user's cluster, and removes nothing without `--yes`.

use std::path::Path;
use std::process::{Command, Output};

use firedrill::backend::local;

fn firedrill(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firedrill")).args(args).env("FIREDRILL_STATE", state).env("CI", "true").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("the docker CLI runs (make setup installs an engine)")
}

const USERS_CLUSTER: &str = "fd-keycloak";
const USERS_NODE: &str = "fd-keycloak-control-plane";
const IMAGE: &str = "firedrill-test/others:scratch";

/// Removes the user's stand-in container and image, and takes down a state directory's
/// runs, whatever the test did.
struct CleanUp(Vec<std::path::PathBuf>);

impl Drop for CleanUp {
    fn drop(&mut self) {
        let _ = docker(&["rm", "--force", "--volumes", USERS_NODE]);
        let _ = docker(&["rmi", "--force", IMAGE]);
        for state in &self.0 {
            let _ = firedrill(state, &["down", "--all"]);
        }
    }
}

/// The run directory `up` printed.
fn run_dir(up: &Output) -> std::path::PathBuf {
    let out = text(up);
    assert!(up.status.success(), "firedrill up: {out}");
    out.lines().find_map(|l| l.strip_prefix("tear down with: firedrill down ")).map(|d| d.trim().into()).unwrap_or_else(|| panic!("no run directory: {out}"))
}

#[test]
fn down_all_and_sweep_leave_what_another_state_directory_or_the_user_has() {
    let (kept, empty, third) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _clean = CleanUp(vec![kept.path().to_path_buf(), third.path().to_path_buf()]);

    // The user's kind cluster, as kind labels its node container.
    let tar = tempfile::NamedTempFile::new().unwrap();
    let st = Command::new("tar").args(["-cf"]).arg(tar.path()).args(["--files-from", "/dev/null"]).status().unwrap();
    assert!(st.success());
    let o = docker(&["import", &tar.path().display().to_string(), IMAGE]);
    assert!(o.status.success(), "docker import: {}", text(&o));
    let o = docker(&["create", "--name", USERS_NODE, "--label", &format!("io.x-k8s.kind.cluster={USERS_CLUSTER}"), IMAGE, "/none"]);
    assert!(o.status.success(), "docker create: {}", text(&o));

    let kept_dir = run_dir(&firedrill(kept.path(), &["up", "--topology", "single"]));
    let kept_run = local::LocalRun::attach(&kept_dir).unwrap();
    let prefix = format!("fd{}-", kept_run.info.subnet);
    let kept_netns = || local::net::firedrill_names().0.into_iter().filter(|n| n.starts_with(&prefix)).count();
    let netns_before = kept_netns();
    assert!(netns_before > 0, "the kept run has namespaces named {prefix}…");

    let o = firedrill(empty.path(), &["down", "--all"]);
    assert!(o.status.success(), "down --all: {}", text(&o));
    assert!(text(&o).contains("down: no run"), "{}", text(&o));
    assert!(kept_run.alive(), "down --all of another state directory stopped the kept run's daemon");
    assert_eq!(kept_netns(), netns_before, "down --all of another state directory removed the kept run's namespaces");
    let o = docker(&["inspect", "--format", "{{.Name}}", USERS_NODE]);
    assert!(o.status.success(), "down --all removed the user's kind node container: {}", text(&o));

    let third_dir = run_dir(&firedrill(third.path(), &["up", "--topology", "single"]));
    let third_run = local::LocalRun::attach(&third_dir).unwrap();
    assert_ne!(third_run.info.subnet, kept_run.info.subnet, "a run of another state directory took the kept run's number");
    let o = firedrill(third.path(), &["down", &third_dir.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));

    let o = firedrill(empty.path(), &["sweep"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&format!("namespace {prefix}")), "sweep lists the kept run's namespaces: {out}");
    assert!(!out.contains(USERS_CLUSTER), "sweep lists the user's cluster: {out}");
    assert!(out.contains("nothing removed"), "{out}");
    assert!(kept_run.alive() && kept_netns() == netns_before, "sweep without --yes removed something: {out}");

    let o = firedrill(kept.path(), &["down", "--all"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!kept_dir.exists());
}
