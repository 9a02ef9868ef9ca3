//! A tiny HTTP service: the "running workload" whose availability the drills measure.
//!
//! `GET /` answers `<name> ok`, where the name comes from `POD_NAME` (set by the
//! Deployment through the downward API) or the host name. `GET /healthz` answers `ok`.
//! `GET /metrics` exposes `workload_heartbeat_timestamp_seconds`, the current time: a
//! metric whose freshness at a central receiver shows that collection works.
//! Listens on `LISTEN` (default `0.0.0.0:8080`); exits cleanly on SIGTERM.

use axum::{Router, routing::get};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
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

async fn metrics() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
    format!(
        "# HELP workload_heartbeat_timestamp_seconds The time this workload was last asked.\n# TYPE workload_heartbeat_timestamp_seconds gauge\nworkload_heartbeat_timestamp_seconds {now:.3}\n"
    )
}
