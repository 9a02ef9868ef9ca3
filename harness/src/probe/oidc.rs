//! The OIDC flows a user really goes through with dex: the browser login (authorization
//! request, connector login form, credentials posted, redirects followed to the client
//! callback, code exchanged) and the refresh-token grant.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::deploy::identity::{Identity, User};

/// Tokens from dex's token endpoint. Never logged.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    pub id_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<redacted>)")
    }
}

pub struct OidcClient {
    pub identity: Identity,
    http: reqwest::Client,
}

impl OidcClient {
    pub fn new(identity: &Identity) -> Result<OidcClient, String> {
        let ca = reqwest::Certificate::from_pem(identity.ca_pem.as_bytes()).map_err(|e| format!("issuer CA: {e}"))?;
        // Connections are kept between flows (HTTP/2 where the issuer offers it). Known
        // effect, measured by `make bench` (mttr): after a blackhole in front of the load
        // balancer the kept connection sits in TCP retransmission back-off, and refresh
        // recovered 0.7–0.8 s after the fault ended; with a new connection per flow, flows
        // instead wait for the load balancer to re-admit its backends. Which of the two a
        // row should show is open (see the speed issue's note).
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(OidcClient { identity: identity.clone(), http })
    }

    pub fn user(&self, name: &str) -> Result<&User, String> {
        self.identity.users.get(name).ok_or_else(|| format!("the identity component has no user `{name}`"))
    }

    /// The browser login, step by step. The error names the step that failed. Only with
    /// `offline` is a refresh token asked for: dex keeps one per user and client, so every
    /// such login revokes the previous one.
    pub async fn login(&self, user: &User, offline: bool) -> Result<Tokens, String> {
        let id = &self.identity;
        let mut url = Url::parse(&format!("{}/auth", id.issuer)).map_err(|e| e.to_string())?;
        url.query_pairs_mut()
            .append_pair("client_id", &id.client_id)
            .append_pair("redirect_uri", &id.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", if offline { "openid email groups profile offline_access" } else { "openid email groups profile" })
            .append_pair("state", &crate::deploy::random_hex(8))
            .append_pair("connector_id", &user.connector);
        let mut resp = self.http.get(url.clone()).send().await.map_err(|e| step("authorization request", &e))?;
        let mut posted = false;
        for _ in 0..12 {
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp.headers().get("location").and_then(|l| l.to_str().ok()).ok_or("redirect without a Location")?.to_string();
                let next = url.join(&loc).map_err(|e| format!("bad redirect {loc}: {e}"))?;
                if next.as_str().starts_with(&id.redirect_uri) {
                    let code = next.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned());
                    let code = code.ok_or_else(|| {
                        let err = next.query_pairs().find(|(k, _)| k == "error").map(|(_, v)| v.into_owned()).unwrap_or_default();
                        format!("callback without a code (error: {err})")
                    })?;
                    return self.exchange(&code).await;
                }
                url = next;
                resp = self.http.get(url.clone()).send().await.map_err(|e| step(url.path(), &e))?;
                continue;
            }
            if status != StatusCode::OK {
                let body = resp.text().await.unwrap_or_default();
                let why = error_page_message(&body).map(|m| format!(": {m}")).unwrap_or_default();
                return Err(format!("{} {}: HTTP {}{why}", if posted { "POST" } else { "GET" }, url.path(), status.as_u16()));
            }
            let body = resp.text().await.map_err(|e| step(url.path(), &e))?;
            let form = first_form(&body).ok_or_else(|| format!("{} answered 200 without a form", url.path()))?;
            let target = match &form.action {
                Some(a) if !a.is_empty() => url.join(a).map_err(|e| format!("bad form action {a}: {e}"))?,
                _ => url.clone(),
            };
            let fields: Vec<(String, String)> = if form.hidden.iter().any(|(k, _)| k == "approval") {
                // dex's approval screen: grant access, as the user's click does.
                form.hidden.clone()
            } else if form.inputs.iter().any(|n| n == "password") {
                if posted {
                    return Err("credentials rejected: the login form came back".into());
                }
                posted = true;
                let mut f = form.hidden.clone();
                f.push(("login".into(), user.login.clone()));
                f.push(("password".into(), user.password.clone()));
                f
            } else {
                return Err(format!("{} answered with an unexpected form", url.path()));
            };
            url = target.clone();
            resp = self.http.post(target).form(&fields).send().await.map_err(|e| step(url.path(), &e))?;
        }
        Err("too many redirects in the login flow".into())
    }

    async fn exchange(&self, code: &str) -> Result<Tokens, String> {
        let id = &self.identity;
        let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", id.redirect_uri.as_str())];
        self.token(&form, "code exchange").await
    }

    /// The refresh-token grant. Returns the new tokens (dex rotates refresh tokens).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, String> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        self.token(&form, "refresh").await
    }

    async fn token(&self, form: &[(&str, &str)], what: &str) -> Result<Tokens, String> {
        let id = &self.identity;
        let resp = self
            .http
            .post(format!("{}/token", id.issuer))
            .basic_auth(&id.client_id, Some(&id.client_secret))
            .form(form)
            .send()
            .await
            .map_err(|e| step(what, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let v = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default();
            let field = |k: &str| v.get(k).and_then(|e| e.as_str()).unwrap_or_default().to_string();
            return Err(format!("{what}: HTTP {} {} {}", status.as_u16(), field("error"), field("error_description")).trim_end().to_string());
        }
        resp.json::<Tokens>().await.map_err(|e| format!("{what}: unreadable token response: {e}"))
    }
}

