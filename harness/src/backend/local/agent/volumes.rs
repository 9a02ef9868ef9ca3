//! Pod volumes, materialised as directories under the pod's directory: configMap,
//! secret, emptyDir, downwardAPI and projected (service-account token, configMap,
//! secret, downwardAPI). The shim bind-mounts them at each container's mount paths.
//!
//! Every read goes through the node's own credentials, so the real Node authorizer
//! decides what this node may read, as it does for a kubelet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, ObjectFieldSelector, Pod, Secret, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use super::super::shim::Mount;

/// A service-account token file and when it must be renewed.
#[derive(Clone, Debug)]
pub struct TokenFile {
    pub path: PathBuf,
    pub audience: Option<String>,
    pub expiration_seconds: i64,
    pub renew_at: Instant,
}

#[derive(Debug, Default)]
pub struct Volumes {
    pub dirs: BTreeMap<String, PathBuf>,
    pub tokens: Vec<TokenFile>,
}

/// Write every volume of `pod` under `dir/volumes/`. An error names the volume and why.
pub async fn materialize(client: &kube::Client, pod: &Pod, dir: &Path) -> Result<Volumes, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
    let mut out = Volumes::default();
    for v in spec.volumes.iter().flatten() {
        let vdir = dir.join("volumes").join(&v.name);
        std::fs::create_dir_all(&vdir).map_err(|e| format!("volume {}: {e}", v.name))?;
        let fail = |e: String| format!("volume {}: {e}", v.name);
        if let Some(cm) = &v.config_map {
            let data = config_map(client, &ns, &cm.name, cm.optional.unwrap_or(false)).await.map_err(fail)?;
            write_items(&vdir, &data, cm.items.as_deref(), cm.default_mode.unwrap_or(0o644)).map_err(fail)?;
        } else if let Some(sec) = &v.secret {
            let name = sec.secret_name.clone().unwrap_or_default();
            let data = secret(client, &ns, &name, sec.optional.unwrap_or(false)).await.map_err(fail)?;
            write_items(&vdir, &data, sec.items.as_deref(), sec.default_mode.unwrap_or(0o644)).map_err(fail)?;
        } else if v.empty_dir.is_some() {
            // Nothing to write: an empty directory that lives as long as the pod.
        } else if let Some(d) = &v.downward_api {
            for item in d.items.iter().flatten() {
                let value = match &item.field_ref {
                    Some(f) => field(pod, f).map_err(fail)?,
                    None => return Err(fail("only fieldRef items are supported in downwardAPI volumes".into())),
                };
                write_file(&vdir.join(&item.path), value.as_bytes(), item.mode.or(d.default_mode).unwrap_or(0o644)).map_err(fail)?;
            }
        } else if let Some(p) = &v.projected {
            let mode = p.default_mode.unwrap_or(0o644);
            for src in p.sources.iter().flatten() {
                if let Some(t) = &src.service_account_token {
                    let expiration = t.expiration_seconds.unwrap_or(3600);
                    let path = vdir.join(&t.path);
                    let token = TokenFile { path, audience: t.audience.clone(), expiration_seconds: expiration, renew_at: Instant::now() };
                    let token = write_token(client, pod, token).await.map_err(fail)?;
                    out.tokens.push(token);
                } else if let Some(cm) = &src.config_map {
                    let data = config_map(client, &ns, &cm.name, cm.optional.unwrap_or(false)).await.map_err(fail)?;
                    write_items(&vdir, &data, cm.items.as_deref(), mode).map_err(fail)?;
                } else if let Some(sec) = &src.secret {
                    let data = secret(client, &ns, &sec.name, sec.optional.unwrap_or(false)).await.map_err(fail)?;
                    write_items(&vdir, &data, sec.items.as_deref(), mode).map_err(fail)?;
                } else if let Some(d) = &src.downward_api {
                    for item in d.items.iter().flatten() {
                        let value = match &item.field_ref {
                            Some(f) => field(pod, f).map_err(fail)?,
                            None => return Err(fail("only fieldRef items are supported".into())),
                        };
                        write_file(&vdir.join(&item.path), value.as_bytes(), item.mode.unwrap_or(mode)).map_err(fail)?;
                    }
                } else {
                    return Err(fail(
                        "projected source not supported by the local backend (supported: serviceAccountToken, configMap, secret, downwardAPI)".into(),
                    ));
                }
            }
        } else {
            return Err(fail("volume type not supported by the local backend (supported: configMap, secret, emptyDir, downwardAPI, projected)".into()));
        }
        out.dirs.insert(v.name.clone(), vdir);
    }
    Ok(out)
}

