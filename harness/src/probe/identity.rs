//! Probes of the identity document's operations: logins, token refresh, the API server's
//! cached-key authentication, starting an API server that needs the issuer, signing-key
//! rotation, the issuer's endpoints, and the break-glass path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::Mutex;

use super::oidc::OidcClient;
use super::{Attempt, Probe, fail, ok, partial};
use crate::env::{ClusterHandle, Env};
use crate::wait::Deadline;

/// How long preparing a probe (logging in before the fault) may take.
const PREPARE: Duration = Duration::from_secs(60);
/// How long a freshly started kube-apiserver may take to be ready.
const READY_WAIT: Duration = Duration::from_secs(60);

async fn login_with_retry(client: &OidcClient, user: &str, offline: bool) -> Result<super::oidc::Tokens, String> {
    let u = client.user(user)?.clone();
    let mut last = String::new();
    let deadline = Deadline::after(PREPARE);
    while !deadline.passed() {
        match client.login(&u, offline).await {
            Ok(t) => return Ok(t),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("logging in as `{user}` before the fault: {last}"))
}

/// Console login through dex's login form.
pub struct Login {
    pub client: Arc<OidcClient>,
    pub user: String,
}

impl Probe for Login {
    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let user = match self.client.user(&self.user) {
                Ok(u) => u.clone(),
                Err(e) => return fail(e),
            };
            match self.client.login(&user, false).await {
                Ok(_) => ok(),
                Err(e) => fail(e),
            }
        })
    }
}

/// `refresh_token` grant with a token from a login made before the fault.
///
/// dex rotates the refresh token on every grant. When a grant's response is cut on its
/// way back (the load balancer or dex killed mid-request), dex may already have rotated
/// the token the client never received; once dex's reuse interval has passed, the token
/// the client still holds is refused as "already claimed". A real client then has to log
/// in again, and so does this probe — only in that case (a refusal right after an
/// interrupted grant), and that attempt counts as a failure that says so.
pub struct Refresh {
    pub client: Arc<OidcClient>,
    pub user: String,
    pub token: Mutex<Option<String>>,
    /// The last grant failed after its request may have reached dex.
    pub interrupted: std::sync::atomic::AtomicBool,
}

/// Whether a failed grant may have reached dex (anything but a refused connection or an
/// HTTP answer).
fn may_have_reached(error: &str) -> bool {
    error.ends_with(": request failed") || error.ends_with(": timed out")
}

impl Probe for Refresh {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let t = login_with_retry(&self.client, &self.user, true).await?;
            *self.token.lock().await = Some(t.refresh_token.ok_or("the login returned no refresh token (offline_access)")?);
            self.interrupted.store(false, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let mut guard = self.token.lock().await;
            let Some(current) = guard.clone() else { return fail("no refresh token: prepare did not run") };
            match self.client.refresh(&current).await {
                Ok(t) => {
                    if let Some(next) = t.refresh_token {
                        *guard = Some(next);
                    }
                    self.interrupted.store(false, SeqCst);
                    ok()
                }
                Err(e) if e.contains("already been claimed") && self.interrupted.load(SeqCst) => {
                    let user = match self.client.user(&self.user) {
                        Ok(u) => u.clone(),
                        Err(e) => return fail(e),
                    };
                    match self.client.login(&user, true).await {
                        Ok(t) if t.refresh_token.is_some() => {
                            *guard = t.refresh_token;
                            self.interrupted.store(false, SeqCst);
                            fail(format!("{e}: the token was rotated by a grant whose response was cut; logged in again"))
                        }
                        Ok(_) => fail(format!("{e}; logging in again returned no refresh token")),
                        Err(login) => fail(format!("{e}; logging in again: {login}")),
                    }
                }
                Err(e) => {
                    if may_have_reached(&e) {
                        self.interrupted.store(true, SeqCst);
                    }
                    fail(e)
                }
            }
        })
    }
}

