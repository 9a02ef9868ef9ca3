//! The nightly disaster-recovery path, bounded, on every change: `ci/nightly.sh --bounded`
//! (what `.github/workflows/nightly-dr.yml` runs, with one scenario) sets up through the
//! project's own setup, runs `identity::single-instance-fails` on a new kind environment
//! (hosts ldap and lb as containers, the extra API server of the cold-start probe in the
//! control-plane node), writes the report directory and appends the job summary to the
//! file `GITHUB_STEP_SUMMARY` names; nothing of the run is left; `firedrill check` of the
//! report reaches the live run's verdict without a cluster, and a difference against an
//! edited snapshot. The report's timeline is laid out by headless Chromium (Debian's),
//! one lane per operation; `firedrill docs` writes the living document from the recording.
//! Bad arguments are refused with their own exit status before anything is set up.
//!
//! Under `make test` the drill runs `--on` the kind run `ci/test.sh` brought up for the
//! kind tests to share (tests/kind.rs ran there before): that run stays for `ci/test.sh`
//! to take down. Alone, it brings up its own and checks it is gone afterwards.

use std::path::Path;
use std::process::{Command, Output};

mod common;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `ci/nightly.sh` as the workflow runs it: without the variables Cargo sets for a test.
/// The script's `make build` would hand them on to Cargo, and a build script that watches
/// one (ring's watches CARGO_MANIFEST_DIR) would rebuild its crate and every crate above it,
/// here and again at the next build outside the test.
fn nightly_sh() -> Command {
    const SET_BY_CARGO: [&str; 7] =
        ["CARGO", "CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR"];
    let mut c = Command::new(root().join("ci/nightly.sh"));
    for k in std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()) {
        if SET_BY_CARGO.contains(&k.as_str()) || k.starts_with("CARGO_PKG_") || k.starts_with("CARGO_BIN_EXE_") {
            c.env_remove(k);
        }
    }
    c
}

