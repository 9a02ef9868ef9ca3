//! Progress on a terminal. Under a pseudo-terminal (`script`, Debian's bsdutils), `firedrill
//! up` shows a live display — a spinner with the elapsed time and what it is doing — while
//! the clusters come up; with `CI` set, or with stderr not a terminal, it prints plain
//! lines only (no display, no cursor movement).

use std::process::{Command, Output};

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn firedrill() -> &'static str {
    env!("CARGO_BIN_EXE_firedrill")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `firedrill up --topology single` with its output on a pseudo-terminal (or piped, with
/// `pty` false), then `firedrill down` of the run it made; the output of `up`.
fn up(pty: bool, ci: bool) -> String {
    // The runs share two cores: one at a time.
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let mut cmd = if pty {
        let mut c = Command::new("script");
        c.args(["--quiet", "--flush", "--return", "--command", &format!("{} up --topology single", firedrill()), "/dev/null"]);
        c
    } else {
        let mut c = Command::new(firedrill());
        c.args(["up", "--topology", "single"]);
        c
    };
    cmd.env("FIREDRILL_STATE", state.path()).env_remove("CI");
    if ci {
        cmd.env("CI", "true");
    }
    let o = cmd.output().expect("script (bsdutils) runs");
    let out = text(&o);
    let down = Command::new(firedrill()).args(["down", "--all"]).env("FIREDRILL_STATE", state.path()).output().unwrap();
    assert!(down.status.success(), "firedrill down --all: {}", text(&down));
    assert!(o.status.success(), "firedrill up: {out}");
    assert!(out.contains("tear down with: firedrill down"), "{out}");
    out
}

const DISPLAY: &str = "bringing up topology single on the local backend";

#[test]
fn a_terminal_gets_a_live_display_with_the_elapsed_time() {
    let out = up(true, false);
    assert!(out.contains(DISPLAY), "no live display on a terminal: {out:?}");
    // indicatif's elapsed time, then the line cleared when the clusters are up.
    assert!(out.contains("00:00:0"), "no elapsed time: {out:?}");
    assert!(out.contains("\u{1b}[2K"), "the display is never cleared: {out:?}");
}

#[test]
fn ci_and_pipes_get_plain_lines() {
    for (pty, ci) in [(true, true), (false, false)] {
        let out = up(pty, ci);
        assert!(!out.contains(DISPLAY), "a live display with pty={pty} CI={ci}: {out:?}");
        assert!(!out.contains("\u{1b}[2K"), "cursor control with pty={pty} CI={ci}: {out:?}");
    }
}
