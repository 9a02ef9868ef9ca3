//! Command-line interface. Exit codes: 0 every table matches, 1 a table differs,
//! 2 the harness failed (bad input, setup error, a fault that could not be reverted).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::fixtures::Paths;

mod check;
mod docs;
mod merge;
mod record;
mod run;
mod select;

pub use select::{EXIT_HARNESS, EXIT_MATCH, EXIT_MISMATCH, matches, only_run, relative};

#[derive(Parser, Debug)]
#[command(name = "firedrill", version, about = "Check failure-domain documents against real clusters")]
pub struct Cli {
    /// The log on stderr: `text` (progress lines) or `json` (one JSON object per line, for
    /// CI). Tables stay on stdout either way; `RUST_LOG` sets what is logged.
    #[arg(long, global = true, value_enum, env = "FIREDRILL_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List suites and their scenarios (touches no cluster).
    List {
        /// Only scenarios whose `suite::scenario` name contains one of these.
        filters: Vec<String>,
        /// Also print each scenario's documented table, as its snapshot must hold it.
        #[arg(long)]
        tables: bool,
        /// Directory of suite files (default: the repository's suites/).
        #[arg(long)]
        suites: Option<PathBuf>,
        /// Directory of snapshots (default: the repository's snapshots/).
        #[arg(long)]
        snapshots: Option<PathBuf>,
    },
    /// Print the JSON Schema of suite files.
    Schema,
    /// Bring up a topology and leave it running (tear down with `firedrill down`).
    Up {
        /// A topology of fixtures/topologies/.
        #[arg(long, default_value = "single")]
        topology: String,
        #[arg(long, value_enum, env = "FIREDRILL_BACKEND", default_value = "local")]
        backend: crate::backend::BackendKind,
        /// Extra hosts outside the clusters (network namespaces on a local run's bridge, containers on a kind run's network).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
    },
    /// Tear down a run (the only one, or RUN_DIR), or with --all every run this state
    /// directory records, of every backend. Nothing it does not record is touched.
    Down {
        run_dir: Option<PathBuf>,
        #[arg(long)]
        all: bool,
    },
    /// Run the scenarios matching FILTERs (all by default) and check their tables.
    Run {
        /// Only scenarios whose `suite::scenario` name contains one of these.
        filters: Vec<String>,
        #[arg(long, value_enum, env = "FIREDRILL_BACKEND", default_value = "local")]
        backend: crate::backend::BackendKind,
        /// Write report.md, junit.xml and results.json here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Run everything N times and report every cell whose verdict changed.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        repeat: u32,
        /// How many suites run at once, each on a new environment of its own (with
        /// `--on`, suites take turns on that one). Default: one per 4 cores, at least one —
        /// on 2 cores two suites at once starve each other's probes (measured: timing
        /// checks failed), so they take turns there.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
        jobs: Option<u32>,
        /// Directory of suite files (default: the repository's suites/).
        #[arg(long)]
        suites: Option<PathBuf>,
        /// Directory of snapshots (default: the repository's snapshots/).
        #[arg(long)]
        snapshots: Option<PathBuf>,
        /// Leave the environment running afterwards (tear down with `firedrill down`).
        #[arg(long)]
        keep: bool,
        /// Run on a run already up (`firedrill up`, local or kind) instead of a new
        /// environment (the backend is then the run's).
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["contexts", "allow_contexts", "kubeconfig", "registry"])]
        on: Option<PathBuf>,
        /// With `--backend existing`: the kubeconfig context that stands for each cluster
        /// of the suite's topology, as ROLE=CONTEXT (repeat for each cluster).
        #[arg(long = "context", value_name = "ROLE=CONTEXT")]
        contexts: Vec<String>,
        /// With `--backend existing`: contexts firedrill did not create that it may deploy
        /// to and fault (repeat, or separate with commas). Others are refused.
        #[arg(long = "allow-context", value_name = "CONTEXT", value_delimiter = ',')]
        allow_contexts: Vec<String>,
        /// With `--backend existing`: the kubeconfig holding the contexts (default: the
        /// first file of $KUBECONFIG, else ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// With `--backend existing`: pull the components' images from this registry
        /// (`firedrill.local/NAME:TAG` becomes `REGISTRY/NAME:TAG`); without it they must be
        /// present on the nodes already.
        #[arg(long)]
        registry: Option<String>,
    },
    /// Revert the faults a killed run left in place, from its journal.
    Recover { run_dir: Option<PathBuf> },
    /// List what carries firedrill's names on this machine (namespaces and links `fd<N>…`,
    /// process groups, kind clusters `fd-k<N>-…`, their containers and networks) and no
    /// run of this state directory records; with --yes, remove it. Another state
    /// directory's runs are listed too: `FIREDRILL_STATE=DIR firedrill down --all` is the
    /// way to take those down.
    Sweep {
        #[arg(long)]
        yes: bool,
    },
    /// Judge a recorded run again against the current suites and snapshots, touching no
    /// cluster: its report directory (`run --report DIR`) or that directory's results.json,
    /// or recordings (`recordings/`, one backend's directory of it, or one file).
    Check {
        #[arg(value_name = "REPORT_DIR")]
        recorded: PathBuf,
        /// A suite file that replaces the suite of the same name (an edited copy).
        #[arg(long)]
        suite: Option<PathBuf>,
        /// Directory of suite files (default: the repository's suites/).
        #[arg(long)]
        suites: Option<PathBuf>,
        /// Directory of snapshots (default: the repository's snapshots/).
        #[arg(long)]
        snapshots: Option<PathBuf>,
        /// Also write the re-judged run's reports (report.html with its timelines,
        /// report.md, junit.xml, results.json) into this directory.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Merge the report directories of runs that each ran part of a drill (the nightly
    /// workflow's jobs) into one report directory: every scenario as its part recorded it,
    /// one report.html, report.md, junit.xml and results.json, the stability over rounds,
    /// and the job summary where GITHUB_STEP_SUMMARY names a file. Exit status as `run`'s.
    Merge {
        #[arg(value_name = "REPORT_DIR", required = true)]
        parts: Vec<PathBuf>,
        /// Where to write the merged report.
        #[arg(long, value_name = "DIR")]
        report: PathBuf,
        /// Directory of suite files (default: the repository's suites/).
        #[arg(long)]
        suites: Option<PathBuf>,
        /// Directory of snapshots (default: the repository's snapshots/).
        #[arg(long)]
        snapshots: Option<PathBuf>,
    },
    /// Keep each scenario of live runs as a recording (recordings/BACKEND/SUITE__SCENARIO.json),
    /// which `firedrill check recordings` and `make test` judge again: only a scenario whose
    /// live run matched, and which judged again still does; of a repeated run, the last
    /// round that matched.
    Record {
        /// Report directories of live runs (`firedrill run --report DIR`, `make drill`'s
        /// reports/latest, a nightly's artifact).
        #[arg(value_name = "REPORT_DIR", required = true)]
        reports: Vec<PathBuf>,
        /// Where to write (default: the repository's recordings/).
        #[arg(long, value_name = "DIR")]
        into: Option<PathBuf>,
    },
    /// Write docs/failure-domains.md, the living document: per suite the documented tables,
    /// what the last run observed (judged again as `check` does), on which backend and
    /// when, and every recorded deviation with its evidence. Touches no cluster.
    Docs {
        /// The last run's report directory (default: reports/latest, what `make drill` writes).
        #[arg(long, value_name = "REPORT_DIR")]
        report: Option<PathBuf>,
        /// Where to write (default: docs/failure-domains.md).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the address plan (every block in 198.18.0.0/15), or the Docker engine
    /// configuration that follows it.
    Addresses {
        /// Print the `dockerd --config-file` JSON instead.
        #[arg(long)]
        docker_daemon_json: bool,
        /// With --docker-daemon-json: the OCI runtime wrapper to make the default.
        #[arg(long, requires = "docker_daemon_json")]
        runtime: Option<PathBuf>,
        /// With --docker-daemon-json: the configuration of firedrill's own engine (its own
        /// socket, data and exec roots, bridge), which `ci/docker.sh` starts.
        #[arg(long, requires = "docker_daemon_json")]
        own_engine: bool,
        /// Print the address of firedrill's own engine's bridge (`ci/docker.sh` creates it).
        #[arg(long, conflicts_with = "docker_daemon_json")]
        own_bridge: bool,
    },
    #[command(name = "__daemon", hide = true)]
    Daemon { run_dir: PathBuf },
}

pub fn main() -> ExitCode {
    // The shim runs before anything else, single-threaded, and execs.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "__shim") {
        let spec = args.get(2).map(PathBuf::from).unwrap_or_default();
        crate::backend::local::shim::main(&spec);
    }
    let cli = Cli::parse();
    // `run --report DIR` also logs, as JSON lines, to DIR/firedrill.log.
    let log_file = match &cli.command {
        Command::Run { report: Some(dir), .. } => Some(dir.join("firedrill.log")),
        _ => None,
    };
    if let Err(e) = init_tracing(matches!(cli.command, Command::Daemon { .. }), cli.log_format, log_file.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_HARNESS);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let paths = Paths::discover();
    match cli.command {
        Command::List { filters, tables, suites, snapshots } => {
            let mut paths = paths;
            paths.suites = suites.unwrap_or(paths.suites);
            paths.snapshots = snapshots.unwrap_or(paths.snapshots);
            list(&paths, &filters, tables)
        }
        Command::Schema => {
            print!("{}", crate::suite::schema::json());
            ExitCode::from(EXIT_MATCH)
        }
        Command::Addresses { docker_daemon_json, runtime, own_engine, own_bridge } => {
            use crate::backend::addresses;
            if own_engine {
                println!("{:#}", addresses::own_engine_config(runtime.as_deref()));
            } else if docker_daemon_json {
                println!("{:#}", addresses::docker_daemon_config(runtime.as_deref()));
            } else if own_bridge {
                println!("{}", addresses::own_bridge_address());
            } else {
                print!("{}", addresses::describe());
            }
            ExitCode::from(EXIT_MATCH)
        }
        Command::Up { topology, backend, hosts } => block_on(up(&paths, &topology, backend, hosts)),
        Command::Down { run_dir, all } => block_on(down(run_dir, all)),
        Command::Run { filters, backend, report, repeat, suites, snapshots, keep, on, jobs, contexts, allow_contexts, kubeconfig, registry } => {
            use crate::backend::BackendKind;
            let existing_flags = !contexts.is_empty() || !allow_contexts.is_empty() || kubeconfig.is_some() || registry.is_some();
            let target = match (on, backend) {
                (Some(dir), _) => crate::runner::Target::Attached(dir),
                (None, BackendKind::Existing) if contexts.is_empty() => {
                    eprintln!("error: --backend existing needs --context ROLE=CONTEXT for each cluster of the suites' topology");
                    return ExitCode::from(EXIT_HARNESS);
                }
                (None, BackendKind::Existing) => {
                    crate::runner::Target::Contexts(crate::backend::existing::Spec { kubeconfig, contexts, allowed: allow_contexts, registry })
                }
                (None, other) if existing_flags => {
                    eprintln!("error: --context, --allow-context, --kubeconfig and --registry belong to --backend existing, not {}", other.name());
                    return ExitCode::from(EXIT_HARNESS);
                }
                (None, other) => crate::runner::Target::New(other),
            };
            block_on(run::run(
                paths,
                run::RunArgs { filters, target, report, repeat, suites, snapshots, keep, jobs: jobs.map(|j| j as usize).unwrap_or_else(default_jobs) },
            ))
        }
        Command::Recover { run_dir } => block_on(run::recover(paths, run_dir)),
        Command::Sweep { yes } => block_on(sweep(yes)),
        Command::Check { recorded, suite, suites, snapshots, report } => check::check(paths, check::CheckArgs { recorded, suite, suites, snapshots }, report),
        Command::Merge { parts, report, suites, snapshots } => merge::merge(paths, merge::MergeArgs { parts, report, suites, snapshots }),
        Command::Record { reports, into } => record::record(paths, record::RecordArgs { reports, into }),
        Command::Docs { report, out } => docs::docs(paths, docs::DocsArgs { report, out }),
        Command::Daemon { run_dir } => block_on(async move {
            match crate::backend::local::daemon::main(run_dir).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "daemon failed");
                    ExitCode::from(EXIT_HARNESS)
                }
            }
        }),
    }
}

