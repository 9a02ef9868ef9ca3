//! The cold-start probe's extra API server on kind: the pinned kube-apiserver, run by the
//! harness in the network namespace of the cluster's control-plane node container — where
//! the cluster's own API server runs, so the node's partitions and stops apply to it too —
//! with the node's certificates (copied out once), its etcd at 127.0.0.1:2379, and the
//! cluster's authentication configuration. It does not reconcile the `kubernetes`
//! Service's endpoints, which stay the cluster's own server's.
//!
//! Each server's pid is written under the run (`extra-apiservers/<port>.pid`) before it is
//! trusted to be owned, so `down` and `recover` stop what a killed harness left.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};

use super::{KindRun, authentication_config};
use crate::backend::BackendError;

/// Ports the extra servers take, in turn, skipping any port something listens on in the
/// node's namespace (a server a killed harness left, until `recover` stops it).
const PORTS: std::ops::Range<u16> = 20000..30000;
static NEXT: AtomicU16 = AtomicU16::new(PORTS.start);
/// Attempts run concurrently: one copies a node's certificates, the others wait for it.
static PKI: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// The node certificates an extra server needs.
const PKI_FILES: [&str; 8] =
    ["ca.crt", "apiserver.crt", "apiserver.key", "apiserver-etcd-client.crt", "apiserver-etcd-client.key", "etcd/ca.crt", "sa.pub", "sa.key"];

/// The TCP ports something listens on in the network namespace of process `pid`.
fn listening(pid: i32) -> std::collections::BTreeSet<u16> {
    let mut ports = std::collections::BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN.
            if f.get(3) == Some(&"0A")
                && let Some(port) = f.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// The next port of [`PORTS`] nothing listens on in `pid`'s namespace.
fn free_port(pid: i32) -> Result<u16, BackendError> {
    let taken = listening(pid);
    for _ in PORTS {
        let p = NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| Some(if p + 1 >= PORTS.end { PORTS.start } else { p + 1 })).unwrap_or(PORTS.start);
        if !taken.contains(&p) {
            return Ok(p);
        }
    }
    Err(BackendError::Setup(format!("no free port in {}..{} for an extra API server", PORTS.start, PORTS.end)))
}

/// A started server, owned by the caller.
pub struct Started {
    pub url: String,
    pub name: String,
    pub port: u16,
    pub log: PathBuf,
    pub child: std::process::Child,
    pub pid_file: PathBuf,
}

fn pid_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("extra-apiservers")
}

impl KindRun {
    /// Start `binary` (the pinned kube-apiserver) as one more API server of `cluster`.
    pub async fn start_extra_apiserver(&self, cluster: &str, binary: &Path) -> Result<Started, BackendError> {
        let c = self.info.cluster(cluster)?.clone();
        let cp = self.control_plane(cluster)?.clone();
        let ip = cp.ip.clone().ok_or_else(|| BackendError::Setup(format!("node {} has no recorded address", cp.container)))?;
        let pki = self.node_pki(&c.kubeconfig, &cp.container).await?;
        let pid = super::ops::pid(&cp.container)?;
        let port = free_port(pid)?;
        let dir = pid_dir(&self.info.dir);
        std::fs::create_dir_all(&dir).map_err(|e| BackendError::io(&dir, e))?;
        let logs = c.kubeconfig.with_file_name("logs");
        std::fs::create_dir_all(&logs).map_err(|e| BackendError::io(&logs, e))?;
        let log = logs.join(format!("kube-apiserver-extra-{port}.log"));
        let out = std::fs::File::create(&log).map_err(|e| BackendError::io(&log, e))?;
        let err = out.try_clone().map_err(|e| BackendError::io(&log, e))?;
        let p = |f: &str| pki.join(f).display().to_string();
        let args = vec![
            format!("--net=/proc/{pid}/ns/net"),
            "--".into(),
            binary.display().to_string(),
            "--etcd-servers=https://127.0.0.1:2379".into(),
            format!("--etcd-cafile={}", p("etcd/ca.crt")),
            format!("--etcd-certfile={}", p("apiserver-etcd-client.crt")),
            format!("--etcd-keyfile={}", p("apiserver-etcd-client.key")),
            "--bind-address=0.0.0.0".into(),
            format!("--secure-port={port}"),
            format!("--advertise-address={ip}"),
            "--endpoint-reconciler-type=none".into(),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-cluster-ip-range={}", c.services),
            "--authorization-mode=Node,RBAC".into(),
            format!("--authentication-config={}", authentication_config(&c).display()),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ];
        let child = std::process::Command::new("nsenter")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| BackendError::Setup(format!("starting kube-apiserver in {}'s network namespace: {e}", cp.container)))?;
        let pid_file = dir.join(format!("{port}.pid"));
        let mut child = child;
        if let Err(e) = std::fs::write(&pid_file, child.id().to_string()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BackendError::io(&pid_file, e));
        }
        Ok(Started { url: format!("https://{ip}:{port}"), name: format!("{}/kube-apiserver-extra-{port}", cp.container), port, log, child, pid_file })
    }

    /// The control-plane node's certificates, copied out of its container once (into a
    /// directory of its own, complete, then renamed into place).
    async fn node_pki(&self, kubeconfig: &Path, container: &str) -> Result<PathBuf, BackendError> {
        let dir = kubeconfig.with_file_name("node-pki");
        let complete = |d: &Path| PKI_FILES.iter().all(|f| d.join(f).is_file());
        let _one = PKI.lock().await;
        if complete(&dir) {
            return Ok(dir);
        }
        let parent = dir.parent().expect("a kubeconfig path has a parent");
        let tmp = tempfile::Builder::new().prefix("node-pki.").tempdir_in(parent).map_err(|e| BackendError::io(parent, e))?;
        let into = tmp.path().join("pki");
        super::run_async("docker", vec!["cp".into(), format!("{container}:/etc/kubernetes/pki"), into.display().to_string()], vec![]).await?;
        if !complete(&into) {
            return Err(BackendError::Setup(format!("{container}:/etc/kubernetes/pki lacks one of {}", PKI_FILES.join(", "))));
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&into, &dir).map_err(|e| BackendError::io(&dir, e))?;
        Ok(dir)
    }
}

/// Stop an owned server: SIGKILL (it keeps nothing worth a graceful stop) and reap it.
pub fn stop(child: &mut std::process::Child, pid_file: &Path) {
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(pid_file);
}

/// Stop every extra server of the run in `run_dir` that a pid file records and that is
/// still a kube-apiserver; returns their pid files' names.
pub fn stop_all(run_dir: &Path) -> Vec<String> {
    let mut stopped = Vec::new();
    for e in std::fs::read_dir(pid_dir(run_dir)).into_iter().flatten().filter_map(|e| e.ok()) {
        let path = e.path();
        let pid: Option<i32> = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok());
        if let Some(pid) = pid {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("kube-apiserver") {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                stopped.push(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    stopped
}
