//! The host's own settings firedrill changes while a local run needs them, and gives back
//! (needs root; `make test` runs it alone, after the lanes, like coexistence.rs): the
//! blackhole route for the test range is there while a run is up, and `down` of the
//! machine's last local run removes it when firedrill added it. A route that was there
//! before firedrill's (no marker of firedrill's), or that another run still needs, stays.

use std::process::Output;

use firedrill::backend::local::net;
use firedrill::backend::numbers;

mod common;
use common::firedrill_at as firedrill;

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn the_test_range_blackhole_is_there_while_a_run_needs_it_and_goes_with_the_last_run_when_firedrill_added_it() {
    let state = tempfile::tempdir().unwrap();
    let machines = !net::blackhole_present().unwrap();
    let up = firedrill(state.path(), &["up", "--topology", "single"]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(net::blackhole_present().unwrap(), "a local run is up without the blackhole for {}", net::TEST_RANGE);
    let marker = numbers::machine_dir().join("blackhole-route");
    let added_by_firedrill = marker.exists();
    assert!(!machines || added_by_firedrill, "the route was added without firedrill's marker");
    let down = firedrill(state.path(), &["down", "--all"]);
    assert!(down.status.success(), "{}", text(&down));
    let others = numbers::held("local");
    match (others, added_by_firedrill) {
        (0, true) => {
            assert!(!net::blackhole_present().unwrap(), "the last local run is down and the blackhole firedrill added stays");
            assert!(!marker.exists());
        }
        (0, false) => assert!(net::blackhole_present().unwrap(), "a blackhole the machine had before firedrill was removed"),
        (_, _) => assert!(net::blackhole_present().unwrap(), "the blackhole was removed while {others} other local run(s) need it"),
    }
}
