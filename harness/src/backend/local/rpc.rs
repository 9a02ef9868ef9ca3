//! The local daemon's control socket: one JSON request per connection, one JSON reply.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::backend::BackendError;

/// What a client can ask the daemon. Every request is idempotent: starting what runs and
/// stopping what is stopped succeed without doing anything.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Status,
    /// Run a process on a host outside the clusters; kept and restarted by `start-host`.
    /// The request (and every later `start-host`) ends when the host accepts connections
    /// on each port of `listen`.
    AddHostProcess {
        host: String,
        name: String,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        #[serde(default)]
        listen: Vec<u16>,
    },
    /// Stop every process of a host: SIGTERM and a grace period, or with `kill`, SIGKILL
    /// at once (no graceful shutdown).
    StopHost {
        host: String,
        #[serde(default)]
        kill: bool,
    },
    StartHost {
        host: String,
    },
    /// Stop or start a cluster's etcd member(s); `kill` as for `stop-host`.
    StopStorage {
        cluster: String,
        #[serde(default)]
        kill: bool,
    },
    StartStorage {
        cluster: String,
    },
    /// A node is lost: its agent stops and its pods' processes are killed. Restoring starts
    /// a fresh agent, as after a reboot.
    LoseNode {
        cluster: String,
        node: String,
    },
    RestoreNode {
        cluster: String,
        node: String,
    },
    /// Every process of a cluster: control plane, node agents, pods.
    StopCluster {
        cluster: String,
    },
    StartCluster {
        cluster: String,
    },
    /// One more kube-apiserver on the cluster's first API-server node, on a port no
    /// process of the run uses; replies with its name and port. Never restarted.
    StartExtraApiserver {
        cluster: String,
    },
    /// Stop one extra API server at once (SIGKILL); the name is forgotten.
    StopExtraApiserver {
        name: String,
    },
    /// Stop every extra API server of the run; replies with the names stopped.
    StopExtraApiservers,
    /// Every process and node agent the daemon manages: `name<TAB>running|paused|stopped`.
    Processes,
    /// Stop one managed process by name: SIGTERM and 2 s grace, SIGKILL at once (`kill`),
    /// or SIGSTOP to every process of its cgroup (`pause`: it stays, frozen).
    StopProcess {
        name: String,
        #[serde(default)]
        how: StopHow,
    },
    /// Start one stopped managed process by name, or SIGCONT a paused one.
    StartProcess {
        name: String,
    },
    Shutdown,
}

/// How [`Request::StopProcess`] stops a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopHow {
    #[default]
    Term,
    Kill,
    Pause,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    /// Names of the processes the request affected.
    #[serde(default)]
    pub affected: Vec<String>,
}

/// Send one request without an async runtime: for a drop guard, which cannot await.
pub fn call_blocking(run_dir: &Path, req: &Request, timeout: Duration) -> Result<Reply, BackendError> {
    use std::io::{BufRead, Write};
    let path = socket(run_dir);
    let stream = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| BackendError::Daemon(format!("cannot reach the local daemon at {}: {e}", path.display())))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| BackendError::Daemon(e.to_string()))?;
    let mut line = serde_json::to_string(req).expect("serialises");
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(|e| BackendError::Daemon(format!("sending {req:?}: {e}")))?;
    let mut reply = String::new();
    std::io::BufReader::new(&stream).read_line(&mut reply).map_err(|e| BackendError::Daemon(format!("reading the reply to {req:?}: {e}")))?;
    let reply: Reply = serde_json::from_str(&reply).map_err(|e| BackendError::Daemon(format!("bad reply to {req:?}: {e}")))?;
    if reply.ok { Ok(reply) } else { Err(BackendError::Daemon(reply.error.unwrap_or_else(|| format!("{req:?} failed")))) }
}

pub fn socket(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join("daemon.sock")
}

/// Send one request; `timeout` bounds the whole exchange (starting a cluster takes a while).
pub async fn call(run_dir: &Path, req: &Request, timeout: Duration) -> Result<Reply, BackendError> {
    let path = socket(run_dir);
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(|e| BackendError::Daemon(format!("cannot reach the local daemon at {}: {e}", path.display())))?;
        let (r, mut w) = stream.into_split();
        let mut line = serde_json::to_string(req).expect("serialises");
        line.push('\n');
        w.write_all(line.as_bytes()).await.map_err(|e| BackendError::Daemon(format!("sending {req:?}: {e}")))?;
        let mut reply = String::new();
        BufReader::new(r).read_line(&mut reply).await.map_err(|e| BackendError::Daemon(format!("reading the reply to {req:?}: {e}")))?;
        if reply.is_empty() {
            return Err(BackendError::Daemon(format!("the local daemon closed the connection during {req:?}")));
        }
        serde_json::from_str::<Reply>(&reply).map_err(|e| BackendError::Daemon(format!("bad reply to {req:?}: {e}")))
    };
    let reply = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| BackendError::Timeout { condition: format!("the local daemon to answer {req:?}"), after: timeout })??;
    if reply.ok { Ok(reply) } else { Err(BackendError::Daemon(reply.error.unwrap_or_else(|| format!("{req:?} failed")))) }
}