/// Suites at once when not told: one per 4 cores, at least one.
pub fn default_jobs() -> usize {
    (std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) / 4).max(1)
}

fn block_on<F: std::future::Future<Output = ExitCode>>(f: F) -> ExitCode {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime").block_on(f)
}

/// Logs go to stderr; `RUST_LOG` filters (default: info for firedrill, warn for the rest).
/// The log: on stderr as text (run events are the reporter's progress lines there, not
/// logged twice) or as JSON lines (run events included, as `firedrill::event` records);
/// with `file`, every record also as JSON lines in that file. `RUST_LOG` overrides the
/// default levels.
fn init_tracing(daemon: bool, format: LogFormat, file: Option<&std::path::Path>) -> Result<(), String> {
    use tracing_subscriber::filter::{EnvFilter, filter_fn};
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let default = if daemon { "info,kube=warn" } else { "warn,firedrill=info,kube_client=off,rustls=off" };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    crate::report::terminal::set_json_log(format == LogFormat::Json);
    let stderr = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(!daemon && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter())
            .with_filter(filter_fn(|m| m.target() != crate::report::terminal::EVENT_TARGET))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(filter()).boxed(),
    };
    let file = match file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(tracing_subscriber::fmt::layer().json().with_ansi(false).with_writer(std::sync::Mutex::new(f)).with_filter(filter()).boxed())
        }
        None => None,
    };
    let _ = tracing_subscriber::registry().with(stderr).with(file).try_init();
    Ok(())
}

