//! The DR exercise's fault: every etcd member of a cluster loses its data, and the cluster
//! is restored from a snapshot taken with etcd's own tooling.
//!
//! Inject, in order, each step skipped when its record exists (so a second inject changes
//! nothing):
//! 1. known objects written: namespace `firedrill-dr` with config maps and secrets;
//! 2. a snapshot taken with `etcdctl snapshot save` from one member; its revision read back
//!    with `etcdutl snapshot status`;
//! 3. the inventory: every object of the kinds below listed, and each one whose
//!    resourceVersion is not above the snapshot's revision kept with its content — it is
//!    in the snapshot exactly so;
//! 4. `writes` objects written after the snapshot, each recorded (the exercise's RPO);
//! 5. every member killed and its data directory moved aside: for the cluster the data is
//!    gone. It is kept only so that a refused restore, or `firedrill recover` after an
//!    interrupted inject, can put it back.
//!
//! Revert is the restore runbook of Kubernetes' "Operating etcd clusters" page: stop every
//! API server; restore every member with `etcdutl snapshot restore` (`--bump-revision
//! --mark-compacted`, so that the clients' watches find their revision compacted and list
//! again) into a staging directory; only when every member's restore succeeded, move them
//! into place; start etcd and the API servers; restart the controller-managers and
//! schedulers. A backup etcdutl refuses leaves no member half-restored: the staging
//! directories are removed, the moved-aside data is put back, and the refusal is recorded
//! for the `backup-refused` claim. Every step is recorded in `record.json` with its time
//! (RTO).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::controlplane::{self, info};
use super::{Expect, FaultError, Signal, Undo, backend_err};
use crate::backend::local::ClusterInfo;
use crate::env::Env;

/// The namespace of the exercise's own objects.
pub const NAMESPACE: &str = "firedrill-dr";
/// Known objects written before the snapshot, of each of the two kinds.
const KNOWN: usize = 5;
/// How far the restore moves etcd's revision on (etcd's own advice for Kubernetes).
const BUMP_REVISION: u64 = 1_000_000_000;
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The backup the restore is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Backup {
    /// The snapshot as etcdctl saved it.
    #[default]
    Intact,
    /// Its first half only, as a copy cut short.
    Truncated,
    /// 4 KiB in its middle inverted, as a corrupted copy.
    Garbled,
}

impl Backup {
    pub fn words(self) -> &'static str {
        match self {
            Backup::Intact => "the snapshot",
            Backup::Truncated => "a truncated copy of the snapshot",
            Backup::Garbled => "a corrupted copy of the snapshot",
        }
    }
}

/// What the exercise recorded, in `record.json` of its directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    /// etcd's revision in the snapshot.
    pub revision: i64,
    /// When every member's data was lost (seconds since the epoch).
    #[serde(default)]
    pub destroyed_at: Option<f64>,
    #[serde(default)]
    pub restore: Option<Restore>,
}

/// The revert's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Restore {
    pub started_at: f64,
    /// `restored`: every member from the backup; `refused`: etcdutl refused it and the
    /// moved-aside data was put back; `put-back`: the inject had not destroyed every
    /// member, so the moved-aside data was put back.
    pub outcome: String,
    /// etcdutl's error, for a refusal.
    #[serde(default)]
    pub message: String,
    /// Time etcdutl took for every member.
    pub restore_secs: f64,
    /// etcd healthy again, then the API servers started.
    pub etcd_healthy_at: f64,
    pub apiservers_started_at: f64,
}

/// An object of the inventory, or written after the snapshot.
pub type Key = String;

/// What the snapshot holds, as the API showed it right after the snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// Objects unchanged since the snapshot: key → content (without status, resource
    /// version and managed fields).
    pub objects: BTreeMap<Key, Value>,
    /// Objects the cluster's own clients created or changed after the snapshot, before the
    /// listing: their later versions are not in the backup.
    pub after_snapshot: Vec<Key>,
    /// Deployments with every replica Ready when listed: the workloads that must be Ready
    /// again after the restore.
    pub ready_deployments: Vec<Key>,
}

/// One write of the exercise after the snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Write {
    pub key: Key,
    /// Whether the API accepted it (only accepted writes count).
    pub accepted: bool,
}

/// A directory of its own for each injection: `tag`'s, or `tag-2`, `tag-3`… where an
/// earlier injection's is kept (its record is that scenario's evidence). Inject skips each
/// step whose record exists, so a directory used before would restore an older snapshot
/// (a scenario run again on the same environment rewound the cluster to its first run).
pub fn dir_for(c: &ClusterInfo, tag: &str) -> PathBuf {
    unused_dir(&c.dir.join("dr"), tag)
}

