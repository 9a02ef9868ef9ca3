//! A container's environment as the kubelet builds it: `envFrom`, then `env` (values,
//! downward-API fields, configMap and secret keys), `$(VAR)` references expanded, plus
//! the in-cluster variables pointing at the cluster's API server.
//!
//! Service link variables (`<SVC>_SERVICE_HOST`) are not set: they would name cluster IPs
//! that nothing routes on the local backend.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use super::volumes::field;

/// Resolve the environment of `container`. `apiserver` is `(host, port)` for
/// `KUBERNETES_SERVICE_HOST`/`_PORT`.
pub async fn build(client: &kube::Client, pod: &Pod, container: &Container, apiserver: (&str, u16)) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let (host, port) = apiserver;
    let mut vars: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("HOSTNAME".into(), pod.metadata.name.clone().unwrap_or_default()),
        ("KUBERNETES_SERVICE_HOST".into(), host.to_string()),
        ("KUBERNETES_SERVICE_PORT".into(), port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.to_string()),
        ("KUBERNETES_PORT".into(), format!("tcp://{host}:{port}")),
        ("KUBERNETES_PORT_443_TCP".into(), format!("tcp://{host}:{port}")),
        ("KUBERNETES_PORT_443_TCP_PROTO".into(), "tcp".into()),
        ("KUBERNETES_PORT_443_TCP_PORT".into(), port.to_string()),
        ("KUBERNETES_PORT_443_TCP_ADDR".into(), host.to_string()),
    ];
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(name, _)| name != &k);
        vars.push((k, v));
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match cms.get_opt(&r.name).await.map_err(|e| format!("envFrom configMap {}: {e}", r.name))? {
                Some(cm) => {
                    for (k, v) in cm.data.unwrap_or_default() {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(format!("envFrom: configMap {ns}/{} not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match secrets.get_opt(&r.name).await.map_err(|e| format!("envFrom secret {}: {e}", r.name))? {
                Some(s) => {
                    for (k, v) in s.data.unwrap_or_default() {
                        set(&mut vars, format!("{prefix}{k}"), String::from_utf8_lossy(&v.0).into_owned());
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(format!("envFrom: secret {ns}/{} not found", r.name)),
            }
        }
    }

    for e in container.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field(pod, f).map_err(|m| format!("env {}: {m}", e.name))?
            } else if let Some(r) = &from.config_map_key_ref {
                let cm = cms.get_opt(&r.name).await.map_err(|err| format!("env {}: {err}", e.name))?;
                match cm.and_then(|c| c.data).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => v,
                    None if r.optional.unwrap_or(false) => continue,
                    None => return Err(format!("env {}: key {} of configMap {ns}/{} not found", e.name, r.key, r.name)),
                }
            } else if let Some(r) = &from.secret_key_ref {
                let s = secrets.get_opt(&r.name).await.map_err(|err| format!("env {}: {err}", e.name))?;
                match s.and_then(|s| s.data).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                    None if r.optional.unwrap_or(false) => continue,
                    None => return Err(format!("env {}: key {} of secret {ns}/{} not found", e.name, r.key, r.name)),
                }
            } else {
                return Err(format!("env {}: only fieldRef, configMapKeyRef and secretKeyRef are supported by the local backend", e.name));
            }
        } else {
            let known: BTreeMap<String, String> = vars.iter().cloned().collect();
            expand(e.value.as_deref().unwrap_or(""), &known)
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(vars)
}

/// Expand `$(NAME)` references to variables defined so far; `$$(NAME)` escapes; unknown
/// references stay as written (the kubelet's rule).
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("$(") {
            out.push_str("$(");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(')
            && let Some(end) = tail.find(')')
        {
            let name = &tail[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_the_kubelet() {
        let vars: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(expand("x$(A)y", &vars), "x1y");
        assert_eq!(expand("$(B)", &vars), "$(B)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("cost $5", &vars), "cost $5");
        assert_eq!(expand("$(A", &vars), "$(A");
    }
}