async fn up(paths: &Paths, topology: &str, backend: crate::backend::BackendKind, hosts: Vec<String>) -> ExitCode {
    use crate::backend::BackendKind;
    use crate::backend::local::{LocalRun, UpOptions};
    let topo = match crate::topology::Topology::load(&paths.fixtures, topology) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    if let Some(bad) = hosts.iter().find(|h| !crate::names::is_name(h)) {
        eprintln!("error: host name `{bad}` must be lowercase letters, digits and dashes");
        return ExitCode::from(EXIT_HARNESS);
    }
    match backend {
        BackendKind::Local => {}
        BackendKind::Kind => return up_kind(paths, &topo, &hosts).await,
        BackendKind::Existing => {
            eprintln!("error: the existing backend uses clusters that are already up; there is nothing to bring up");
            return ExitCode::from(EXIT_HARNESS);
        }
    }
    let firedrill = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("firedrill"));
    let working = crate::report::terminal::working(format!("bringing up topology {} on the local backend", topo.topology));
    let up = LocalRun::up(paths, UpOptions { topology: &topo, hosts, firedrill }).await;
    drop(working);
    match up {
        Ok(run) => {
            println!("run {} is up ({})", run.info.id, run.dir().display());
            for c in &run.info.clusters {
                println!("  cluster {}: {}  kubeconfig {}", c.name, c.server, c.admin_kubeconfig.display());
                for n in &c.nodes {
                    println!("    node {} {}", n.name, n.ip);
                }
            }
            for h in &run.info.hosts {
                println!("  host {} {}", h.name, h.ip);
            }
            println!("tear down with: firedrill down {}", run.dir().display());
            ExitCode::from(EXIT_MATCH)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_HARNESS)
        }
    }
}