fn unused_dir(base: &Path, tag: &str) -> PathBuf {
    (1..).map(|n| if n == 1 { base.join(tag) } else { base.join(format!("{tag}-{n}")) }).find(|d| !d.exists()).expect("an unused name")
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> FaultError {
    move |e| FaultError::Invalid(format!("{what}: {e}"))
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), FaultError> {
    crate::files::write_atomic(path, &serde_json::to_vec_pretty(v).expect("serialises"), 0o644).map_err(io(format!("writing {}", path.display())))
}

pub fn data_dir(c: &ClusterInfo, member: &str) -> PathBuf {
    c.dir.join(format!("etcd-{member}"))
}

fn aside(dir: &Path, member: &str) -> PathBuf {
    dir.join("destroyed").join(format!("etcd-{member}"))
}

fn staging(dir: &Path, member: &str) -> PathBuf {
    dir.join("staging").join(format!("etcd-{member}"))
}

/// The pinned etcd release's tools in the cache (built by `make setup`).
fn tools(env: &Env) -> Result<crate::fixtures::Binaries, String> {
    let v = crate::fixtures::Versions::load(&env.paths.fixtures).map_err(|e| e.to_string())?;
    Ok(crate::fixtures::Binaries::in_cache(&crate::fixtures::cache_dir(), &v))
}

/// Run one of etcd's tools; its stdout, or its stderr's last lines as the error.
async fn tool(bin: &Path, args: &[String]) -> Result<String, String> {
    if !bin.is_file() {
        return Err(format!("{} is not built; run `make setup` (ci/setup.sh builds etcd's tools)", bin.display()));
    }
    let name = bin.file_name().unwrap_or_default().to_string_lossy().to_string();
    let out = tokio::time::timeout(TOOL_TIMEOUT, tokio::process::Command::new(bin).args(args).kill_on_drop(true).output())
        .await
        .map_err(|_| format!("{name} {} ran over {TOOL_TIMEOUT:?}", args.first().cloned().unwrap_or_default()))?
        .map_err(|e| format!("running {name}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    // The tool's own error line (`Error: …`), else its last line: its log lines before it
    // are progress, not the reason.
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let why = lines.iter().rev().find(|l| l.starts_with("Error:")).or(lines.last()).copied().unwrap_or("no output");
    Err(format!("{name} {} failed ({}): {why}", args.iter().take(2).cloned().collect::<Vec<_>>().join(" "), out.status))
}

/// The content compared after the restore: the object without what the cluster rewrites
/// on its own (status, resource version, managed fields) or what a list leaves out.
pub fn content(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        o.remove("apiVersion");
        o.remove("kind");
        if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
    }
    v
}

/// The kinds the inventory covers: namespaces, config maps, secrets, services, service
/// accounts, deployments, and every custom resource the cluster defines.
async fn kinds(client: &kube::Client) -> Result<Vec<ApiResource>, String> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Service, ServiceAccount};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let mut out = vec![
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Secret>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<Deployment>(&()),
    ];
    let crds = Api::<CustomResourceDefinition>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing custom resource definitions: {}", crate::error::kube_message(&e)))?;
    for crd in crds.items {
        let s = &crd.spec;
        if let Some(v) = s.versions.iter().find(|v| v.storage) {
            out.push(ApiResource {
                group: s.group.clone(),
                version: v.name.clone(),
                api_version: format!("{}/{}", s.group, v.name),
                kind: s.names.kind.clone(),
                plural: s.names.plural.clone(),
            });
        }
    }
    Ok(out)
}

fn key(kind: &str, o: &DynamicObject) -> Key {
    match &o.metadata.namespace {
        Some(ns) => format!("{kind} {ns}/{}", o.metadata.name.clone().unwrap_or_default()),
        None => format!("{kind} {}", o.metadata.name.clone().unwrap_or_default()),
    }
}

/// Every object of the inventory's kinds: key → (resourceVersion, the object as listed).
pub async fn list_all(client: &kube::Client) -> Result<BTreeMap<Key, (u64, Value)>, String> {
    let mut out = BTreeMap::new();
    for ar in kinds(client).await? {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let list = api.list(&ListParams::default()).await.map_err(|e| format!("listing {}: {}", ar.plural, crate::error::kube_message(&e)))?;
        for o in list.items {
            let rv = o.metadata.resource_version.as_deref().and_then(|r| r.parse().ok()).unwrap_or(u64::MAX);
            let k = key(&ar.kind, &o);
            let v = serde_json::to_value(&o).map_err(|e| e.to_string())?;
            out.insert(k, (rv, v));
        }
    }
    Ok(out)
}

