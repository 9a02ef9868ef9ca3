//! Nothing of another's is ours (needs root, `make setup`'s Docker engine). On a machine
//! with a kept local run of another state directory and a kind cluster of the user's named
//! `fd-keycloak` (a node container as kind labels it, under a name of the test's own:
//! created, never started, from an image this test imports; both removed by their ids, so
//! that a real `fd-keycloak` of the user's is never touched):
//!
//! - `firedrill down --all` of an empty state directory removes nothing: the other run's
//!   daemon, namespaces and links are there, and so is the user's container;
//! - a run of a third state directory takes a run number of its own (numbers are claimed
//!   machine-wide), never the kept run's;
//! - `firedrill sweep` lists the kept run's namespaces as recorded by no run of its state
//!   directory, not the user's cluster, and removes nothing without `--yes`.
//!
//! And `firedrill recover` of a journal whose newest undo fails still tries the older ones:
//! each failure is named, and only what was reverted is marked so.

use std::process::{Command, Output};

use firedrill::backend::local;

mod common;
use common::firedrill_at as firedrill;

/// Takes down a state directory's runs, whatever the test did.
struct DownAll(std::path::PathBuf);

impl Drop for DownAll {
    fn drop(&mut self) {
        let _ = firedrill(&self.0, &["down", "--all"]);
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn docker(args: &[&str]) -> Output {
    firedrill::backend::kind::engine::command("docker").args(args).output().expect("the docker CLI runs (make setup installs an engine)")
}

const USERS_CLUSTER: &str = "fd-keycloak";

/// Removes what the test created in the engine (by id: the image, then the container) and
/// takes down a state directory's runs, whatever the test did.
struct CleanUp {
    image: Option<String>,
    container: Option<String>,
    states: Vec<std::path::PathBuf>,
}

impl Drop for CleanUp {
    fn drop(&mut self) {
        if let Some(c) = &self.container {
            let _ = docker(&["rm", "--force", "--volumes", c]);
        }
        if let Some(i) = &self.image {
            let _ = docker(&["rmi", i]);
        }
        for state in &self.states {
            let _ = firedrill(state, &["down", "--all"]);
        }
    }
}

/// The id an engine command printed.
fn id(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", text(o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
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
    let mut clean = CleanUp { image: None, container: None, states: vec![kept.path().to_path_buf(), third.path().to_path_buf()] };

    // The user's kind cluster, as kind labels its node container.
    let tar = tempfile::NamedTempFile::new().unwrap();
    let st = Command::new("tar").args(["-cf"]).arg(tar.path()).args(["--files-from", "/dev/null"]).status().unwrap();
    assert!(st.success());
    let image = id(&docker(&["import", &tar.path().display().to_string()]), "docker import");
    clean.image = Some(image.clone());
    let name = format!("firedrill-test-others-{}", std::process::id());
    let node = id(&docker(&["create", "--name", &name, "--label", &format!("io.x-k8s.kind.cluster={USERS_CLUSTER}"), &image, "/none"]), "docker create");
    clean.container = Some(node.clone());

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
    let o = docker(&["inspect", "--format", "{{.Name}}", &node]);
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

/// Before, `revert_journal` stopped at the first undo that failed: the older faults were
/// never tried, and stayed in place.
#[test]
fn recover_tries_every_undo_and_marks_reverted_only_what_it_reverted() {
    use firedrill::fault::{FaultSpec, Undo};
    use firedrill::journal::Journal;
    let state = tempfile::tempdir().unwrap();
    let _down = DownAll(state.path().to_path_buf());
    let dir = run_dir(&firedrill(state.path(), &["up", "--topology", "single"]));
    let run = local::LocalRun::attach(&dir).unwrap();
    let netns = run.info.clusters[0].nodes[0].netns.clone();
    let table = "fd-others-revert";
    let nft = |args: &[&str]| Command::new("ip").args(["netns", "exec", &netns, "nft"]).args(args).status().unwrap().success();
    assert!(nft(&["add", "table", "inet", table]));

    let journal = Journal::at(&dir);
    let older = journal
        .plan(
            &run.info.id,
            "others::older",
            &FaultSpec::UnreachableHost { host: "a-host".into() },
            &Undo::Unpartition { table: table.into(), netns: vec![netns.clone()] },
        )
        .unwrap();
    let newer = journal
        .plan(
            &run.info.id,
            "others::newer",
            &FaultSpec::StopHost { host: "no-such-host".into(), signal: Default::default() },
            &Undo::StartHost { host: "no-such-host".into() },
        )
        .unwrap();

    let o = firedrill(state.path(), &["recover", &dir.display().to_string()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains(&format!("(journal #{newer}) failed")), "the failed undo is named: {out}");
    assert!(out.contains(&format!("reverted: delete nftables table {table}")), "the older undo was tried and said so: {out}");
    assert!(!nft(&["list", "table", "inet", table]), "the older fault is still in place: {out}");
    let pending: Vec<u64> = journal.pending().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(pending, vec![newer], "only #{older} is marked reverted: {out}");
}

/// A kind run is on the Docker engine it was made on: with another engine in effect (a
/// user's started since, or another DOCKER_HOST), `down` would look for the run's clusters
/// and network where they are not, and could remove what carries the same names there.
/// It refuses, names the engine to use, and keeps the run's directory.
#[test]
fn a_kind_run_is_not_taken_down_on_another_engine() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("kind-runs/single-elsewhere");
    std::fs::create_dir_all(&dir).unwrap();
    let elsewhere = "unix:///run/firedrill/no-such-engine.sock";
    let plan = serde_json::json!({ "id": "single-elsewhere", "number": 5, "reserved": true, "engine": elsewhere });
    std::fs::write(dir.join("kind-run.json"), plan.to_string()).unwrap();
    for args in [vec!["down".to_string(), dir.display().to_string()], vec!["down".into(), "--all".into()]] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = firedrill(state.path(), &args);
        assert!(!o.status.success(), "firedrill {args:?} acted on another engine: {}", text(&o));
        assert!(text(&o).contains(&format!("DOCKER_HOST={elsewhere}")), "{}", text(&o));
        assert!(dir.join("kind-run.json").is_file(), "the run's plan was removed");
    }
    let o = Command::new(common::firedrill())
        .args(["down", &dir.display().to_string()])
        .env("FIREDRILL_STATE", state.path())
        .env("DOCKER_HOST", elsewhere)
        .output()
        .unwrap();
    // On its own engine down goes ahead, to that engine (which does not answer here).
    assert!(!text(&o).contains("was made on"), "{}", text(&o));
    assert!(text(&o).contains("no-such-engine.sock"), "down asked another engine: {}", text(&o));
}