/// POST a SelfSubjectReview with a bearer token; Ok when the API server says who we are.
async fn self_subject_review(http: &reqwest::Client, server: &str, token: &str, expect_user: &str) -> Result<(), String> {
    let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let resp = http
        .post(format!("{server}/apis/authentication.k8s.io/v1/selfsubjectreviews"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| if e.is_timeout() { "SelfSubjectReview: timed out".to_string() } else { "SelfSubjectReview: connection failed".to_string() })?;
    let status = resp.status().as_u16();
    if status != 201 && status != 200 {
        return Err(format!("SelfSubjectReview: HTTP {status}"));
    }
    let v: serde_json::Value = resp.json().await.map_err(|e| format!("SelfSubjectReview: {e}"))?;
    let user = v.pointer("/status/userInfo/username").and_then(|u| u.as_str()).unwrap_or_default();
    if user == expect_user { Ok(()) } else { Err(format!("SelfSubjectReview: authenticated as `{user}`, expected `{expect_user}`")) }
}

fn cluster_http(c: &ClusterHandle, timeout: Duration) -> Result<reqwest::Client, String> {
    let ca = reqwest::Certificate::from_pem(c.ca_pem.as_bytes()).map_err(|e| format!("cluster CA: {e}"))?;
    reqwest::Client::builder().add_root_certificate(ca).timeout(timeout).build().map_err(|e| e.to_string())
}

/// The API server authenticates an id_token obtained before the fault, with its cached keys.
pub struct CachedKeys {
    pub client: Arc<OidcClient>,
    pub user: String,
    pub server: String,
    pub http: reqwest::Client,
    pub token: Mutex<Option<String>>,
}

impl CachedKeys {
    pub fn new(client: Arc<OidcClient>, user: &str, cluster: &ClusterHandle) -> Result<CachedKeys, String> {
        Ok(CachedKeys {
            http: cluster_http(cluster, Duration::from_secs(3))?,
            client,
            user: user.into(),
            server: cluster.server.clone(),
            token: Mutex::new(None),
        })
    }
}

impl Probe for CachedKeys {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let t = login_with_retry(&self.client, &self.user, false).await?;
            *self.token.lock().await = Some(t.id_token);
            Ok(())
        })
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let Some(token) = self.token.lock().await.clone() else { return fail("no id_token: prepare did not run") };
            let login = match self.client.user(&self.user) {
                Ok(u) => u.login.clone(),
                Err(e) => return fail(e),
            };
            match self_subject_review(&self.http, &self.server, &token, &format!("oidc:{login}")).await {
                Ok(()) => ok(),
                Err(e) => fail(e),
            }
        })
    }
}

/// A fresh kube-apiserver on the cluster's etcd must authenticate an id_token within
/// `timeout`: it has no cached keys and must reach the issuer.
pub struct ColdStart {
    pub env: Arc<Env>,
    pub cached: CachedKeys,
    pub cluster: String,
    pub timeout: Duration,
    pub port: std::sync::atomic::AtomicU16,
}

impl Probe for ColdStart {
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        self.cached.prepare()
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let Some(token) = self.cached.token.lock().await.clone() else { return fail("no id_token: prepare did not run") };
            let login = match self.cached.client.user(&self.cached.user) {
                Ok(u) => u.login.clone(),
                Err(e) => return fail(e),
            };
            // A different port each time: the previous server's socket may linger.
            let port = 6444 + (self.port.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 20);
            let (url, name) = match self.env.start_extra_apiserver(&self.cluster, port).await {
                Ok(v) => v,
                Err(e) => return fail(format!("starting kube-apiserver: {e}")),
            };
            // The server itself must come up (slow on a loaded machine: not the issuer's
            // doing); then it has `timeout` to authenticate the token.
            let ready = Deadline::after(READY_WAIT);
            let mut up = false;
            while !ready.passed() {
                if let Ok(r) = self.cached.http.get(format!("{url}/readyz")).send().await
                    && r.status().is_success()
                {
                    up = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let expect = format!("oidc:{login}");
            let deadline = Deadline::after(self.timeout);
            let mut result = Err(format!("kube-apiserver not ready after {READY_WAIT:?}"));
            while up && !deadline.passed() {
                result = self_subject_review(&self.cached.http, &url, &token, &expect).await;
                if result.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let why = if result.is_err() { self.env.extra_apiserver_auth_error(&self.cluster, port) } else { None };
            if let Err(e) = self.env.stop_process(&name).await {
                return fail(format!("stopping the extra kube-apiserver: {e}"));
            }
            match (result, why) {
                (Ok(()), _) => ok(),
                (Err(last), Some(why)) => fail(format!("not authenticating {:?} after ready: {last} ({why})", self.timeout)),
                (Err(last), None) => fail(format!("not authenticating {:?} after ready: {last}", self.timeout)),
            }
        })
    }
}