/// The kind of a key (`ConfigMap ns/name` → `ConfigMap`).
pub fn kind_of(key: &str) -> &str {
    key.split(' ').next().unwrap_or(key)
}

/// Read what undoing needs; changes nothing.
pub fn plan(env: &Env, cluster: &str, backup: Backup, tag: &str) -> Result<Undo, FaultError> {
    let c = info(env, cluster)?;
    Ok(Undo::RestoreEtcdData { cluster: cluster.to_string(), dir: dir_for(c, tag), backup })
}

pub async fn inject(env: &Env, cluster: &str, writes: u32, dir: &Path, backup: Backup) -> Result<(), FaultError> {
    let c = info(env, cluster)?;
    let client = env.cluster(cluster).map_err(backend_err(format!("cluster {cluster}")))?.client.clone();
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let record_path = dir.join("record.json");
    let mut record: Record = read_json(&record_path).map_err(FaultError::Invalid)?.unwrap_or_default();
    let snapshot = dir.join("snapshot.db");
    let kube = |what: &str| {
        let what = what.to_string();
        move |e: kube::Error| FaultError::Kube { what, message: crate::error::kube_message(&e) }
    };

    if !snapshot.is_file() {
        // 1. Known objects.
        let ns: Api<Namespace> = Api::all(client.clone());
        let mut n = Namespace::default();
        n.metadata.name = Some(NAMESPACE.into());
        n.metadata.labels = Some(BTreeMap::from([("firedrill.dev/dr".into(), "known".into())]));
        create(&ns, &n).await.map_err(kube("creating namespace firedrill-dr"))?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
        for i in 0..KNOWN {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(format!("known-{i}"));
            cm.data = Some(BTreeMap::from([("value".into(), format!("known {i}, written before the snapshot"))]));
            create(&cms, &cm).await.map_err(kube("creating a known config map"))?;
            let mut s = Secret::default();
            s.metadata.name = Some(format!("known-{i}"));
            s.string_data = Some(BTreeMap::from([("token".into(), format!("secret-{i}-before-the-snapshot"))]));
            create(&secrets, &s).await.map_err(kube("creating a known secret"))?;
        }
        // 2. The snapshot, from the first member.
        let first = c.etcd_nodes.first().ok_or_else(|| FaultError::Invalid(format!("cluster {cluster} has no etcd member")))?;
        let endpoint = format!("http://{}:2379", c.node(first).map_err(backend_err("etcd member"))?.ip);
        let part = dir.join("snapshot.db.part");
        let t = tools(env).map_err(FaultError::Invalid)?;
        tool(&t.etcdctl, &[format!("--endpoints={endpoint}"), "snapshot".into(), "save".into(), part.display().to_string()])
            .await
            .map_err(|m| FaultError::Kube { what: "taking the snapshot".into(), message: m })?;
        std::fs::rename(&part, &snapshot).map_err(io(format!("keeping {}", snapshot.display())))?;
        record.revision =
            snapshot_revision(&t.etcdutl, &snapshot).await.map_err(|m| FaultError::Kube { what: "reading the snapshot's status".into(), message: m })?;
        write_json(&record_path, &record)?;
    }

    // 3. The inventory.
    let inventory_path = dir.join("inventory.json");
    if !inventory_path.is_file() {
        let all = list_all(&client).await.map_err(|m| FaultError::Kube { what: "listing the cluster's objects".into(), message: m })?;
        let mut inv = Inventory::default();
        for (k, (rv, v)) in all {
            let replicas = v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
            if kind_of(&k) == "Deployment" && replicas > 0 && v.pointer("/status/readyReplicas").and_then(Value::as_i64) == Some(replicas) {
                inv.ready_deployments.push(k.clone());
            }
            if rv as i64 <= record.revision {
                inv.objects.insert(k, content(v));
            } else {
                inv.after_snapshot.push(k);
            }
        }
        write_json(&inventory_path, &inv)?;
    }

    // 4. Writes after the snapshot.
    let writes_path = dir.join("writes.json");
    if !writes_path.is_file() {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
        let mut done = Vec::new();
        // Names of this fault's own (`after-<scenario>-<n>-<i>`): a write is a new object,
        // never one an earlier scenario left, so "present" and "lost" mean something.
        let run = dir.file_name().map(|n| n.to_string_lossy().to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-")).unwrap_or_default();
        for i in 0..writes {
            let name = format!("after-{run}-{i}");
            let (kind, r) = if i % 2 == 0 {
                let mut cm = ConfigMap::default();
                cm.metadata.name = Some(name.clone());
                cm.data = Some(BTreeMap::from([("value".into(), format!("write {i} after the snapshot"))]));
                ("ConfigMap", cms.create(&PostParams::default(), &cm).await.map(|_| ()))
            } else {
                let mut s = Secret::default();
                s.metadata.name = Some(name.clone());
                s.string_data = Some(BTreeMap::from([("token".into(), format!("write-{i}-after-the-snapshot"))]));
                ("Secret", secrets.create(&PostParams::default(), &s).await.map(|_| ()))
            };
            done.push(Write { key: format!("{kind} {NAMESPACE}/{name}"), accepted: r.is_ok() });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        write_json(&writes_path, &done)?;
    }

    // 5. The loss: every member killed, its data moved aside.
    env.stop_storage(cluster, true).await.map_err(backend_err(format!("killing etcd of cluster {cluster}")))?;
    std::fs::create_dir_all(dir.join("destroyed")).map_err(io("creating the destroyed data's directory".into()))?;
    for m in &c.etcd_nodes {
        let (data, to) = (data_dir(c, m), aside(dir, m));
        if data.exists() && !to.exists() {
            std::fs::rename(&data, &to).map_err(io(format!("moving {} aside", data.display())))?;
        }
    }
    if record.destroyed_at.is_none() {
        record.destroyed_at = Some(now());
        write_json(&record_path, &record)?;
    }

    // The backup the restore is given.
    let backup_path = dir.join("backup.db");
    if !backup_path.is_file() {
        let mut bytes = std::fs::read(&snapshot).map_err(io(format!("reading {}", snapshot.display())))?;
        match backup {
            Backup::Intact => {}
            Backup::Truncated => bytes.truncate(bytes.len() / 2),
            Backup::Garbled => {
                let mid = bytes.len() / 2;
                for b in bytes.iter_mut().skip(mid).take(4096) {
                    *b = !*b;
                }
            }
        }
        std::fs::write(&backup_path, bytes).map_err(io(format!("writing {}", backup_path.display())))?;
    }
    Ok(())
}

/// Create an object, or leave the one that exists (idempotent inject).
async fn create<K>(api: &Api<K>, obj: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + Serialize + for<'de> Deserialize<'de> + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn snapshot_revision(etcdutl: &Path, file: &Path) -> Result<i64, String> {
    let out = tool(etcdutl, &["snapshot".into(), "status".into(), file.display().to_string(), "--write-out=json".into()]).await?;
    let v: Value = serde_json::from_str(out.trim()).map_err(|e| format!("etcdutl snapshot status: {e}: {out}"))?;
    v["revision"].as_i64().ok_or_else(|| format!("etcdutl snapshot status gave no revision: {out}"))
}

fn processes(c: &ClusterInfo, component: &str) -> Vec<String> {
    c.apiserver_nodes.iter().map(|n| format!("{}/{component}-{n}", c.name)).collect()
}

/// Restore (see the module's text). Idempotent: a cluster whose members all have their
/// data only has its processes started.
pub async fn revert(env: &Env, cluster: &str, dir: &Path) -> Result<(), FaultError> {
    let c = info(env, cluster)?;
    let record_path = dir.join("record.json");
    let destroyed: Vec<&String> = c.etcd_nodes.iter().filter(|m| !data_dir(c, m).exists() && aside(dir, m).exists()).collect();
    if destroyed.is_empty() {
        return start_all(env, c).await.map(|_| ());
    }
    let started_at = now();
    controlplane::stop(env, &processes(c, "kube-apiserver"), Signal::Term).await?;
    env.stop_storage(cluster, true).await.map_err(backend_err(format!("stopping etcd of cluster {cluster}")))?;

    let (outcome, message, took) = if destroyed.len() < c.etcd_nodes.len() {
        put_back(c, dir)?;
        ("put-back", String::new(), 0.0)
    } else {
        let t0 = std::time::Instant::now();
        match restore_members(&tools(env).map_err(FaultError::Invalid)?.etcdutl, c, dir).await {
            Ok(()) => {
                for m in &c.etcd_nodes {
                    std::fs::rename(staging(dir, m), data_dir(c, m)).map_err(io(format!("moving the restored data of member {m} into place")))?;
                }
                let _ = std::fs::remove_dir_all(dir.join("destroyed"));
                ("restored", String::new(), t0.elapsed().as_secs_f64())
            }
            Err(message) => {
                let _ = std::fs::remove_dir_all(dir.join("staging"));
                put_back(c, dir)?;
                ("refused", message, t0.elapsed().as_secs_f64())
            }
        }
    };
    let etcd_healthy_at = start_all(env, c).await?;
    let apiservers_started_at = now();
    // The runbook: controller-managers and schedulers restarted, so none acts on a cache of
    // the state before the restore; once the API servers are ready, as a controller-manager
    // started before exits and is left to its supervisor's back-off.
    if outcome == "restored" {
        crate::backend::local::daemon::wait_apiserver(c).await.map_err(backend_err(format!("waiting for the API servers of cluster {cluster}")))?;
        for component in ["kube-controller-manager", "kube-scheduler"] {
            let names = processes(c, component);
            controlplane::stop(env, &names, Signal::Term).await?;
            controlplane::start(env, &names).await?;
        }
    }
    let mut record: Record = read_json(&record_path).map_err(FaultError::Invalid)?.unwrap_or_default();
    record.restore = Some(Restore { started_at, outcome: outcome.into(), message, restore_secs: took, etcd_healthy_at, apiservers_started_at });
    write_json(&record_path, &record)
}

/// Every member restored into its staging directory, or the first refusal.
async fn restore_members(etcdutl: &Path, c: &ClusterInfo, dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir.join("staging"));
    std::fs::create_dir_all(dir.join("staging")).map_err(|e| format!("creating the staging directory: {e}"))?;
    let peers: Vec<(String, String)> = c
        .etcd_nodes
        .iter()
        .map(|n| c.node(n).map(|node| (n.clone(), format!("http://{}:2380", node.ip))))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let initial = peers.iter().map(|(n, u)| format!("{n}={u}")).collect::<Vec<_>>().join(",");
    for (name, peer) in &peers {
        tool(
            etcdutl,
            &[
                "snapshot".into(),
                "restore".into(),
                dir.join("backup.db").display().to_string(),
                format!("--name={name}"),
                format!("--data-dir={}", staging(dir, name).display()),
                format!("--initial-cluster={initial}"),
                format!("--initial-cluster-token={}", c.name),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--bump-revision={BUMP_REVISION}"),
                "--mark-compacted".into(),
            ],
        )
        .await
        .map_err(|e| format!("member {name}: {e}"))?;
    }
    Ok(())
}

fn put_back(c: &ClusterInfo, dir: &Path) -> Result<(), FaultError> {
    for m in &c.etcd_nodes {
        let (data, from) = (data_dir(c, m), aside(dir, m));
        if !data.exists() && from.exists() {
            std::fs::rename(&from, &data).map_err(io(format!("putting the data of member {m} back")))?;
        }
    }
    Ok(())
}

/// etcd (waited healthy) and the API servers running.
/// Returns when etcd was healthy (seconds since the epoch).
async fn start_all(env: &Env, c: &ClusterInfo) -> Result<f64, FaultError> {
    env.start_storage(&c.name).await.map_err(backend_err(format!("starting etcd of cluster {}", c.name)))?;
    let healthy = now();
    controlplane::start(env, &processes(c, "kube-apiserver")).await?;
    Ok(healthy)
}

/// In effect: no member runs and none has a data directory; undone: every member and API
/// server runs, each member with its data, healthy.
pub async fn check(env: &Env, cluster: &str, expect: Expect) -> Result<(), String> {
    let c = info(env, cluster).map_err(|e| e.to_string())?;
    match expect {
        Expect::InEffect => {
            super::host::processes(env, &format!("{cluster}/etcd-"), expect).await?;
            let left: Vec<String> = c.etcd_nodes.iter().filter(|m| data_dir(c, m).exists()).map(|m| data_dir(c, m).display().to_string()).collect();
            if left.is_empty() { Ok(()) } else { Err(format!("data still there: {}", left.join(", "))) }
        }
        Expect::Reverted => {
            let names: Vec<String> = c.etcd_nodes.iter().map(|n| format!("{cluster}/etcd-{n}")).chain(processes(c, "kube-apiserver")).collect();
            controlplane::check(env, cluster, &names, Signal::Term, expect).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_injection_gets_a_directory_no_earlier_one_used() {
        let base = tempfile::tempdir().unwrap();
        let first = unused_dir(base.path(), "s_1");
        assert_eq!(first, base.path().join("s_1"));
        std::fs::create_dir_all(first.join("snapshot.db")).unwrap();
        assert_eq!(unused_dir(base.path(), "s_1"), base.path().join("s_1-2"), "the first injection's snapshot is never restored again");
        std::fs::create_dir_all(base.path().join("s_1-2")).unwrap();
        assert_eq!(unused_dir(base.path(), "s_1"), base.path().join("s_1-3"));
    }
}
