//! The existing backend: clusters the user already has, named by kubeconfig context
//! (`--context ROLE=CONTEXT` for every cluster of the suite's topology). It never creates
//! or deletes a cluster, and it faults only through the Kubernetes API ([`CAPABILITIES`]):
//! scaling, RBAC revocation, pod deletion, and partitions made of NetworkPolicies, which are
//! proven by a canary pod on each side (`fault/netpol.rs`).
//!
//! A context whose cluster firedrill did not create (its CA is not that of a local or kind
//! run on this machine) is refused unless it is named in `--allow-context`; the refusal
//! names the context, its server and the faults the suite would put there.
//!
//! Each run gets a directory (`existing-runs/<id>`) with its plan (`existing-run.json`),
//! one kubeconfig per cluster, the fault journal, and a ledger of every object the
//! components' deployment created (`created.jsonl`, written before the object is made).
//! `down` deletes exactly those objects, newest first, and nothing else.

use std::path::{Path, PathBuf};

use base64::Engine;
use kube::config::{Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
use serde::{Deserialize, Serialize};

use super::{BackendError, Capabilities};
use crate::apply::Created;
use crate::topology::Topology;

/// API-level faults only; partitions are NetworkPolicies, in effect only where the CNI
/// enforces them (the canary proof says which).
pub const CAPABILITIES: Capabilities = Capabilities {
    api_faults: true,
    stop_host: false,
    partition: true,
    stop_storage: false,
    lose_node: false,
    stop_cluster: false,
    control_plane_processes: false,
    extra_apiserver: false,
};

/// The prefix the components' manifests name their images with.
pub const LOCAL_REGISTRY: &str = "firedrill.local/";

/// `firedrill.local/NAME:TAG` as pulled from `registry`; other images as they are.
pub fn rename_image(image: &str, registry: &str) -> String {
    match image.strip_prefix(LOCAL_REGISTRY) {
        Some(rest) => format!("{}/{rest}", registry.trim_end_matches('/')),
        None => image.to_string(),
    }
}

/// Manifests with every `image:` field renamed by [`rename_image`].
pub fn rename_images(yaml: &str, registry: &str) -> String {
    yaml.lines()
        .map(|l| {
            let body = l.trim_start();
            let item = if body.starts_with("- ") { "- " } else { "" };
            match body[item.len()..].strip_prefix("image: ") {
                Some(image) => format!("{}{item}image: {}", &l[..l.len() - body.len()], rename_image(image.trim(), registry)),
                None => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the user asked for on the command line.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// `--kubeconfig`; else the first file of `$KUBECONFIG`; else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context ROLE=CONTEXT`, as given.
    pub contexts: Vec<String>,
    /// `--allow-context`: contexts firedrill did not create that it may fault.
    pub allowed: Vec<String>,
    /// `--registry`: where `firedrill.local/NAME:TAG` images are pulled from instead.
    pub registry: Option<String>,
}

/// A planned existing run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExistingRunInfo {
    pub id: String,
    pub dir: PathBuf,
    pub topology: String,
    /// The kubeconfig the contexts were read from.
    pub kubeconfig: PathBuf,
    #[serde(default)]
    pub registry: Option<String>,
    pub clusters: Vec<ExistingCluster>,
}

/// A topology cluster and the context that stands for it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExistingCluster {
    /// The topology's name for it (the role).
    pub name: String,
    pub context: String,
    pub server: String,
    /// The context alone, credentials inlined (0600, in the run's directory).
    pub kubeconfig: PathBuf,
    /// The firedrill run that created the cluster, if one did.
    #[serde(default)]
    pub created_by: Option<PathBuf>,
}

/// A context resolved against the kubeconfig, before anything is written.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub role: String,
    pub context: String,
    pub server: String,
    pub ca_pem: Option<String>,
    pub created_by: Option<PathBuf>,
    /// The context alone, as a kubeconfig.
    config: Kubeconfig,
}

/// Where existing runs keep their plans, kubeconfigs and journals.
pub fn runs_dir() -> PathBuf {
    super::state_root().join("existing-runs")
}

/// Every existing run directory on this machine, oldest first.
pub fn all_runs() -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(runs_dir()).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_run(p)).collect();
    runs.sort();
    runs
}

