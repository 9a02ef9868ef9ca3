//! A tiny HTTP service: the "running workload" whose availability the drills measure.
//!
//! `GET /` answers `<name> ok`, where the name comes from `POD_NAME` (set by the
//! Deployment through the downward API) or the host name. `GET /healthz` answers `ok`.
//! `GET /metrics` exposes `workload_heartbeat_timestamp_seconds`, the current time: a
//! metric whose freshness at a central receiver shows that collection works.
//! Listens on `LISTEN` (default `0.0.0.0:8080`); exits cleanly on SIGTERM.
//!
//! With `CONNECT=host:port,host:port…` (at most 7) it serves nothing: it opens one TCP
//! connection to each address (3 s each), prints what happened, and exits with a bit mask of
//! the addresses it could not reach (bit 0 for the first), 0 when it reached them all, after
//! waiting `CONNECT_DELAY` seconds (default 0). The existing backend's partition proof runs
//! it as a pod on each side.

use axum::{Router, routing::get};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    if let Ok(targets) = std::env::var("CONNECT") {
        std::process::exit(connect(&targets).await);
    }
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let name =
        std::env::var("POD_NAME").unwrap_or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default());
    let hello = format!("{name} ok\n");
    let app = Router::new().route("/", get(move || async move { hello })).route("/healthz", get(|| async { "ok\n" })).route("/metrics", get(metrics));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("workload {name} listening on {listen}");
    let mut term = signal(SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            term.recv().await;
            eprintln!("workload: SIGTERM, shutting down");
        })
        .await
}

/// One connection attempt to each of `targets`; the exit code's bit i is set when target i
/// was not reached (128 for a malformed list).
async fn connect(targets: &str) -> i32 {
    let targets: Vec<&str> = targets.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    if targets.is_empty() || targets.len() > 7 {
        eprintln!("CONNECT: expected 1 to 7 comma-separated host:port, got {}", targets.len());
        return 128;
    }
    let delay: u64 = std::env::var("CONNECT_DELAY").ok().and_then(|d| d.parse().ok()).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_secs(delay)).await;
    let mut code = 0;
    for (i, t) in targets.iter().enumerate() {
        match tokio::time::timeout(std::time::Duration::from_secs(3), tokio::net::TcpStream::connect(t)).await {
            Ok(Ok(_)) => println!("{t}: connected"),
            Ok(Err(e)) => {
                println!("{t}: {e}");
                code |= 1 << i;
            }
            Err(_) => {
                println!("{t}: timed out after 3 s");
                code |= 1 << i;
            }
        }
    }
    code
}

async fn metrics() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
    format!(
        "# HELP workload_heartbeat_timestamp_seconds The time this workload was last asked.\n# TYPE workload_heartbeat_timestamp_seconds gauge\nworkload_heartbeat_timestamp_seconds {now:.3}\n"
    )
}
