//! The whole default drill as a newcomer runs it: `firedrill run` (every suite in
//! `suites/`, local backend), `FIREDRILL_BENCH_ROUNDS` times (default 3), each round
//! timed on the wall clock. Reported: the median round, whether every cell had the same
//! verdict in every round, each scenario's time outside its fault window, and the median
//! of every phase — the suites' (bring-up, deploy, teardown, from the run's event log) and
//! the scenarios' — so the next slow phase is visible.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::{Row, median};

fn secs(v: &serde_json::Value) -> f64 {
    v["secs"].as_f64().unwrap_or(0.0) + v["nanos"].as_f64().unwrap_or(0.0) / 1e9
}

fn main() {
    let rounds: usize = std::env::var("FIREDRILL_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let root = common::root();
    let firedrill = PathBuf::from(env!("CARGO_BIN_EXE_firedrill"));
    let dir = common::out_dir().join("drill");
    let mut walls = Vec::new();
    let mut cells: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut outside = Vec::new();
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut suite_phases: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut scenarios = 0;
    let mut matched = 0;
    for round in 1..=rounds {
        let report = dir.join(format!("round-{round}"));
        // The run's log is appended to: an earlier bench's must not be counted.
        let _ = std::fs::remove_dir_all(&report);
        let start = Instant::now();
        let status = Command::new(&firedrill).args(["run", "--report"]).arg(&report).current_dir(&root).status().expect("firedrill run");
        let wall = start.elapsed().as_secs_f64();
        walls.push(wall);
        let results: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(report.join("results.json")).expect("results.json")).expect("results");
        println!("round {round}: {wall:.0} s, exit {:?}, {} scenarios", status.code(), results.len());
        let log = report.join("firedrill.log");
        let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        for ev in firedrill::report::terminal::logged_events(&log) {
            match ev["event"].as_str() {
                Some("environment-ready") => {
                    suite_phases.entry("bring-up").or_default().push(secs(&ev["bring_up"]));
                    suite_phases.entry("deploy").or_default().push(secs(&ev["deploy"]));
                }
                Some("environment-down") => suite_phases.entry("teardown").or_default().push(secs(&ev["took"])),
                _ => {}
            }
        }
        for r in &results {
            let name = format!("{}::{}", r["suite"].as_str().unwrap_or(""), r["scenario"].as_str().unwrap_or(""));
            scenarios += 1;
            matched += usize::from(r["verdict"]["verdict"] == "match");
            cells.entry(format!("{name} verdict")).or_default().push(r["verdict"]["verdict"].as_str().unwrap_or("?").to_string());
            for o in r["operations"].as_array().into_iter().flatten() {
                let glyph = o["classification"]["impact"].as_str().unwrap_or("—").to_string();
                cells.entry(format!("{name} / {}", o["id"].as_str().unwrap_or(""))).or_default().push(glyph);
            }
            let mut fault = 0.0;
            for p in r["phases"].as_array().into_iter().flatten() {
                let (phase, took) = (p[0].as_str().unwrap_or("?").to_string(), secs(&p[1]));
                if phase == "fault" {
                    fault = took;
                }
                phases.entry(phase).or_default().push(took);
            }
            outside.push(secs(&r["took"]) - fault);
        }
    }
    let changed: Vec<&String> = cells.iter().filter(|(_, v)| v.windows(2).any(|w| w[0] != w[1]) || v.len() != rounds).map(|(k, _)| k).collect();
    for c in &changed {
        println!("changed across rounds: {c}: {:?}", cells[*c]);
    }
    let plural = if rounds == 1 { "" } else { "s" };
    let mut rows = vec![
        Row::new(
            "Whole default drill (every suite), wall per round",
            median(&walls) / 60.0,
            "min",
            Some(("<=", 6.0)),
            format!("median of {rounds} round{plural}; {matched} of {scenarios} scenario runs matched their documents"),
        ),
        Row::new(
            "Cells whose verdict changed between rounds",
            changed.len() as f64,
            "cells",
            Some(("<=", 0.0)),
            format!("{} cells compared over {rounds} round{plural}", cells.len()),
        ),
        Row::new(
            "Per scenario, wall minus its fault window (median)",
            median(&outside),
            "s",
            Some(("<=", 20.0)),
            format!("max {:.1} s", outside.iter().cloned().fold(0.0, f64::max)),
        ),
    ];
    for phase in ["bring-up", "deploy", "teardown"] {
        let Some(v) = suite_phases.get(phase) else { panic!("the run's event log has no {phase} of any suite") };
        rows.push(Row::new(
            &format!("phase `{phase}`, per suite (median)"),
            median(v),
            "s",
            None,
            format!("max {:.1} s over {} suite runs", v.iter().cloned().fold(0.0, f64::max), v.len()),
        ));
    }
    for (phase, v) in &phases {
        rows.push(Row::new(
            &format!("phase `{phase}`, per scenario (median)"),
            median(v),
            "s",
            None,
            format!("max {:.1} s", v.iter().cloned().fold(0.0, f64::max)),
        ));
    }
    common::write("drill", &rows);
}