async fn up_kind(paths: &Paths, topo: &crate::topology::Topology, hosts: &[String]) -> ExitCode {
    let firedrill = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("firedrill"));
    let working = crate::report::terminal::working(format!("bringing up topology {} on kind", topo.topology));
    let up = crate::backend::kind::KindRun::up(paths, topo, hosts, &firedrill).await;
    drop(working);
    match up {
        Ok(run) => {
            let i = &run.info;
            println!("run {} is up on kind ({}); network {} {}", i.id, i.dir.display(), i.network, i.subnet);
            for c in &i.clusters {
                println!("  cluster {} (kind {}): pods {} services {}  kubeconfig {}", c.name, c.kind_name, c.pods, c.services, c.kubeconfig.display());
                for n in &c.nodes {
                    println!("    node {}: container {}", n.name, n.container);
                }
            }
            for h in &i.hosts {
                println!("  host {} {}: container {}", h.name, h.ip, h.container);
            }
            println!("tear down with: firedrill down {}", i.dir.display());
            ExitCode::from(EXIT_MATCH)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_HARNESS)
        }
    }
}

/// Remove what an existing run deployed (its clusters stay), then its directory.
async fn existing_down(dir: &std::path::Path) -> Result<(), crate::backend::BackendError> {
    let run = crate::backend::existing::ExistingRun::attach(dir)?;
    let pending = crate::journal::Journal::at(dir).pending().map_err(|e| crate::backend::BackendError::Setup(crate::error::chain(&e)))?;
    if let Some(e) = pending.first() {
        return Err(crate::backend::BackendError::Setup(format!(
            "{}: a fault is still in place ({}, journal #{}); run `firedrill recover {}` first",
            dir.display(),
            e.scenario,
            e.seq,
            dir.display()
        )));
    }
    for d in run.down().await? {
        println!("down: deleted {d}");
    }
    Ok(())
}

