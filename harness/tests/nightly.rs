//! The nightly disaster-recovery path, bounded, on every change: `ci/nightly.sh --bounded`
//! (what `.github/workflows/nightly-dr.yml` runs, with one scenario) sets up through the
//! project's own setup, runs `identity::single-instance-fails` on a new kind environment
//! (hosts ldap and lb as containers, the extra API server of the cold-start probe in the
//! control-plane node), writes the report directory and appends the job summary to the
//! file `GITHUB_STEP_SUMMARY` names; nothing of the run is left; `firedrill check` of the
//! report reaches the live run's verdict without a cluster, and a difference against an
//! edited snapshot. Bad arguments are refused with their own exit status before anything
//! is set up.

use std::path::Path;
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The containers of kind runs on the engine (nodes and hosts are all named `fd-k…`).
fn kind_containers() -> Vec<String> {
    let o = Command::new("docker").args(["ps", "-a", "--format", "{{.Names}}"]).output().expect("the docker CLI runs (make setup installs an engine)");
    String::from_utf8_lossy(&o.stdout).lines().filter(|n| n.starts_with("fd-k")).map(String::from).collect()
}

#[test]
fn bad_arguments_are_refused_before_any_setup() {
    for (args, says) in [
        (&["--backend", "existing"][..], "--backend must be kind or local"),
        (&["--repeat", "0"][..], "--repeat must be a positive number"),
        (&["--frobnicate"][..], "unknown option --frobnicate"),
        (&["--report"][..], "--report needs a value"),
    ] {
        let o = Command::new(root().join("ci/nightly.sh")).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
        assert!(!text(&o).contains("set-up"), "{args:?}: nothing may be set up: {}", text(&o));
    }
}

#[test]
fn the_bounded_nightly_drill_runs_on_kind_and_writes_the_job_summary() {
    let before = kind_containers();
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.md");
    std::fs::write(&summary, "earlier steps' summary\n").unwrap();
    let report = out.path().join("report");
    let o = Command::new(root().join("ci/nightly.sh"))
        .args(["--bounded", "--backend", "kind", "--report"])
        .arg(&report)
        .env("FIREDRILL_STATE", state.path())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let log = text(&o);
    assert_eq!(o.status.code(), Some(0), "ci/nightly.sh --bounded: {log}");
    assert!(log.contains("=> identity::single-instance-fails: matches the document"), "{log}");
    let s = std::fs::read_to_string(&summary).unwrap();
    assert!(s.starts_with("earlier steps' summary\n## firedrill: 1 of 1 scenarios match their documented tables\n"), "the summary is appended: {s}");
    assert!(s.contains("| identity::single-instance-fails | matches the document |"), "{s}");
    assert!(s.contains("<details><summary>identity::single-instance-fails — matches the document (observed)</summary>"), "{s}");
    for f in ["report.md", "report.html", "junit.xml", "results.json"] {
        assert!(report.join(f).is_file(), "{f} is not in the report directory");
    }
    // The recording judged again, touching no cluster: the live run's verdict; and against
    // an edited document (a copy of the snapshots where an operation is documented ❌), a
    // difference, named as one from the live run's verdict.
    let firedrill = Path::new(env!("CARGO_BIN_EXE_firedrill"));
    let again = Command::new(firedrill).arg("check").arg(&report).current_dir(root()).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "firedrill check: {}", text(&again));
    assert!(text(&again).contains("=> identity::single-instance-fails: matches the document (as the live run)"), "{}", text(&again));
    let edited = out.path().join("snapshots");
    std::fs::create_dir_all(&edited).unwrap();
    for e in std::fs::read_dir(root().join("snapshots")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), edited.join(e.file_name())).unwrap();
    }
    let snap = edited.join("identity__single-instance-fails.snap");
    let text_before = std::fs::read_to_string(&snap).unwrap();
    let text_after = text_before.replacen("| Console login, local user | ✅ |", "| Console login, local user | ❌ |", 1);
    assert_ne!(text_before, text_after, "the snapshot has the row this test edits");
    std::fs::write(&snap, text_after).unwrap();
    let edited_check = Command::new(firedrill).arg("check").arg(&report).arg("--snapshots").arg(&edited).current_dir(root()).output().unwrap();
    assert_eq!(edited_check.status.code(), Some(1), "firedrill check --snapshots (edited): {}", text(&edited_check));
    assert!(text(&edited_check).contains("DIFFERS from the document (the live run: match)"), "{}", text(&edited_check));

    // The run's environment is gone: its kind run directory, its containers (nodes and
    // hosts), its extra API servers.
    let runs = state.path().join("kind-runs");
    assert!(runs.is_dir(), "the drill made no kind run under {}", state.path().display());
    let left: Vec<_> = std::fs::read_dir(&runs).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    assert!(left.is_empty(), "kind runs left: {left:?}");
    let ours: Vec<String> = kind_containers().into_iter().filter(|c| !before.contains(c)).collect();
    assert!(ours.is_empty(), "containers left: {ours:?}");
    let extra = Command::new("pgrep").args(["-af", "kube-apiserver .*--endpoint-reconciler-type=none"]).output().unwrap();
    assert!(extra.stdout.is_empty(), "extra API servers left: {}", String::from_utf8_lossy(&extra.stdout));
}
