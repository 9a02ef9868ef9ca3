//! directory-hub: the central control plane. Every interval it renders, for each Cluster
//! of the directory, the ClusterConfig its policies and reported namespaces call for, and
//! writes the ones that changed. Invalid policies are skipped (logged), never fatal.
//!
//! Environment: HUB_INTERVAL_MS (default 1000).

use std::time::Duration;

use directory::logic::render;
use directory::{Cluster, ClusterConfig, ClusterPolicy};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

#[tokio::main]
async fn main() {
    directory::init_logging();
    let interval = Duration::from_millis(std::env::var("HUB_INTERVAL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000));
    let client = Client::try_default().await.expect("in-cluster configuration");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tracing::info!("directory-hub starting");
    loop {
        if let Err(e) = round(&client).await {
            tracing::warn!(error = %e, "rendering");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = term.recv() => { tracing::info!("SIGTERM"); return; }
        }
    }
}

async fn round(client: &Client) -> Result<(), String> {
    let clusters = Api::<Cluster>::all(client.clone()).list(&ListParams::default()).await.map_err(|e| e.to_string())?.items;
    let policies: Vec<(String, directory::ClusterPolicySpec)> = Api::<ClusterPolicy>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .map(|p| (p.name_any(), p.spec))
        .collect();
    let configs: Api<ClusterConfig> = Api::namespaced(client.clone(), directory::NAMESPACE);
    let existing = configs.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items;
    for c in &clusters {
        let name = c.name_any();
        let reported = c.status.as_ref().map(|s| s.namespaces.clone()).unwrap_or_default();
        let (spec, skipped) = render(&name, c.labels(), &reported, &policies);
        for why in skipped {
            tracing::warn!(cluster = name, "skipped {why}");
        }
        if existing.iter().any(|e| e.name_any() == name && e.spec == spec) {
            continue;
        }
        let obj = ClusterConfig::new(&name, spec);
        configs.patch(&name, &PatchParams::apply("directory-hub").force(), &Patch::Apply(&obj)).await.map_err(|e| format!("config of {name}: {e}"))?;
        tracing::info!(cluster = name, "configuration rendered");
    }
    for e in existing.iter().filter(|e| !clusters.iter().any(|c| c.name_any() == e.name_any())) {
        let _ = configs.delete(&e.name_any(), &DeleteParams::default()).await;
    }
    Ok(())
}