async fn down(run_dir: Option<PathBuf>, all: bool) -> ExitCode {
    use crate::backend::{existing, kind, local};
    let result = if all {
        // Existing runs first: what they deployed may sit in a local or kind run's clusters.
        // One that cannot be removed (its clusters gone, a fault in place) is reported, and
        // the local and kind runs are removed all the same.
        let mut dirs = Vec::new();
        let mut failed = Vec::new();
        for dir in existing::all_runs() {
            match existing_down(&dir).await {
                Ok(()) => dirs.push(dir),
                Err(e) => failed.push(format!("{}: {e}", dir.display())),
            }
        }
        let local = local::down_all().await;
        let (kind_done, kind_failed) = kind::down_all().await;
        failed.extend(kind_failed);
        local.and_then(|mut more| {
            dirs.append(&mut more);
            dirs.extend(kind_done);
            for d in &dirs {
                println!("down: {}", d.display());
            }
            if dirs.is_empty() && failed.is_empty() {
                println!("down: no run");
            }
            if failed.is_empty() { Ok(()) } else { Err(crate::backend::BackendError::Setup(format!("runs not removed:\n  {}", failed.join("\n  ")))) }
        })
    } else {
        let dir = match only_run(run_dir) {
            Ok(Some(d)) => d,
            Ok(None) => {
                println!("down: no run");
                return ExitCode::from(EXIT_MATCH);
            }
            Err(e) => {
                eprintln!("error: {e} (or use --all)");
                return ExitCode::from(EXIT_HARNESS);
            }
        };
        let done = if existing::is_run(&dir) {
            existing_down(&dir).await
        } else if kind::is_run(&dir) || kind::runs_dir() == dir.parent().unwrap_or(&dir) {
            kind::down(&dir).await
        } else {
            local::down(&dir).await
        };
        done.map(|()| println!("down: {}", dir.display()))
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_MATCH),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_HARNESS)
        }
    }
}

async fn sweep(yes: bool) -> ExitCode {
    use crate::backend::{kind, local, state_root};
    let (local_strays, kind_strays) = (local::strays(), kind::strays());
    if local_strays.is_empty() && kind_strays.is_empty() {
        println!("sweep: nothing carries firedrill's names that no run of {} records", state_root().display());
        return ExitCode::from(EXIT_MATCH);
    }
    println!("sweep: these carry firedrill's names and no run of {} records them:", state_root().display());
    for s in local_strays.iter().chain(&kind_strays) {
        println!("  {} {}", s.kind, s.name);
    }
    if !yes {
        println!(
            "sweep: nothing removed. They may be another state directory's runs (FIREDRILL_STATE=DIR firedrill down --all takes those down) or not firedrill's at all; `firedrill sweep --yes` removes them"
        );
        return ExitCode::from(EXIT_MATCH);
    }
    match local::remove_strays(&local_strays).await.and(kind::remove_strays(&kind_strays).await) {
        Ok(()) => {
            println!("sweep: removed");
            ExitCode::from(EXIT_MATCH)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_HARNESS)
        }
    }
}

fn list(paths: &Paths, filters: &[String], tables: bool) -> ExitCode {
    let suites = match crate::suite::load_dir(&paths.suites, &paths.fixtures) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_HARNESS);
        }
    };
    let mut shown = 0;
    for suite in &suites {
        let names: Vec<String> = suite.trial_names().filter(|n| matches(n, filters)).collect();
        if names.is_empty() {
            continue;
        }
        println!("{} — {} ({})", suite.id(), suite.spec.title, relative(paths, &suite.file).display());
        for (name, sc) in names.iter().zip(suite.spec.scenarios.iter().filter(|s| matches(&format!("{}::{}", suite.id(), s.id.value), filters))) {
            println!("  {name}  {}", sc.title);
            if tables {
                let file = crate::snapshot::file(&paths.snapshots, suite.id(), &sc.id.value);
                println!("\n{}:\n{}", relative(paths, &file).display(), crate::model::table::expected(suite, sc).render());
            }
            shown += 1;
        }
    }
    if shown == 0 {
        eprintln!("error: no scenario matches {filters:?}");
        return ExitCode::from(EXIT_HARNESS);
    }
    ExitCode::from(EXIT_MATCH)
}
