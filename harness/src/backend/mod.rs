//! Backends: where clusters come from. One set of suites runs on all of them; what a
//! backend cannot do is declared in its [`Capabilities`] and a scenario that needs it is
//! reported as not runnable there, never silently skipped.

pub mod addresses;
pub mod existing;
pub mod images;
pub mod kind;
pub mod local;
pub mod numbers;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Something on this machine that carries firedrill's names and no run of the state
/// directory records (`firedrill sweep`): another state directory's run, a run whose
/// directory was removed by hand, or someone else's that happens to match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stray {
    pub kind: StrayKind,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrayKind {
    Namespace,
    Link,
    ProcessGroup,
    KindCluster,
    HostContainer,
    DockerNetwork,
}

impl std::fmt::Display for StrayKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StrayKind::Namespace => "namespace",
            StrayKind::Link => "link",
            StrayKind::ProcessGroup => "process group",
            StrayKind::KindCluster => "kind cluster",
            StrayKind::HostContainer => "host container",
            StrayKind::DockerNetwork => "docker network",
        })
    }
}

/// Which backend a run uses (`FIREDRILL_BACKEND`, `--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// Real upstream binaries as processes in network namespaces (default; needs root).
    Local,
    /// kind clusters (needs Docker).
    Kind,
    /// Clusters the user names by kubeconfig context; API-level faults only.
    Existing,
}

impl BackendKind {
    /// `local`, `kind`, `existing`: the name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Kind => "kind",
            BackendKind::Existing => "existing",
        }
    }

    /// The backend `--backend` names so.
    pub fn from_name(name: &str) -> Option<BackendKind> {
        [BackendKind::Local, BackendKind::Kind, BackendKind::Existing].into_iter().find(|b| b.name() == name)
    }

    /// `FIREDRILL_BACKEND`, default `local`.
    pub fn from_env() -> Result<BackendKind, String> {
        match std::env::var("FIREDRILL_BACKEND").ok().as_deref() {
            None | Some("") => Ok(BackendKind::Local),
            Some(name) => Self::from_name(name).ok_or_else(|| format!("FIREDRILL_BACKEND={name}: expected local, kind or existing")),
        }
    }
}

/// The fault kinds a backend can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Scale, RBAC revocation: anything done through the Kubernetes API.
    pub api_faults: bool,
    pub stop_host: bool,
    pub partition: bool,
    pub stop_storage: bool,
    pub lose_node: bool,
    pub stop_cluster: bool,
    /// Each control-plane instance (etcd member, API server, controller-manager,
    /// scheduler) is a process the backend can stop, kill, pause and start on its own.
    pub control_plane_processes: bool,
    /// Starting a fresh API server during a fault (the cold-start probe).
    pub extra_apiserver: bool,
}

/// The harness failing to provide or control clusters.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("timed out after {after:?} waiting for {condition}")]
    Timeout { condition: String, after: Duration },
    #[error("{what}")]
    Kube {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{0}")]
    Daemon(String),
    /// A capability the backend does not have; the message names it and where it exists.
    #[error("{0}")]
    Unsupported(String),
}

impl BackendError {
    pub fn io(path: &Path, source: std::io::Error) -> BackendError {
        BackendError::Io { path: path.to_path_buf(), source }
    }
}

/// `$FIREDRILL_STATE`, else `/var/lib/firedrill` for root, else `$XDG_STATE_HOME/firedrill`
/// (or `~/.local/state/firedrill`).
pub fn state_root() -> PathBuf {
    if let Some(p) = std::env::var_os("FIREDRILL_STATE") {
        return PathBuf::from(p);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/firedrill");
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(p).join("firedrill");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/state/firedrill")
}

/// A kubeconfig's `certificate-authority-data` as PEM text.
pub fn ca_data_pem(b64: &str) -> Result<String, String> {
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64.trim()).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// The CA (PEM) of the first cluster of the kubeconfig at `path`; `None` when it names none.
pub fn kubeconfig_ca(path: &Path) -> Result<Option<String>, BackendError> {
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| BackendError::Setup(format!("reading {}: {e}", path.display())))?;
    match kc.clusters.into_iter().next().and_then(|n| n.cluster?.certificate_authority_data) {
        Some(b64) => ca_data_pem(&b64).map(Some).map_err(|e| BackendError::Setup(format!("{}: certificate-authority-data: {e}", path.display()))),
        None => Ok(None),
    }
}

/// An admin client from a kubeconfig file, with the harness's timeouts.
pub async fn kube_client(kubeconfig: &Path) -> Result<kube::Client, BackendError> {
    kube_client_with(kubeconfig, true).await
}

/// A client that does not retry by itself: kube-rs retries 429, 503 and 504 answers (up
/// to 15 times, honouring `Retry-After`) unless told not to. An eviction the API refuses
/// (429) must be seen as refused.
pub async fn kube_client_without_retry(kubeconfig: &Path) -> Result<kube::Client, BackendError> {
    kube_client_with(kubeconfig, false).await
}

async fn kube_client_with(kubeconfig: &Path, retry: bool) -> Result<kube::Client, BackendError> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| BackendError::Setup(format!("reading {}: {e}", kubeconfig.display())))?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| BackendError::Setup(format!("kubeconfig {}: {e}", kubeconfig.display())))?;
    cfg.connect_timeout = Some(Duration::from_secs(3));
    cfg.read_timeout = Some(Duration::from_secs(30));
    cfg.default_retry = retry;
    kube::Client::try_from(cfg).map_err(|e| BackendError::Setup(format!("client for {}: {e}", kubeconfig.display())))
}

impl From<crate::wait::Timeout> for BackendError {
    fn from(t: crate::wait::Timeout) -> Self {
        BackendError::Timeout { condition: t.condition, after: t.after }
    }
}

/// Wait until each of a host's serving ports accepts TCP connections at `ip`: a host
/// process that serves is back when it accepts connections, not when it was started.
pub async fn wait_listening(host: &str, ip: std::net::Ipv4Addr, ports: impl IntoIterator<Item = u16>) -> Result<(), BackendError> {
    for port in ports {
        crate::wait::until(
            crate::wait::Deadline::after(Duration::from_secs(30)),
            &format!("host {host} to accept connections on {ip}:{port}"),
            || async move { tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect((ip, port))).await.ok()?.ok().map(|_| ()) },
        )
        .await?;
    }
    Ok(())
}