/// The containers of kind runs on the engine (nodes and hosts are all named `fd-k…`).
fn kind_containers() -> Vec<String> {
    let o = firedrill::backend::kind::engine::command("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .expect("the docker CLI runs (make setup installs an engine)");
    String::from_utf8_lossy(&o.stdout).lines().filter(|n| n.starts_with("fd-k")).map(String::from).collect()
}

#[test]
fn bad_arguments_are_refused_before_any_setup() {
    for (args, says) in [
        (&["--backend", "existing"][..], "--backend must be kind or local"),
        (&["--repeat", "0"][..], "--repeat must be a positive number"),
        (&["--frobnicate"][..], "unknown option --frobnicate"),
        (&["--report"][..], "--report needs a value"),
        (&["--on"][..], "--on needs a value"),
    ] {
        let o = nightly_sh().args(args).output().unwrap();
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
    // Under make test, on the kind run the kind tests share (tests/kind.rs ran there first);
    // alone, on a new kind environment of its own.
    let shared = common::shared_kind_run();
    let mut nightly = nightly_sh();
    match &shared {
        Some((dir, kind_state)) => nightly.args(["--bounded", "--on"]).arg(dir).env("FIREDRILL_STATE", kind_state),
        None => nightly.args(["--bounded", "--backend", "kind"]).env("FIREDRILL_STATE", state.path()),
    };
    let o = nightly.arg("--report").arg(&report).env("GITHUB_STEP_SUMMARY", &summary).output().unwrap();
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

    // Re-judged with --report: the reports of the re-judgement, never over the recording's.
    let rejudged = out.path().join("rejudged");
    let written = Command::new(firedrill).arg("check").arg(&report).arg("--report").arg(&rejudged).current_dir(root()).output().unwrap();
    assert_eq!(written.status.code(), Some(0), "firedrill check --report: {}", text(&written));
    assert!(rejudged.join("report.html").is_file() && rejudged.join("results.json").is_file(), "{}", text(&written));
    let recording = std::fs::read(report.join("results.json")).unwrap();
    let over = Command::new(firedrill).arg("check").arg(&report).arg("--report").arg(&report).current_dir(root()).output().unwrap();
    assert_eq!(over.status.code(), Some(2), "check --report onto the recording itself: {}", text(&over));
    assert!(text(&over).contains("that is the recorded run's own report directory"), "{}", text(&over));
    assert_eq!(std::fs::read(report.join("results.json")).unwrap(), recording, "the recording is untouched");

    timeline_in_chromium(&report, out.path());
    living_document(&report, out.path());

    // No extra API server is left; and the run's environment, when it was its own, is gone:
    // its kind run directory, its containers (nodes and hosts).
    let extra = Command::new("pgrep").args(["-af", "kube-apiserver .*--endpoint-reconciler-type=none"]).output().unwrap();
    assert!(extra.stdout.is_empty(), "extra API servers left: {}", String::from_utf8_lossy(&extra.stdout));
    if shared.is_some() {
        return;
    }
    let runs = state.path().join("kind-runs");
    assert!(runs.is_dir(), "the drill made no kind run under {}", state.path().display());
    let left: Vec<_> = std::fs::read_dir(&runs).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    assert!(left.is_empty(), "kind runs left: {left:?}");
    let ours: Vec<String> = kind_containers().into_iter().filter(|c| !before.contains(c)).collect();
    assert!(ours.is_empty(), "containers left: {ours:?}");
}

/// The recording's operations per scenario with a timeline: (scenario, operation names).
fn recorded_lanes(report: &Path) -> Vec<(String, Vec<String>)> {
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(report.join("results.json")).unwrap()).unwrap();
    results
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("timeline").is_some())
        .map(|r| {
            (r["scenario"].as_str().unwrap().to_string(), r["operations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap().to_string()).collect())
        })
        .collect()
}

/// report.html in headless Chromium, with a script added to a copy that measures the laid-out
/// timelines (the report itself has no script): one lane per recorded operation, in order,
/// each with a height and below the one before, every lane holding attempt marks; the
/// fault window drawn with a width. A screenshot is kept beside it for a person to look at.
fn timeline_in_chromium(report: &Path, work: &Path) {
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    let measure = r#"<script>
const out = [...document.querySelectorAll('svg.timeline')].map(svg => {
  const lanes = [...svg.querySelectorAll('g.lane')];
  const fault = svg.querySelector('rect.phase.fault').getBoundingClientRect().width;
  return {
    width: svg.getBoundingClientRect().width,
    fault,
    lanes: lanes.map(l => ({ name: l.dataset.operation, top: l.getBoundingClientRect().top, height: l.getBoundingClientRect().height, marks: l.querySelectorAll('rect.attempt').length })),
  };
});
document.body.setAttribute('data-measured', JSON.stringify(out));
</script></body>"#;
    assert!(html.contains("</body>"), "report.html ends its body");
    let page = work.join("measured.html");
    std::fs::write(&page, html.replacen("</body>", measure, 1)).unwrap();
    let chromium = |extra: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        // Flags that keep Chromium off the network (this machine's, and any runner's).
        Command::new(browser())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&page)
            .output()
            .expect("chromium runs")
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(dom.status.success(), "chromium --dump-dom: {}", text(&dom));
    let dom = String::from_utf8_lossy(&dom.stdout);
    let at = dom.find("data-measured=\"").expect("the measuring script ran") + "data-measured=\"".len();
    let json = dom[at..at + dom[at..].find('"').unwrap()]
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'");
    let measured: serde_json::Value = serde_json::from_str(&json).unwrap();
    let expected = recorded_lanes(report);
    assert!(!expected.is_empty(), "the recording has a scenario with a timeline");
    let timelines = measured.as_array().unwrap();
    assert_eq!(timelines.len(), expected.len(), "one timeline per scenario with a timeline: {measured:#}");
    for (t, (scenario, names)) in timelines.iter().zip(&expected) {
        assert!(t["width"].as_f64().unwrap() > 500.0, "{scenario}: the timeline is laid out: {t:#}");
        assert!(t["fault"].as_f64().unwrap() > 10.0, "{scenario}: the fault window has a width: {t:#}");
        let lanes = t["lanes"].as_array().unwrap();
        let got: Vec<&str> = lanes.iter().map(|l| l["name"].as_str().unwrap()).collect();
        assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>(), "{scenario}: one lane per operation, in order");
        let mut bottom = f64::MIN;
        for l in lanes {
            let (top, height) = (l["top"].as_f64().unwrap(), l["height"].as_f64().unwrap());
            assert!(height > 10.0 && top >= bottom, "{scenario}: lane {l} is laid out below the one before");
            assert!(l["marks"].as_u64().unwrap() > 0, "{scenario}: lane {l} shows its attempts");
            bottom = top + height - 1.0;
        }
    }
    let shot = work.join("timeline.png");
    let o = chromium(&[&format!("--screenshot={}", shot.display()), "--window-size=1200,1600", "--hide-scrollbars"]);
    assert!(o.status.success() && std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false), "chromium --screenshot: {}", text(&o));
    if let Some(keep) = std::env::var_os("FIREDRILL_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

/// `firedrill docs` from the recording: the scenario it holds observed on kind, every
/// other scenario of the suites documented and said not to be in it.
fn living_document(report: &Path, work: &Path) {
    let doc = work.join("failure-domains.md");
    let o = Command::new(env!("CARGO_BIN_EXE_firedrill")).args(["docs", "--report"]).arg(report).arg("--out").arg(&doc).current_dir(root()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "firedrill docs: {}", text(&o));
    let d = std::fs::read_to_string(&doc).unwrap();
    let scenarios = d.matches("\n### ").count();
    assert!(text(&o).contains(&format!("1 of {scenarios} scenarios observed")), "{}", text(&o));
    assert!(d.contains("| [identity::single-instance-fails](#identitysingle-instance-fails) | 5–60 s | matches the document | kind |"), "{d}");
    assert!(d.contains("### identity::single-instance-fails\n\nA single identity instance fails"), "{d}");
    assert!(d.contains("Observed on the kind backend, 20"), "{d}");
    assert_eq!(d.matches("Not in the recorded run.").count(), scenarios - 1, "{d}");
    assert!(d.contains("| Console login, local user | ✅ | ✅ |"), "{d}");
}

/// Debian's chromium (make setup installs it), or the Chromium or Chrome a runner has.
fn browser() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new("sh").arg("-c").arg(format!("command -v {b}")).output().is_ok_and(|o| o.status.success()))
        .expect("no chromium, chromium-browser or google-chrome on PATH: make setup installs Debian's chromium")
}
