//! The `firedrill` binary, driven as a user drives it: exit codes (0 match, 1 a table
//! differs, 2 the harness failed), clear errors for bad input, the steady-state check
//! catching a broken setup, and no secret in anything the run prints or writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Tests that bring up clusters run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn firedrill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(args)
        .current_dir(root())
        // Never write pending snapshots from a test.
        .env("INSTA_UPDATE", "no")
        .output()
        .expect("firedrill runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn list_shows_suites_and_scenarios_without_touching_a_cluster() {
    let o = firedrill(&["list"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("identity — ") && out.contains("identity::instances-down"), "{out}");
    let o = firedrill(&["list", "no-such-scenario"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no scenario matches"));
}

#[test]
fn schema_is_json_for_editors() {
    let o = firedrill(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["title"], "SuiteSpec");
}

#[test]
fn docs_without_a_recording_documents_every_table_and_a_bad_recording_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("failure-domains.md");
    let missing = dir.path().join("no-run");
    let o = firedrill(&["docs", "--report", missing.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("holds no results.json"), "{}", text(&o));
    let d = std::fs::read_to_string(&out).unwrap();
    let listed = String::from_utf8_lossy(&firedrill(&["list"]).stdout).matches("::").count();
    assert_eq!(d.matches("\n### ").count(), listed, "a section per scenario `firedrill list` shows: {d}");
    assert_eq!(d.matches("Not in the recorded run.").count(), listed, "{d}");
    assert!(d.contains("| [identity::instances-down](#identityinstances-down) | 5–60 s | not observed |"), "{d}");
    // A recording that is not results.json: refused with the file named, the document as it was.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("results.json"), "{\"not\": \"a list\"}").unwrap();
    let o = firedrill(&["docs", "--report", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad/results.json") && text(&o).contains("expected the results.json"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), d, "the document is untouched");
}

#[test]
fn check_never_writes_its_reports_over_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("results.json"), "[]").unwrap();
    let d = dir.path().to_str().unwrap();
    for (recorded, report) in [(d.to_string(), d.to_string()), (format!("{d}/results.json"), format!("{d}/."))] {
        let o = firedrill(&["check", &recorded, "--report", &report]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("that is the recorded run's own report directory"), "{}", text(&o));
    }
    let o = Command::new(env!("CARGO_BIN_EXE_firedrill")).args(["check", "results.json", "--report", "."]).current_dir(dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "a bare results.json and `.`: {}", text(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing but the recording");
    assert_eq!(std::fs::read_to_string(dir.path().join("results.json")).unwrap(), "[]");
}

#[test]
fn a_malformed_suite_is_refused_with_its_location_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("harness/tests/data/bad-suites/unknown-fault-kind.yaml"), dir.path().join("unknown-fault-kind.yaml")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = |log: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .args(log)
            .args(["run", "--suites"])
            .arg(dir.path())
            .current_dir(root())
            .env("FIREDRILL_STATE", state.path())
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("unknown-fault-kind.yaml:17:11: `scenarios[0].faults[0].kind`: unknown variant `explode`"), "{}", text(&o));
    assert!(!state.path().join("runs").exists(), "nothing may be started for a bad suite");

    // With a JSON log, stderr is JSON lines only, and the error is one of them.
    let o = run(&["--log-format", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let records: Vec<serde_json::Value> = stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    assert!(
        records.iter().any(|r| r["level"] == "ERROR" && r["fields"]["message"].as_str().is_some_and(|m| m.contains("unknown-fault-kind.yaml:17:11:"))),
        "{stderr}"
    );
}

/// A backend that cannot run a suite, or flags that do not belong to it, are refused before
/// anything is planned: no line claims clusters will be faulted, nothing is created, the
/// message names what is missing.
#[test]
fn a_backend_that_cannot_provision_refuses_before_planning() {
    // The identity component's hosts run as pods on existing; the spare host has no such form.
    let safety = ["safety", "--suites", "harness/tests/data/safety/short"];
    for (suite, args, missing) in [
        (&["identity"][..], &["--backend", "existing"][..], "--backend existing needs --context ROLE=CONTEXT"),
        (
            &safety[..],
            &["--backend", "existing", "--context", "east=any"][..],
            "not runnable on existing: the components need hosts outside the clusters (spare)",
        ),
        (&["identity"][..], &["--context", "main=any"][..], "--context, --allow-context, --kubeconfig and --registry belong to --backend existing, not local"),
    ] {
        let backend = args.join(" ");
        let state = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .arg("run")
            .args(suite)
            .args(args)
            .current_dir(root())
            .env("FIREDRILL_STATE", state.path())
            .output()
            .unwrap();
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{backend}: {out}");
        assert!(out.contains(missing), "{backend}: {out}");
        assert!(!out.contains("will fault"), "{backend}: no plan for a backend that cannot provision: {out}");
        assert!(std::fs::read_dir(state.path()).unwrap().next().is_none(), "{backend}: nothing may be created");
    }
}

#[test]
fn recover_with_nothing_to_recover_says_so() {
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_firedrill")).arg("recover").env("FIREDRILL_STATE", state.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("nothing to recover"));
}

/// The API server trusts a CA that did not sign the issuer's certificate: the steady-state
/// check aborts with the failing operation and why, and no table is produced.
#[test]
fn a_broken_setup_is_caught_by_the_steady_state_check() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let o = firedrill(&["run", "--suites", "harness/tests/data/suites", "identity-untrusted-ca"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("steady state not reached before the fault"), "{out}");
    assert!(out.contains("cached-keys (SelfSubjectReview: HTTP 401)"), "{out}");
    assert!(!out.contains("| Operation |"), "no table for a broken setup: {out}");
    assert!(!out.contains("injected"), "no fault may be injected: {out}");
}

/// A document that is wrong: the run completes, shows the difference, exits 1. Nothing it
/// prints or writes holds a secret of the run: no token (JWT), no password, no key.
#[test]
fn a_wrong_document_exits_1_and_nothing_leaks_a_secret() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let report = tempfile::tempdir().unwrap();
    let report_dir = report.path().to_str().unwrap();
    let o = firedrill(&[
        "run",
        "--suites",
        "harness/tests/data/suites",
        "--snapshots",
        "harness/tests/data/snapshots",
        "--report",
        report_dir,
        "--keep",
        "identity-misdocumented",
    ]);
    let out = text(&o);
    let run_dir = out
        .lines()
        .find_map(|l| l.split("environment kept at ").nth(1))
        .map(|r| PathBuf::from(r.split(';').next().unwrap().trim()))
        .unwrap_or_else(|| panic!("no kept environment in: {out}"));
    let checked = std::panic::catch_unwind(|| {
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(out.contains("DIFFERS from the document"), "{out}");
        assert!(out.contains("| Console login, local user | ✅ |"), "observed ✅ where the document says ❌: {out}");
        let html = std::fs::read_to_string(report.path().join("report.html")).unwrap();
        assert!(html.contains("<td class=\"differs\">DIFFERS from the document</td>"), "the HTML report shows the verdict: {html}");

        // The run's log, as JSON lines beside the report: the run events among its records.
        let log = std::fs::read_to_string(report.path().join("firedrill.log")).unwrap();
        for l in log.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
        }
        let events = firedrill::report::terminal::logged_events(&log);
        for kind in ["plan", "environment-ready", "fault-injected", "fault-reverted", "scenario-finished"] {
            assert!(events.iter().any(|e| e["event"] == kind), "no {kind} event in firedrill.log: {log}");
        }
        assert!(events.iter().any(|e| e["event"] == "scenario-finished" && e["verdict"] == "mismatch"), "{log}");
        // The environment's own phases, which `make bench` reports per suite.
        assert!(
            events.iter().any(|e| e["event"] == "environment-ready" && e["bring_up"]["secs"].is_u64() && e["deploy"]["secs"].is_u64()),
            "environment-ready without bring_up and deploy: {log}"
        );

        // The recording alone, judged again without a cluster: the live run's verdict.
        let again = firedrill(&["check", report_dir, "--suites", "harness/tests/data/suites", "--snapshots", "harness/tests/data/snapshots"]);
        assert_eq!(again.status.code(), Some(1), "firedrill check: {}", text(&again));
        assert!(text(&again).contains("=> identity-misdocumented::ldap-down: DIFFERS from the document (as the live run)"), "{}", text(&again));

        // Secrets of this run: the dex client secret and LDAP admin password from its
        // rendered configuration, the private keys it generated.
        let manifests = std::fs::read_to_string(run_dir.join("components/identity/manifests.yaml")).unwrap();
        let secret_of = |key: &str| manifests.lines().find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string())).unwrap();
        let mut secrets = vec![secret_of("secret:"), secret_of("bindPW:")];
        for key in [run_dir.join("pki/harness/ca.key"), run_dir.join("clusters/main/pki/ca.key"), run_dir.join("clusters/main/pki/sa.key")] {
            let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
            assert_eq!(mode & 0o777, 0o600, "{} is private", key.display());
            let pem = std::fs::read_to_string(&key).unwrap();
            secrets.push(pem.lines().nth(1).unwrap().to_string());
        }
        let mut haystacks = vec![("output".to_string(), out.clone())];
        for f in ["report.md", "report.html", "results.json", "junit.xml", "firedrill.log"] {
            haystacks.push((f.into(), std::fs::read_to_string(report.path().join(f)).unwrap()));
        }
        haystacks.push(("daemon.log".into(), std::fs::read_to_string(run_dir.join("daemon.log")).unwrap()));
        for (name, text) in &haystacks {
            assert!(!text.contains("eyJ"), "{name} contains what looks like a JWT");
            for s in &secrets {
                assert!(!text.contains(s.as_str()), "{name} contains a secret of the run");
            }
        }
    });
    let down = firedrill(&["down", run_dir.to_str().unwrap()]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    if let Err(e) = checked {
        std::panic::resume_unwind(e);
    }
}

/// A report directory per suite, as the nightly workflow's jobs leave them: `firedrill
/// check` of the suite's real recordings (recordings/local/), with its reports.
fn part_of(suite: &str, under: &Path) -> PathBuf {
    let recordings = under.join(format!("{suite}-recordings/local"));
    std::fs::create_dir_all(&recordings).unwrap();
    for e in std::fs::read_dir(root().join("recordings/local")).unwrap().map(|e| e.unwrap().path()) {
        if e.file_name().unwrap().to_string_lossy().starts_with(&format!("{suite}__")) {
            std::fs::copy(&e, recordings.join(e.file_name().unwrap())).unwrap();
        }
    }
    let part = under.join(format!("part-{suite}"));
    let o = firedrill(&["check", recordings.to_str().unwrap(), "--report", part.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    part
}

fn results(dir: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

/// `firedrill merge` of two suites' report directories: one report whose results are every
/// part's as recorded, verdicts equal to the parts', one job summary, and `firedrill check`
/// of the merged directory agrees. A scenario in two parts, or a part whose evidence gives
/// another verdict with the suites and snapshots merged against, is refused and nothing is
/// written.
#[test]
fn merge_makes_one_report_of_the_parts_and_refuses_what_does_not_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, management) = (part_of("identity", dir.path()), part_of("management", dir.path()));
    let merged = dir.path().join("merged");
    let summary = dir.path().join("summary.md");
    let o = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["merge", identity.to_str().unwrap(), management.to_str().unwrap(), "--report", merged.to_str().unwrap()])
        .current_dir(root())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut parts = results(&identity);
    parts.extend(results(&management));
    assert_eq!(results(&merged), parts, "the merged results are the parts' as they recorded them");
    let verdicts = |v: &[serde_json::Value]| v.iter().map(|r| (r["scenario"].to_string(), r["verdict"]["verdict"].to_string())).collect::<Vec<_>>();
    assert_eq!(verdicts(&results(&merged)).len(), 14);
    let html = std::fs::read_to_string(merged.join("report.html")).unwrap();
    let md = std::fs::read_to_string(&summary).unwrap();
    for r in &parts {
        let title = r["title"].as_str().unwrap();
        assert!(html.contains(&title.replace('\'', "&#39;")) || html.contains(title), "report.html lacks {title}");
        assert!(md.contains(r["scenario"].as_str().unwrap()), "the job summary lacks {}", r["scenario"]);
    }
    let o = firedrill(&["check", merged.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("14 of 14 scenarios match") && text(&o).contains("0 verdict(s) differ from the live run's"), "{}", text(&o));

    let twice = dir.path().join("twice");
    let o = firedrill(&["merge", identity.to_str().unwrap(), identity.to_str().unwrap(), "--report", twice.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is in both"), "{}", text(&o));
    assert!(!twice.exists(), "nothing written");

    let empty = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let o = firedrill(&["merge", identity.to_str().unwrap(), "--snapshots", empty.path().to_str().unwrap(), "--report", elsewhere.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("recorded `match`, but its evidence gives `mismatch`"), "{}", text(&o));
    assert!(!elsewhere.exists(), "nothing written");
}