/// Whether `dir` holds an existing run.
pub fn is_run(dir: &Path) -> bool {
    dir.join("existing-run.json").is_file()
}

fn default_kubeconfig() -> PathBuf {
    if let Some(first) = std::env::var("KUBECONFIG").ok().and_then(|v| v.split(':').find(|s| !s.is_empty()).map(PathBuf::from)) {
        return first;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".kube/config")
}

/// `ROLE=CONTEXT` pairs, checked against the topology: every cluster has exactly one.
pub fn roles(spec: &Spec, topology: &Topology) -> Result<Vec<(String, String)>, BackendError> {
    let names = topology.cluster_names();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for given in &spec.contexts {
        let (role, context) = given.split_once('=').filter(|(r, c)| !r.is_empty() && !c.is_empty()).ok_or_else(|| {
            BackendError::Setup(format!(
                "--context {given}: expected ROLE=CONTEXT, where ROLE is a cluster of topology {} ({})",
                topology.topology,
                names.join(", ")
            ))
        })?;
        if !names.contains(&role) {
            return Err(BackendError::Setup(format!(
                "--context {given}: topology {} has no cluster `{role}` (it has {})",
                topology.topology,
                names.join(", ")
            )));
        }
        if pairs.iter().any(|(r, _)| r == role) {
            return Err(BackendError::Setup(format!("--context {given}: cluster `{role}` is named twice")));
        }
        // One cluster in two roles: a partition between them would fence it off from
        // itself, its own control plane included.
        if let Some((other, _)) = pairs.iter().find(|(_, c)| c == context) {
            return Err(BackendError::Setup(format!(
                "--context {given}: context `{context}` is already cluster `{other}`; each cluster of topology {} needs a cluster of its own",
                topology.topology
            )));
        }
        pairs.push((role.to_string(), context.to_string()));
    }
    let missing: Vec<&str> = names.iter().filter(|n| !pairs.iter().any(|(r, _)| r == *n)).copied().collect();
    if !missing.is_empty() {
        return Err(BackendError::Setup(format!(
            "the existing backend needs a context for every cluster of topology {}: missing {} (give --context {}=CONTEXT)",
            topology.topology,
            missing.join(", "),
            missing[0]
        )));
    }
    Ok(pairs)
}

