//! Probes of the identity document's operations: logins, token refresh, the API server's
//! cached-key authentication, starting an API server that needs the issuer, signing-key
//! rotation, the issuer's endpoints, and the break-glass path.

use std::sync::Arc;
use std::time::Duration;

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

/// Whether a failed grant may have rotated the token: its request may have reached dex
/// and its answer was lost (anything but a connection that never opened), or dex answered
/// 500: a grant writes the rotated token and then the user's offline session, so it can
/// fail after rotating (its storage refusing the second write, as while its permissions
/// are being restored one binding at a time) and leave the old token claimed.
fn may_have_reached(error: &str) -> bool {
    error.ends_with(": request failed")
        || error.ends_with(": timed out")
        || error.ends_with(": connection reset")
        || error.ends_with(": connection closed")
        || error.contains(": HTTP 500")
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
                            fail(format!("{e}: the token was rotated by a grant that failed after reaching dex; logged in again"))
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
        .map_err(|e| format!("SelfSubjectReview: {}", super::http_error(&e)))?;
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
/// `timeout` of being ready: it has no cached keys and must reach the issuer.
///
/// The server belongs to the attempt: it is started on a port nothing else holds, and a
/// guard kills it on every way out — success, failure, the attempt's deadline, or the
/// sampler dropping the attempt when sampling stops. No attempt can ever be answered by a
/// server an earlier attempt started (and that may hold the keys already).
pub struct ColdStart {
    pub env: Arc<Env>,
    pub cached: CachedKeys,
    pub cluster: String,
    pub timeout: Duration,
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
            let server = match self.env.start_extra_apiserver(&self.cluster).await {
                Ok(s) => s,
                Err(e) => return fail(format!("starting kube-apiserver: {e}")),
            };
            // The server itself must come up (slow on a loaded machine: not the issuer's
            // doing); then it has `timeout` to authenticate the token.
            let ready = Deadline::after(READY_WAIT);
            let mut up = false;
            while !ready.passed() {
                if let Ok(r) = self.cached.http.get(format!("{}/readyz", server.url)).send().await
                    && r.status().is_success()
                {
                    up = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let expect = format!("oidc:{login}");
            let deadline = Deadline::after(self.timeout);
            let mut result = Err(format!("kube-apiserver not ready after {READY_WAIT:?}"));
            while up && !deadline.passed() {
                result = self_subject_review(&self.cached.http, &server.url, &token, &expect).await;
                if result.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let why = if result.is_err() { server.auth_error() } else { None };
            if let Err(e) = server.stop().await {
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

/// Signing-key rotation, observed where it happens: dex's signing-key object in its
/// storage (`signingkeies.dex.coreos.com/openid-connect-keys`), read with the cluster's
/// admin credentials. Every dex instance checks every 30 s whether the key is due
/// (`nextRotation`) and rotates it then; rotation is working while the key is never
/// overdue by more than one such check and an allowance. The issuer's `/keys` endpoint is
/// not involved: its reachability is a row of its own.
pub struct KeyRotation {
    pub client: kube::Client,
    pub namespace: String,
    /// How overdue the key may be before rotation counts as stopped.
    pub allowed_overdue: Duration,
    /// Key ids seen, for the failure message.
    pub seen: Mutex<Vec<String>>,
}

/// dex's signing keys as its Kubernetes storage keeps them.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigningKeys {
    next_rotation: String,
    #[serde(default)]
    signing_key_pub: Option<serde_json::Value>,
}

impl KeyRotation {
    async fn read(&self) -> Result<SigningKeys, String> {
        let ar = kube::api::ApiResource {
            group: "dex.coreos.com".into(),
            version: "v1".into(),
            api_version: "dex.coreos.com/v1".into(),
            kind: "SigningKey".into(),
            plural: "signingkeies".into(),
        };
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(self.client.clone(), &self.namespace, &ar);
        let obj = tokio::time::timeout(Duration::from_secs(3), api.get("openid-connect-keys"))
            .await
            .map_err(|_| "reading dex's signing keys: timed out".to_string())?
            .map_err(|e| format!("reading dex's signing keys: {}", crate::error::kube_message(&e)))?;
        serde_json::from_value(obj.data).map_err(|e| format!("dex's signing keys: {e}"))
    }
}

impl Probe for KeyRotation {
    /// A rotation that stopped now shows once the key is overdue by `allowed_overdue`: the
    /// key's `nextRotation` says when that is, and 2 s more keep the attempts that were
    /// just short of it out of the window. (The suite's `settle` assumes the worst: a key
    /// just rotated, due one rotation period later.)
    fn settle(&self) -> BoxFuture<'_, Option<Duration>> {
        Box::pin(async move {
            let keys = self.read().await.ok()?;
            let due: jiff::Timestamp = keys.next_rotation.parse().ok()?;
            let spare = self.allowed_overdue + Duration::from_secs(2);
            let shows = due.checked_add(jiff::SignedDuration::try_from(spare).ok()?).ok()?;
            let from_now = shows.duration_since(jiff::Timestamp::now());
            Some(if from_now.is_negative() { Duration::ZERO } else { from_now.unsigned_abs() })
        })
    }

    fn attempt(&self) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let keys = match self.read().await {
                Ok(k) => k,
                Err(e) => return fail(e),
            };
            let due: jiff::Timestamp = match keys.next_rotation.parse() {
                Ok(t) => t,
                Err(e) => return fail(format!("dex's nextRotation `{}`: {e}", keys.next_rotation)),
            };
            if let Some(kid) = keys.signing_key_pub.as_ref().and_then(|k| k.get("kid")).and_then(|k| k.as_str()) {
                let mut seen = self.seen.lock().await;
                if seen.last().map(String::as_str) != Some(kid) {
                    seen.push(kid.to_string());
                }
            }
            let overdue = jiff::Timestamp::now().duration_since(due);
            if overdue.is_positive() && overdue.unsigned_abs() > self.allowed_overdue {
                fail(format!("rotation overdue: the signing key was due {:.0} s ago (dex checks every 30 s)", overdue.as_secs_f64()))
            } else {
                ok()
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
                        Err(e) => Err(format!("GET {path}: {}", super::http_error(&e))),
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
        assert!(super::may_have_reached("refresh: connection reset"));
        assert!(!super::may_have_reached("refresh: connection failed"));
        assert!(!super::may_have_reached("refresh: connection refused"));
        assert!(super::may_have_reached("refresh: HTTP 500 invalid_request"));
        assert!(!super::may_have_reached("refresh: HTTP 503"));
        assert!(!super::may_have_reached("refresh: HTTP 400 invalid_request Refresh token is invalid or has already been claimed by another client."));
    }
}
