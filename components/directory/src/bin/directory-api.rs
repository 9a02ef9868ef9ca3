//! directory-api: the management API. People and GitOps register and de-register clusters
//! and change policies here; it checks the caller's token and writes the directory's
//! objects. De-registering removes the Cluster and then the replica's pull credentials
//! (its token Secret), as the registry's procedure does.
//!
//! Environment: LISTEN (default 0.0.0.0:8081), API_TOKEN (required: callers send
//! `Authorization: Bearer <token>`).
//!
//! Routes: GET /healthz; PUT|PATCH|DELETE /clusters/{name}; PUT|DELETE /policies/{name}.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use directory::logic::validate_policy;
use directory::{Cluster, ClusterPolicy, ClusterPolicySpec, ClusterSpec, KubernetesApiEndpoints, ServerEndpoint};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::Deserialize;

struct App {
    client: Client,
    token: String,
}

type Reply = (StatusCode, Json<serde_json::Value>);

fn reply(code: StatusCode, msg: impl Into<String>) -> Reply {
    (code, Json(serde_json::json!({ "message": msg.into() })))
}

fn kube_reply(what: &str, e: kube::Error) -> Reply {
    match e {
        kube::Error::Api(s) => reply(StatusCode::from_u16(s.code).unwrap_or(StatusCode::BAD_GATEWAY), format!("{what}: {}", s.message)),
        other => reply(StatusCode::SERVICE_UNAVAILABLE, format!("{what}: {other}")),
    }
}

fn authorized(app: &App, headers: &HeaderMap) -> Result<(), Reply> {
    let given = headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
    if given == Some(app.token.as_str()) { Ok(()) } else { Err(reply(StatusCode::UNAUTHORIZED, "a valid bearer token is required")) }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterBody {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    server: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterPatch {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

async fn put_cluster(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>, Json(body): Json<ClusterBody>) -> impl IntoResponse {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    let spec = ClusterSpec {
        kubernetes_api_endpoints: KubernetesApiEndpoints { server_endpoints: body.server.into_iter().map(|s| ServerEndpoint { server_address: s }).collect() },
    };
    let obj = Cluster {
        metadata: ObjectMeta { name: Some(name.clone()), labels: Some(body.labels), annotations: Some(body.annotations), ..Default::default() },
        spec,
        status: None,
    };
    match Api::<Cluster>::all(app.client.clone()).patch(&name, &PatchParams::apply("directory-api").force(), &Patch::Apply(&obj)).await {
        Ok(_) => reply(StatusCode::OK, format!("cluster {name} registered")),
        Err(e) => kube_reply(&format!("registering cluster {name}"), e),
    }
}

async fn patch_cluster(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>, Json(body): Json<ClusterPatch>) -> impl IntoResponse {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    let patch = directory::logic::metadata_merge_patch(body.labels.as_ref(), body.annotations.as_ref());
    match Api::<Cluster>::all(app.client.clone()).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => reply(StatusCode::OK, format!("cluster {name} updated")),
        Err(e) => kube_reply(&format!("updating cluster {name}"), e),
    }
}

async fn delete_cluster(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>) -> impl IntoResponse {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    // First the Cluster object, then the credentials the replica pulled with.
    match Api::<Cluster>::all(app.client.clone()).delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return kube_reply(&format!("de-registering cluster {name}"), e),
    }
    match Api::<Secret>::namespaced(app.client.clone(), directory::NAMESPACE).delete(&format!("{name}-token"), &DeleteParams::default()).await {
        Ok(_) => reply(StatusCode::OK, format!("cluster {name} de-registered and its credentials revoked")),
        Err(kube::Error::Api(s)) if s.code == 404 => reply(StatusCode::OK, format!("cluster {name} de-registered (it had no credentials)")),
        Err(e) => kube_reply(&format!("revoking the credentials of {name}"), e),
    }
}

async fn put_policy(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>, Json(spec): Json<ClusterPolicySpec>) -> impl IntoResponse {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    if let Err(why) = validate_policy(&spec) {
        return reply(StatusCode::BAD_REQUEST, format!("policy {name}: {why}"));
    }
    let obj = ClusterPolicy::new(&name, spec);
    match Api::<ClusterPolicy>::all(app.client.clone()).patch(&name, &PatchParams::apply("directory-api").force(), &Patch::Apply(&obj)).await {
        Ok(_) => reply(StatusCode::OK, format!("policy {name} stored")),
        Err(e) => kube_reply(&format!("storing policy {name}"), e),
    }
}

async fn delete_policy(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>) -> impl IntoResponse {
    if let Err(r) = authorized(&app, &headers) {
        return r;
    }
    match Api::<ClusterPolicy>::all(app.client.clone()).delete(&name, &DeleteParams::default()).await {
        Ok(_) => reply(StatusCode::OK, format!("policy {name} deleted")),
        Err(e) => kube_reply(&format!("deleting policy {name}"), e),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    directory::init_logging();
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "0.0.0.0:8081".into());
    let token = std::env::var("API_TOKEN").expect("API_TOKEN is required");
    let client = Client::try_default().await.expect("in-cluster configuration");
    let app = Arc::new(App { client, token });
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/clusters/{name}", put(put_cluster).patch(patch_cluster).delete(delete_cluster))
        .route("/policies/{name}", put(put_policy).delete(delete_policy))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(listen, "directory-api listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            term.recv().await;
        })
        .await
}