/// Request a token bound to the pod (the kubelet's TokenRequest) and write it. Returns the
/// file with its renewal time: 80% of the token's lifetime, as the kubelet does.
pub async fn write_token(client: &kube::Client, pod: &Pod, mut t: TokenFile) -> Result<TokenFile, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: t.audience.clone().map(|a| vec![a]),
            expiration_seconds: Some(t.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        }),
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let resp: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &req)
        .await
        .map_err(|e| format!("requesting a token for service account {ns}/{sa}: {e}"))?;
    let token = resp.status.and_then(|s| s.token).ok_or("token request returned no token")?;
    write_file(&t.path, token.as_bytes(), 0o600)?;
    t.renew_at = Instant::now() + Duration::from_secs((t.expiration_seconds.max(60) as u64) * 8 / 10);
    Ok(t)
}

async fn config_map(client: &kube::Client, ns: &str, name: &str, optional: bool) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await.map_err(|e| format!("reading configMap {ns}/{name}: {e}"))? {
        Some(cm) => {
            let mut out: BTreeMap<String, Vec<u8>> = cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
            out.extend(cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
            Ok(out)
        }
        None if optional => Ok(BTreeMap::new()),
        None => Err(format!("configMap {ns}/{name} not found")),
    }
}

async fn secret(client: &kube::Client, ns: &str, name: &str, optional: bool) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await.map_err(|e| format!("reading secret {ns}/{name}: {e}"))? {
        Some(s) => Ok(s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()),
        None if optional => Ok(BTreeMap::new()),
        None => Err(format!("secret {ns}/{name} not found")),
    }
}

fn write_items(dir: &Path, data: &BTreeMap<String, Vec<u8>>, items: Option<&[KeyToPath]>, mode: i32) -> Result<(), String> {
    match items {
        None => {
            for (k, v) in data {
                write_file(&dir.join(k), v, mode)?;
            }
        }
        Some(items) => {
            for it in items {
                let v = data.get(&it.key).ok_or_else(|| format!("key {} not found", it.key))?;
                write_file(&dir.join(&it.path), v, it.mode.unwrap_or(mode))?;
            }
        }
    }
    Ok(())
}

/// Write through a temporary file and rename, so a reader never sees half a file.
fn write_file(path: &Path, data: &[u8], mode: i32) -> Result<(), String> {
    if path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(format!("path {} leaves the volume", path.display()));
    }
    crate::files::write_atomic(path, data, mode as u32 & 0o777).map_err(|e| format!("{}: {e}", path.display()))
}

/// The value of a downward-API field of the pod (the fields the kubelet supports in
/// volumes and environment variables).
pub fn field(pod: &Pod, f: &ObjectFieldSelector) -> Result<String, String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let path = f.field_path.as_str();
    let value = match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        "metadata.labels" => Some(m.labels.iter().flatten().map(|(k, v)| format!("{k}=\"{v}\"\n")).collect()),
        "metadata.annotations" => Some(m.annotations.iter().flatten().map(|(k, v)| format!("{k}=\"{v}\"\n")).collect()),
        p if p.starts_with("metadata.labels['") => {
            let key = p.trim_start_matches("metadata.labels['").trim_end_matches("']");
            m.labels.as_ref().and_then(|l| l.get(key).cloned())
        }
        p if p.starts_with("metadata.annotations['") => {
            let key = p.trim_start_matches("metadata.annotations['").trim_end_matches("']");
            m.annotations.as_ref().and_then(|l| l.get(key).cloned())
        }
        other => return Err(format!("fieldRef {other} is not supported by the local backend")),
    };
    Ok(value.unwrap_or_default())
}

/// The mounts of one container: each volumeMount's directory (or subPath inside it).
pub fn mounts(vols: &Volumes, container: &k8s_openapi::api::core::v1::Container) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let dir = vols.dirs.get(&vm.name).ok_or_else(|| format!("volumeMount {} names no volume of the pod", vm.name))?;
        let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|c| c == "..") => return Err(format!("subPath {sub} leaves the volume")),
            Some(sub) => dir.join(sub),
            None => dir.clone(),
        };
        out.push(Mount { source, target: PathBuf::from(&vm.mount_path), read_only: vm.read_only.unwrap_or(false) });
    }
    Ok(out)
}
