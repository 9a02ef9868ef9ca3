//! Shared by the benchmarks: medians and percentiles, and the rows every benchmark writes
//! to `target/bench/<name>.json` for `make bench`'s summary table. Not a timed test: a
//! benchmark reports what it measured beside its target; it never fails on a number.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One figure: what was measured, and the target it is held against.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub figure: String,
    pub measured: f64,
    pub unit: String,
    /// `<=` or `>=`, and the target; none for figures reported without one.
    pub target: Option<(String, f64)>,
    pub note: String,
    /// Nothing was measured (no trial gave a figure): printed so, and never "met".
    #[serde(default)]
    pub unmeasured: bool,
}

impl Row {
    pub fn new(figure: &str, measured: f64, unit: &str, target: Option<(&str, f64)>, note: impl Into<String>) -> Row {
        Row { figure: figure.into(), measured, unit: unit.into(), target: target.map(|(op, v)| (op.to_string(), v)), note: note.into(), unmeasured: false }
    }

    /// A figure no trial gave; `why` says what happened instead.
    pub fn unmeasured(figure: &str, unit: &str, target: Option<(&str, f64)>, why: impl Into<String>) -> Row {
        Row { unmeasured: true, ..Row::new(figure, 0.0, unit, target, why) }
    }

    /// Measured over target (for `<=`) or target over measured (for `>=`): at most 1 meets it.
    pub fn ratio(&self) -> Option<f64> {
        let (op, t) = self.target.as_ref()?;
        let div = |a: f64, b: f64| if b == 0.0 { if a <= 0.0 { 0.0 } else { f64::INFINITY } } else { a / b };
        Some(if op == "<=" { div(self.measured, *t) } else { div(*t, self.measured) })
    }

    pub fn met(&self) -> Option<bool> {
        if self.unmeasured {
            return self.target.as_ref().map(|_| false);
        }
        self.ratio().map(|r| r <= 1.0)
    }
}

/// The bench-identity environment (harness/benches/data/bench-identity.yaml) on a new
/// local run, opened on a runtime of its own: `measure` runs with it, then it is torn down.
pub fn with_bench_identity<T>(measure: impl AsyncFnOnce(&firedrill::runner::Session) -> T) -> T {
    use firedrill::backend::BackendKind;
    use firedrill::runner::{Session, Target};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = root();
    let paths = firedrill::fixtures::Paths::at(&root);
    let suite = firedrill::suite::load_file(&root.join("harness/benches/data/bench-identity.yaml"), &paths.fixtures).expect("bench suite");
    let firedrill = PathBuf::from(env!("CARGO_BIN_EXE_firedrill"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    rt.block_on(async {
        let quiet: firedrill::runner::Emit = std::sync::Arc::new(|_| {});
        let session = Session::open(&paths, Target::New(BackendKind::Local), &suite, &firedrill, quiet, false).await.expect("environment");
        let result = measure(&session).await;
        session.close().await.expect("teardown");
        result
    })
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("harness/ is in the workspace").to_path_buf()
}

pub fn out_dir() -> PathBuf {
    root().join("target").join("bench")
}

/// Write this benchmark's rows, and print them.
pub fn write(name: &str, rows: &[Row]) {
    let dir = out_dir();
    std::fs::create_dir_all(&dir).expect("target/bench");
    std::fs::write(dir.join(format!("{name}.json")), serde_json::to_string_pretty(rows).expect("rows serialise")).expect("writing the rows");
    println!("\n{}", table(rows));
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("| Figure | Measured | Target | Ratio | Note |\n| --- | --- | --- | --- | --- |\n");
    for r in rows {
        let target =
            r.target.as_ref().map(|(op, t)| format!("{} {} {}", op.replace("<=", "≤").replace(">=", "≥"), fmt(*t), r.unit)).unwrap_or_else(|| "—".into());
        let ratio = match (r.ratio(), r.met()) {
            _ if r.unmeasured && r.target.is_some() => "— (missed: not measured)".into(),
            (Some(x), Some(true)) => format!("{x:.2} (met)"),
            (Some(x), _) => format!("{x:.2} (missed)"),
            _ => "—".into(),
        };
        let measured = if r.unmeasured { "not measured".to_string() } else { format!("{} {}", fmt(r.measured), r.unit) };
        out.push_str(&format!("| {} | {measured} | {target} | {ratio} | {} |\n", r.figure, r.note.replace('|', "\\|")));
    }
    out
}

fn fmt(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

/// Nearest-rank percentile of `v` (0 for an empty slice).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    if (p - 0.5).abs() < f64::EPSILON && v.len() % 2 == 0 {
        return (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Resident memory of a process, and its peak, in KiB.
pub fn rss(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)?.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()).unwrap_or(0);
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) this process has used, in seconds.
pub fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat; here 11 and 12 after the state field.
    let hz = 100.0;
    (ticks(11) + ticks(12)) / hz
}