/// A signing key not seen before is published at the issuer's /keys within `window`.
pub struct KeyRotation {
    pub http: reqwest::Client,
    pub issuer: String,
    pub window: Duration,
    /// Key id → when it was first seen; and the newest first-seen time.
    pub seen: Mutex<(HashMap<String, Instant>, Option<Instant>)>,
}

impl KeyRotation {
    async fn kids(&self) -> Result<Vec<String>, String> {
        let resp = self
            .http
            .get(format!("{}/keys", self.issuer))
            .send()
            .await
            .map_err(|e| if e.is_timeout() { "GET /keys: timed out".to_string() } else { "GET /keys: connection failed".to_string() })?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(format!("GET /keys: HTTP {status}"));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| format!("GET /keys: {e}"))?;
        Ok(v.get("keys").and_then(|k| k.as_array()).into_iter().flatten().filter_map(|k| k.get("kid")?.as_str().map(String::from)).collect())
    }
}

impl Probe for KeyRotation {
    /// The keys published now count as new now: the window starts with them.
    fn prepare(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let now = Instant::now();
            let kids = self.kids().await.map_err(|e| format!("reading the issuer's keys before the fault: {e}"))?;
            *self.seen.lock().await = (kids.into_iter().map(|k| (k, now)).collect(), Some(now));
            Ok(())
        })
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let result = self.kids().await;
            let now = Instant::now();
            let mut seen = self.seen.lock().await;
            if let Ok(kids) = &result {
                for k in kids {
                    if !seen.0.contains_key(k) {
                        seen.0.insert(k.clone(), now);
                        seen.1 = Some(now);
                    }
                }
            }
            let newest = seen.1.map(|t| now.duration_since(t));
            match (result, newest) {
                (Err(e), _) => fail(e),
                (Ok(_), Some(age)) if age <= self.window => ok(),
                (Ok(_), age) => fail(format!("no new signing key in the last {:?} (newest seen {:.0?} ago)", self.window, age.unwrap_or_default())),
            }
        })
    }
}

/// Discovery document and /keys through the load balancer.
pub struct IssuerEndpoints {
    pub http: reqwest::Client,
    pub issuer: String,
}

impl Probe for IssuerEndpoints {
    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let get = |path: &'static str| {
                let url = format!("{}{path}", self.issuer);
                let http = self.http.clone();
                async move {
                    match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("GET {path}: HTTP {}", r.status().as_u16())),
                        Err(e) if e.is_timeout() => Err(format!("GET {path}: timed out")),
                        Err(_) => Err(format!("GET {path}: connection failed")),
                    }
                }
            };
            let (d, k) = tokio::join!(get("/.well-known/openid-configuration"), get("/keys"));
            match (d, k) {
                (Ok(()), Ok(())) => ok(),
                (Err(e), Ok(())) | (Ok(()), Err(e)) => partial(e),
                (Err(a), Err(b)) => fail(format!("{a}; {b}")),
            }
        })
    }
}

/// The client-certificate admin kubeconfig reads the API.
pub struct BreakGlass {
    pub client: kube::Client,
}

impl Probe for BreakGlass {
    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(self.client.clone());
            match tokio::time::timeout(Duration::from_secs(3), api.list(&kube::api::ListParams::default().limit(1))).await {
                Ok(Ok(_)) => ok(),
                Ok(Err(kube::Error::Api(s))) => fail(format!("listing namespaces: HTTP {}", s.code)),
                Ok(Err(_)) => fail("listing namespaces: request failed"),
                Err(_) => fail("listing namespaces: timed out"),
            }
        })
    }
}

pub fn issuer_http(client: &OidcClient) -> Result<reqwest::Client, String> {
    let ca = reqwest::Certificate::from_pem(client.identity.ca_pem.as_bytes()).map_err(|e| format!("issuer CA: {e}"))?;
    reqwest::Client::builder().add_root_certificate(ca).timeout(Duration::from_secs(3)).build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_grant_that_may_have_reached_dex_can_have_rotated_the_token() {
        assert!(super::may_have_reached("refresh: request failed"));
        assert!(super::may_have_reached("refresh: timed out"));
        assert!(!super::may_have_reached("refresh: connection failed"));
        assert!(!super::may_have_reached("refresh: HTTP 503"));
        assert!(!super::may_have_reached("refresh: HTTP 400 invalid_request Refresh token is invalid or has already been claimed by another client."));
    }
}
