//! The GitHub Actions workflows (`.github/workflows/`) pass actionlint, the pinned build
//! `make setup` makes (`ACTIONLINT_VERSION`), which also runs shellcheck over their `run:`
//! scripts; and each workflow calls what runs here too: `make test` on every change,
//! `ci/nightly.sh` nightly. Every shell script of the repository passes shellcheck too.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn actionlint() -> std::path::PathBuf {
    let env = std::fs::read_to_string(root().join("fixtures/versions.env")).unwrap();
    let version = env.lines().find_map(|l| l.strip_prefix("ACTIONLINT_VERSION=")).expect("ACTIONLINT_VERSION in fixtures/versions.env");
    let bin = firedrill::fixtures::cache_dir().join("bin").join(format!("actionlint-{version}")).join("actionlint");
    assert!(bin.is_file(), "{} is not built; run `make setup`", bin.display());
    bin
}

#[test]
fn the_workflows_pass_actionlint_with_shellcheck() {
    assert!(Command::new("shellcheck").arg("--version").output().is_ok_and(|o| o.status.success()), "shellcheck is not installed; run `make setup`");
    let o = Command::new(actionlint()).arg("-color=false").current_dir(root()).output().unwrap();
    assert!(o.status.success(), "actionlint:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

/// The repository's shell scripts: `*.sh` and files starting with a `#!` line naming a shell.
fn shell_scripts() -> Vec<std::path::PathBuf> {
    let mut found = vec![root().join(".ci/run")];
    let mut dirs = vec![root().join("ci"), root().join("fixtures")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "sh")
                || std::fs::read(&p)
                    .is_ok_and(|b| b.starts_with(b"#!") && b.split(|c| *c == b'\n').next().is_some_and(|l| l.ends_with(b"sh") || l.ends_with(b"bash")))
            {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_shell_scripts_pass_shellcheck() {
    let scripts = shell_scripts();
    assert!(scripts.iter().any(|p| p.ends_with("ci/setup.sh")) && scripts.iter().any(|p| p.ends_with("fixtures/kind/cni/firedrill-cni")), "{scripts:?}");
    let o =
        Command::new("shellcheck").args(["-S", "warning", "-x"]).args(&scripts).current_dir(root()).output().expect("shellcheck runs (make setup installs it)");
    assert!(o.status.success(), "shellcheck:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

#[test]
fn actionlint_rejects_a_broken_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join(".github/workflows");
    std::fs::create_dir_all(&wf).unwrap();
    std::fs::write(
        wf.join("bad.yml"),
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nonexistent_context_key }}\n",
    )
    .unwrap();
    let o = Command::new(actionlint()).arg("-color=false").current_dir(dir.path()).output().unwrap();
    assert!(!o.status.success(), "a broken workflow passed actionlint");
}

#[test]
fn the_workflows_call_what_runs_here() {
    let ci = std::fs::read_to_string(root().join(".github/workflows/ci.yml")).unwrap();
    assert!(ci.contains(" make test"), "ci.yml runs make test");
    let nightly = std::fs::read_to_string(root().join(".github/workflows/nightly-dr.yml")).unwrap();
    assert!(nightly.contains("ci/nightly.sh --backend \"$BACKEND\""), "nightly-dr.yml runs ci/nightly.sh");
    assert!(nightly.contains("workflow_dispatch:") && nightly.contains("schedule:"), "nightly and on demand");
}