fn step(what: &str, e: &reqwest::Error) -> String {
    format!("{what}: {}", super::http_error(e))
}

/// The message of dex's error page (`<p>` of its theme panel), shortened: what dex says
/// went wrong ("Login error: ...", "Database error."), without the page around it.
fn error_page_message(body: &str) -> Option<String> {
    let panel = &body[body.find("theme-panel")?..];
    let start = panel.find("<p>")? + 3;
    let end = panel[start..].find("</p>")? + start;
    let text: String = panel[start..end].split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.replace("&#34;", "\"").replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    (!text.is_empty()).then(|| text.chars().take(160).collect())
}

/// The first form of a page: its action, hidden fields, and the names of its other inputs.
#[derive(Debug, PartialEq)]
struct Form {
    action: Option<String>,
    hidden: Vec<(String, String)>,
    inputs: Vec<String>,
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&#43;", "+").replace("&#x2F;", "/").replace("&#47;", "/").replace("&#34;", "\"").replace("&quot;", "\"")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let value = &tag[start..];
    Some(unescape(&value[..value.find('"')?]))
}

fn first_form(html: &str) -> Option<Form> {
    let start = html.find("<form")?;
    let rest = &html[start..];
    let end = rest.find("</form>").unwrap_or(rest.len());
    let body = &rest[..end];
    let open = &body[..body.find('>')?];
    let mut form = Form { action: attr(open, "action"), hidden: vec![], inputs: vec![] };
    for piece in body.split("<input").skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        let Some(name) = attr(tag, "name") else { continue };
        if attr(tag, "type").as_deref() == Some("hidden") {
            form.hidden.push((name, attr(tag, "value").unwrap_or_default()));
        } else {
            form.inputs.push(name);
        }
    }
    Some(form)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dex_error_pages_give_their_message() {
        let page = "<html><div class=\"theme-panel\">\n  <h2 class=\"theme-heading\">Internal Server Error</h2>\n  <p>Login error: ldap: failed to connect: dial tcp 198.18.1.3:389: connect: connection refused</p>\n</div></html>";
        assert_eq!(
            super::error_page_message(page).as_deref(),
            Some("Login error: ldap: failed to connect: dial tcp 198.18.1.3:389: connect: connection refused")
        );
        assert_eq!(super::error_page_message("<html>no panel</html>"), None);
    }

    use super::*;

    #[test]
    fn reads_login_and_approval_forms() {
        let login = r#"<div><form method="post" action="/dex/auth/local/login?back=&amp;state=abc"><input type="text" name="login"><input type="password" name="password"></form></div>"#;
        assert_eq!(
            first_form(login),
            Some(Form { action: Some("/dex/auth/local/login?back=&state=abc".into()), hidden: vec![], inputs: vec!["login".into(), "password".into()] })
        );
        let approval = r#"<form method="post"><input type="hidden" name="req" value="r1"/><input type="hidden" name="approval" value="approve"><button>Grant</button></form><form method="post"><input type="hidden" name="approval" value="rejected"></form>"#;
        let f = first_form(approval).unwrap();
        assert_eq!(f.action, None);
        assert_eq!(f.hidden, vec![("req".to_string(), "r1".to_string()), ("approval".to_string(), "approve".to_string())]);
        assert_eq!(first_form("<p>no form</p>"), None);
    }

    #[test]
    fn tokens_do_not_print() {
        let t = Tokens { id_token: "secret".into(), refresh_token: Some("secret2".into()) };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