/// Read `spec`'s kubeconfig and resolve every role's context; the contexts' clusters are
/// matched by CA and server against the local and kind runs of this state directory. A
/// context that skips TLS verification is refused (what it talks to cannot be known), and
/// so are two roles whose contexts reach one server.
pub fn resolve(spec: &Spec, topology: &Topology) -> Result<(PathBuf, Vec<Resolved>), BackendError> {
    let pairs = roles(spec, topology)?;
    let path = spec.kubeconfig.clone().unwrap_or_else(default_kubeconfig);
    let kc = Kubeconfig::read_from(&path).map_err(|e| BackendError::Setup(format!("reading kubeconfig {}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let known = firedrill_clusters();
    let mut out = Vec::new();
    for (role, context) in pairs {
        let named = kc.contexts.iter().find(|c| c.name == context).ok_or_else(|| {
            BackendError::Setup(format!(
                "--context {role}={context}: {} has no context `{context}` (it has {})",
                path.display(),
                kc.contexts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let ctx = named.context.clone().ok_or_else(|| BackendError::Setup(format!("{}: context `{context}` is empty", path.display())))?;
        let cluster = kc
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .cloned()
            .ok_or_else(|| BackendError::Setup(format!("{}: context `{context}` names cluster `{}`, which is not there", path.display(), ctx.cluster)))?;
        let user = match &ctx.user {
            Some(u) => vec![
                kc.auth_infos
                    .iter()
                    .find(|a| &a.name == u)
                    .cloned()
                    .ok_or_else(|| BackendError::Setup(format!("{}: context `{context}` names user `{u}`, which is not there", path.display())))?,
            ],
            None => vec![],
        };
        let (cluster, user) = inline_files(cluster, user, base)?;
        let c = cluster.cluster.as_ref().ok_or_else(|| BackendError::Setup(format!("{}: cluster `{}` is empty", path.display(), cluster.name)))?;
        let server = c.server.clone().ok_or_else(|| BackendError::Setup(format!("{}: cluster `{}` has no server", path.display(), cluster.name)))?;
        if c.insecure_skip_tls_verify == Some(true) {
            return Err(BackendError::Setup(format!(
                "--context {role}={context}: cluster `{}` of {} skips TLS verification (insecure-skip-tls-verify): which cluster it reaches cannot be known, so firedrill does not fault it; give the context its cluster's certificate-authority-data",
                cluster.name,
                path.display()
            )));
        }
        if let Some(other) = out.iter().find(|r: &&Resolved| same_server(&r.server, &server)) {
            return Err(BackendError::Setup(format!(
                "--context {role}={context}: server {server} is already cluster `{}` (context `{}`); each cluster of the topology needs a cluster of its own",
                other.role, other.context
            )));
        }
        let ca_pem = c.certificate_authority_data.as_deref().and_then(|d| super::ca_data_pem(d).ok());
        let created_by = ca_pem
            .as_deref()
            .and_then(|pem| known.iter().find(|(ca, known_server, _)| same_pem(ca, pem) && same_server(known_server, &server)).map(|(_, _, run)| run.clone()));
        let config = Kubeconfig {
            clusters: vec![cluster],
            auth_infos: user,
            contexts: vec![NamedContext { context: Some(ctx), ..named.clone() }],
            current_context: Some(context.clone()),
            ..Default::default()
        };
        out.push(Resolved { role, context, server, ca_pem, created_by, config });
    }
    Ok((path, out))
}

/// The run's own kubeconfigs carry everything in them: files the context names (relative
/// to the kubeconfig's directory) are read into the `-data` fields.
fn inline_files(mut cluster: NamedCluster, mut users: Vec<NamedAuthInfo>, base: &Path) -> Result<(NamedCluster, Vec<NamedAuthInfo>), BackendError> {
    let read = |p: &str| -> Result<String, BackendError> {
        let path = if Path::new(p).is_absolute() { PathBuf::from(p) } else { base.join(p) };
        let bytes = std::fs::read(&path).map_err(|e| BackendError::io(&path, e))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    if let Some(c) = cluster.cluster.as_mut()
        && c.certificate_authority_data.is_none()
        && let Some(p) = c.certificate_authority.take()
    {
        c.certificate_authority_data = Some(read(&p)?);
    }
    for u in &mut users {
        if let Some(a) = u.auth_info.as_mut() {
            if a.client_certificate_data.is_none()
                && let Some(p) = a.client_certificate.take()
            {
                a.client_certificate_data = Some(read(&p)?);
            }
            if a.client_key_data.is_none()
                && let Some(p) = a.client_key.take()
            {
                a.client_key_data = Some(read(&p)?.into());
            }
        }
    }
    Ok((cluster, users))
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn same_pem(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<String>();
    norm(a) == norm(b)
}

/// The CA and server of every cluster a local or kind run of this state directory
/// created, with the run.
fn firedrill_clusters() -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    for dir in super::local::state::all_runs() {
        if let Ok(run) = super::local::LocalRun::attach(&dir) {
            for c in &run.info.clusters {
                if let Ok(pem) = std::fs::read_to_string(&c.ca) {
                    out.push((pem, c.server.clone(), dir.clone()));
                }
            }
        }
    }
    for dir in super::kind::all_runs() {
        if let Ok(info) = super::kind::KindRunInfo::load(&dir) {
            for c in &info.clusters {
                let Some(pem) = super::kubeconfig_ca(&c.kubeconfig).ok().flatten() else { continue };
                // The port kind publishes on the host's loopback (its own kubeconfig), and
                // each control-plane node's address on the run's network (the harness's).
                let published = kube::config::Kubeconfig::read_from(&c.kubeconfig).ok().and_then(|kc| kc.clusters.into_iter().next()?.cluster?.server);
                let on_network = c
                    .nodes
                    .iter()
                    .filter(|n| n.role == crate::topology::NodeRole::ControlPlane)
                    .filter_map(|n| n.ip.as_ref())
                    .map(|ip| format!("https://{ip}:6443"));
                for server in published.into_iter().chain(on_network) {
                    out.push((pem.clone(), server, dir.clone()));
                }
            }
        }
    }
    out
}

/// Refuse contexts firedrill did not create that are not in `allowed`. `faults(role)` lists
/// what the suite would do to that cluster.
pub fn guard(resolved: &[Resolved], allowed: &[String], faults: impl Fn(&str) -> Vec<String>) -> Result<(), BackendError> {
    let refused: Vec<String> = resolved
        .iter()
        .filter(|r| r.created_by.is_none() && !allowed.contains(&r.context))
        .map(|r| {
            let f = faults(&r.role);
            format!(
                "context `{}` (cluster {}, server {}) was not created by firedrill; the suite would {}",
                r.context,
                r.role,
                r.server,
                if f.is_empty() { "deploy its components there and fault nothing".to_string() } else { format!("fault it: {}", f.join("; ")) }
            )
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = resolved.iter().filter(|r| r.created_by.is_none() && !allowed.contains(&r.context)).map(|r| r.context.as_str()).collect();
    Err(BackendError::Setup(format!(
        "refusing to touch clusters firedrill did not create:\n  {}\nname them with --allow-context {} to go on",
        refused.join("\n  "),
        names.join(",")
    )))
}

/// An existing run: the plan written, nothing changed in any cluster yet.
#[derive(Clone, Debug)]
pub struct ExistingRun {
    pub info: ExistingRunInfo,
}

impl ExistingRun {
    /// Write the run's directory: the plan and one kubeconfig per cluster.
    pub fn create(topology: &Topology, kubeconfig: PathBuf, resolved: Vec<Resolved>, registry: Option<String>) -> Result<ExistingRun, BackendError> {
        let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
        let id = format!("existing-{}-{stamp}-{}", topology.topology, &crate::deploy::random_hex(2));
        let dir = runs_dir().join(&id);
        std::fs::create_dir_all(&dir).map_err(|e| BackendError::io(&dir, e))?;
        let mut clusters = Vec::new();
        for r in resolved {
            let path = dir.join("clusters").join(&r.role).join("kubeconfig");
            let text =
                serde_json::to_string_pretty(&r.config).map_err(|e| BackendError::Setup(format!("writing the kubeconfig of context {}: {e}", r.context)))?;
            super::local::pki::write_private(&path, &text)?;
            clusters.push(ExistingCluster { name: r.role, context: r.context, server: r.server, kubeconfig: path, created_by: r.created_by });
        }
        let info = ExistingRunInfo { id, dir: dir.clone(), topology: topology.topology.clone(), kubeconfig, registry, clusters };
        let path = dir.join("existing-run.json");
        std::fs::write(&path, serde_json::to_string_pretty(&info).expect("an existing run serialises")).map_err(|e| BackendError::io(&path, e))?;
        Ok(ExistingRun { info })
    }

    pub fn attach(dir: &Path) -> Result<ExistingRun, BackendError> {
        let path = dir.join("existing-run.json");
        let text = std::fs::read_to_string(&path).map_err(|e| BackendError::io(&path, e))?;
        let info = serde_json::from_str(&text).map_err(|e| BackendError::Setup(format!("{}: {e}", path.display())))?;
        Ok(ExistingRun { info })
    }

    pub fn cluster(&self, name: &str) -> Result<&ExistingCluster, BackendError> {
        self.info.clusters.iter().find(|c| c.name == name).ok_or_else(|| BackendError::Setup(format!("run {} has no cluster `{name}`", self.info.id)))
    }

    fn ledger(&self) -> PathBuf {
        self.info.dir.join("created.jsonl")
    }

    /// Record that `obj` is about to be created in `cluster` (before it is).
    pub fn note_created(&self, cluster: &str, obj: &Created) -> Result<(), BackendError> {
        use std::io::Write;
        let path = self.ledger();
        let line = serde_json::to_string(&(cluster, obj)).expect("a ledger line serialises");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| BackendError::io(&path, e))?;
        writeln!(f, "{line}").and_then(|_| f.sync_data()).map_err(|e| BackendError::io(&path, e))
    }

    /// The objects the run created, oldest first.
    pub fn created(&self) -> Result<Vec<(String, Created)>, BackendError> {
        let path = self.ledger();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(BackendError::io(&path, e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| BackendError::Setup(format!("{}:{}: {e}", path.display(), i + 1))))
            .collect()
    }

    /// Delete every object the run created, newest first (those already gone are fine),
    /// then the run's directory. The clusters themselves are left as they are.
    pub async fn down(&self) -> Result<Vec<String>, BackendError> {
        let mut deleted = Vec::new();
        let mut clients = std::collections::BTreeMap::new();
        for (cluster, obj) in self.created()?.into_iter().rev() {
            let client = match clients.get(&cluster) {
                Some(c) => Clone::clone(c),
                None => {
                    let c = super::kube_client(&self.cluster(&cluster)?.kubeconfig).await?;
                    clients.insert(cluster.clone(), c.clone());
                    c
                }
            };
            if crate::apply::delete(&client, &obj).await.map_err(|e| BackendError::Setup(format!("cluster {cluster}: {e}")))? {
                deleted.push(format!("{cluster}: {}", obj.describe()));
            }
        }
        std::fs::remove_dir_all(&self.info.dir).map_err(|e| BackendError::io(&self.info.dir, e))?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi() -> Topology {
        Topology::load(&crate::fixtures::Paths::discover().fixtures, "multi").unwrap()
    }

    #[test]
    fn every_cluster_needs_exactly_one_context() {
        let spec = |c: &[&str]| Spec { contexts: c.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let t = multi();
        assert_eq!(roles(&spec(&["directory=a", "east=b", "west=c"]), &t).unwrap().len(), 3);
        let e = roles(&spec(&["directory=a", "east=b"]), &t).unwrap_err().to_string();
        assert!(e.contains("missing west") && e.contains("--context west=CONTEXT"), "{e}");
        let e = roles(&spec(&["directory=a", "east=b", "west=c", "east=d"]), &t).unwrap_err().to_string();
        assert!(e.contains("`east` is named twice"), "{e}");
        let e = roles(&spec(&["north=a"]), &t).unwrap_err().to_string();
        assert!(e.contains("no cluster `north`") && e.contains("directory, east, west"), "{e}");
        let e = roles(&spec(&["east"]), &t).unwrap_err().to_string();
        assert!(e.contains("expected ROLE=CONTEXT"), "{e}");
    }

    /// Before, one context could stand for two clusters: a partition between them would
    /// fence that cluster off from itself.
    #[test]
    fn one_context_for_two_clusters_is_refused() {
        let spec = |c: &[&str]| Spec { contexts: c.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let e = roles(&spec(&["directory=a", "east=b", "west=b"]), &multi()).unwrap_err().to_string();
        assert!(e.contains("context `b` is already cluster `east`"), "{e}");
    }

    fn kubeconfig(dir: &Path, clusters: &[(&str, &str, bool)]) -> PathBuf {
        let mut y = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for (name, server, insecure) in clusters {
            y.push_str(&format!("  - name: {name}\n    cluster:\n      server: {server}\n"));
            if *insecure {
                y.push_str("      insecure-skip-tls-verify: true\n");
            }
        }
        y.push_str("contexts:\n");
        for (name, _, _) in clusters {
            y.push_str(&format!("  - name: {name}\n    context:\n      cluster: {name}\n"));
        }
        let path = dir.join("kubeconfig");
        std::fs::write(&path, y).unwrap();
        path
    }

    /// Before, a context that skips TLS verification was taken as it came (its CA, absent,
    /// simply matched nothing), and two roles could reach one server.
    #[test]
    fn a_context_that_skips_tls_verification_or_shares_a_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = multi();
        let spec = |kc: PathBuf| Spec { kubeconfig: Some(kc), contexts: vec!["directory=d".into(), "east=e".into(), "west=w".into()], ..Default::default() };
        let kc =
            kubeconfig(dir.path(), &[("d", "https://198.18.9.1:6443", false), ("e", "https://198.18.9.2:6443", true), ("w", "https://198.18.9.3:6443", false)]);
        let e = resolve(&spec(kc), &t).unwrap_err().to_string();
        assert!(e.contains("--context east=e") && e.contains("insecure-skip-tls-verify"), "{e}");
        let kc = kubeconfig(
            dir.path(),
            &[("d", "https://198.18.9.1:6443", false), ("e", "https://198.18.9.2:6443", false), ("w", "https://198.18.9.2:6443/", false)],
        );
        let e = resolve(&spec(kc), &t).unwrap_err().to_string();
        assert!(e.contains("--context west=w") && e.contains("is already cluster `east`"), "{e}");
        let kc = kubeconfig(
            dir.path(),
            &[("d", "https://198.18.9.1:6443", false), ("e", "https://198.18.9.2:6443", false), ("w", "https://198.18.9.3:6443", false)],
        );
        assert_eq!(resolve(&spec(kc), &t).unwrap().1.len(), 3);
    }

    #[test]
    fn a_registry_renames_only_the_components_images() {
        let yaml = "spec:\n  containers:\n    - name: a\n      image: firedrill.local/workload:dev\n    - image: quay.io/other:1\n    - image: firedrill.local/dex:pinned\n";
        let out = rename_images(yaml, "registry.example.com/fd/");
        assert!(out.contains("      image: registry.example.com/fd/workload:dev\n"), "{out}");
        assert!(out.contains("    - image: quay.io/other:1\n    - image: registry.example.com/fd/dex:pinned"), "{out}");
        assert_eq!(rename_image("firedrill.local/dex:pinned", "r:5000"), "r:5000/dex:pinned");
    }

    #[test]
    fn unknown_contexts_are_refused_with_what_would_be_faulted() {
        let r = |role: &str, ctx: &str, by: Option<&str>| Resolved {
            role: role.into(),
            context: ctx.into(),
            server: format!("https://{ctx}:6443"),
            ca_pem: None,
            created_by: by.map(PathBuf::from),
            config: Kubeconfig::default(),
        };
        let set = [r("directory", "prod-mgmt", None), r("east", "kind-east", Some("/runs/x"))];
        let faults = |role: &str| if role == "directory" { vec!["deployment directory/x/y scaled to 0".to_string()] } else { vec![] };
        let e = guard(&set, &[], faults).unwrap_err().to_string();
        assert!(e.contains("context `prod-mgmt` (cluster directory, server https://prod-mgmt:6443)"), "{e}");
        assert!(e.contains("scaled to 0") && e.contains("--allow-context prod-mgmt") && !e.contains("kind-east"), "{e}");
        guard(&set, &["prod-mgmt".into()], faults).unwrap();
    }
}
