//! Hosts outside the clusters on kind (a load balancer, an LDAP server): each host is a
//! container on the run's network at its fixed address from the address plan, running
//! only the pause program, which holds the host's network namespace; each of the host's
//! processes is a container of its own image (`runs-on: host` in `fixtures/images.yaml`)
//! joined to that namespace. Stopping a host stops its processes' containers and leaves
//! the holder, so the address stays and connections are refused, as on the local backend
//! where a host is a network namespace whose processes stopped.
//!
//! The host's directory in the run (`<run>/hosts/<host>`) is mounted at the same path, so
//! a process's arguments name its files as they do on the local backend.

use std::time::Duration;

use super::{KindHost, KindRun, KindRunInfo, run, run_async};
use crate::backend::BackendError;
use crate::backend::images::ImageMap;

/// The image every host's network holder runs.
pub const HOLDER_IMAGE: &str = "firedrill.local/host-pause:pinned";
/// Labels on every host container: the run's number, the host, the process.
pub const RUN_LABEL: &str = "firedrill.kind-run";
const HOST_LABEL: &str = "firedrill.host";
const PROCESS_LABEL: &str = "firedrill.process";
/// The ports a host process serves on, comma-separated: starting its host waits for them.
const LISTEN_LABEL: &str = "firedrill.listen";

/// A process container of a host, from its labels.
struct HostProcess {
    container: String,
    host: String,
    process: String,
    /// The ports it serves on.
    listen: Vec<u16>,
}

/// Create every host's network holder.
pub async fn create(info: &KindRunInfo) -> Result<(), BackendError> {
    for h in &info.hosts {
        let args = [
            "run",
            "--detach",
            "--pull=never",
            "--name",
            &h.container,
            "--hostname",
            &h.name,
            "--network",
            &info.network,
            "--ip",
            &h.ip,
            "--label",
            &format!("{RUN_LABEL}={}", info.number),
            "--label",
            &format!("{HOST_LABEL}={}", h.name),
            HOLDER_IMAGE,
        ];
        run_async("docker", args.map(String::from).to_vec(), vec![]).await?;
    }
    Ok(())
}

/// Remove every host container of run `number` (holders and processes), with volumes.
pub async fn remove(number: Option<u8>) -> Result<(), BackendError> {
    let filter = match number {
        Some(n) => format!("label={RUN_LABEL}={n}"),
        None => format!("label={RUN_LABEL}"),
    };
    let listing = run("docker", &["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])?;
    let containers: Vec<String> = listing.lines().filter(|l| !l.is_empty()).map(String::from).collect();
    if containers.is_empty() {
        return Ok(());
    }
    let mut args = vec!["rm".to_string(), "--force".into(), "--volumes".into()];
    args.extend(containers);
    run_async("docker", args, vec![]).await.map(|_| ())
}

impl KindRun {
    pub fn host(&self, name: &str) -> Result<&KindHost, BackendError> {
        self.info.hosts.iter().find(|h| h.name == name).ok_or_else(|| BackendError::Setup(format!("run {} has no host `{name}`", self.info.id)))
    }

    /// Run `argv` on `host` as process `name`: a container of the image whose binary is
    /// `argv[0]`, in the host's network namespace. A process of that name already there
    /// is replaced. Fails with the process's output when it exits at once.
    pub async fn add_host_process(
        &self,
        images: &ImageMap,
        host: &str,
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        listen: &[u16],
    ) -> Result<(), BackendError> {
        let h = self.host(host)?;
        let (first, rest) = argv.split_first().ok_or_else(|| BackendError::Setup(format!("host {host}: process {name} has no command")))?;
        let (image, _) = images.for_host_binary(std::path::Path::new(first)).map_err(BackendError::Unsupported)?;
        let container = format!("{}-{name}", h.container);
        let _ = run("docker", &["rm", "--force", "--volumes", &container]);
        let dir = self.info.dir.join("hosts").join(host);
        std::fs::create_dir_all(&dir).map_err(|e| BackendError::io(&dir, e))?;
        let mut args: Vec<String> = [
            "run",
            "--detach",
            "--pull=never",
            "--name",
            &container,
            "--network",
            &format!("container:{}", h.container),
            "--label",
            &format!("{RUN_LABEL}={}", self.info.number),
            "--label",
            &format!("{HOST_LABEL}={host}"),
            "--label",
            &format!("{PROCESS_LABEL}={name}"),
            "--label",
            &format!("{LISTEN_LABEL}={}", listen.iter().map(u16::to_string).collect::<Vec<_>>().join(",")),
            "--volume",
            &format!("{0}:{0}", dir.display()),
        ]
        .map(String::from)
        .to_vec();
        for (k, v) in env {
            args.extend(["--env".into(), format!("{k}={v}")]);
        }
        args.push(image.to_string());
        args.extend(rest.iter().cloned());
        run_async("docker", args, vec![]).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if !super::ops::running(&container)? {
            let logs = run("docker", &["logs", "--tail", "20", &container]).unwrap_or_default();
            return Err(BackendError::Setup(format!("host {host}: process {name} exited at once: {}", logs.trim())));
        }
        self.wait_listening(host, &self.host_processes(Some(host))?).await
    }

    /// Wait until `host` accepts connections on every port its processes serve on.
    async fn wait_listening(&self, host: &str, procs: &[HostProcess]) -> Result<(), BackendError> {
        let ip: std::net::Ipv4Addr = self.host(host)?.ip.parse().map_err(|e| BackendError::Setup(format!("host {host}: address: {e}")))?;
        let ports: std::collections::BTreeSet<u16> = procs.iter().flat_map(|p| p.listen.iter().copied()).collect();
        crate::backend::wait_listening(host, ip, ports).await
    }

    /// The process containers of `host` (all hosts with `None`).
    fn host_processes(&self, host: Option<&str>) -> Result<Vec<HostProcess>, BackendError> {
        let filter = match host {
            Some(h) => format!("label={HOST_LABEL}={h}"),
            None => format!("label={HOST_LABEL}"),
        };
        let format = format!("{{{{.Names}}}}\t{{{{.Label \"{HOST_LABEL}\"}}}}\t{{{{.Label \"{PROCESS_LABEL}\"}}}}\t{{{{.Label \"{LISTEN_LABEL}\"}}}}");
        let listing = run("docker", &["ps", "-a", "--filter", &format!("label={RUN_LABEL}={}", self.info.number), "--filter", &filter, "--format", &format])?;
        let mut procs = Vec::new();
        for l in listing.lines() {
            let mut f = l.split('\t');
            let (Some(container), Some(host), Some(process)) = (f.next(), f.next(), f.next()) else { continue };
            if process.is_empty() {
                continue; // the host's network holder
            }
            let listen = f.next().unwrap_or("").split(',').filter(|p| !p.is_empty()).map(|p| p.parse::<u16>()).collect::<Result<_, _>>();
            let listen = listen.map_err(|e| BackendError::Setup(format!("container {container}: label {LISTEN_LABEL}: {e}")))?;
            procs.push(HostProcess { container: container.into(), host: host.into(), process: process.into(), listen });
        }
        Ok(procs)
    }

    /// Every host process as `host/<host>/<process>`, and whether it runs.
    pub fn processes(&self) -> Result<Vec<(String, bool)>, BackendError> {
        self.host_processes(None)?.into_iter().map(|p| Ok((format!("host/{}/{}", p.host, p.process), super::ops::running(&p.container)?))).collect()
    }

    /// Stop every process of `host` (SIGTERM and 10 s, or SIGKILL with `kill`); its
    /// address stays.
    pub async fn stop_host(&self, host: &str, kill: bool) -> Result<Vec<String>, BackendError> {
        self.host(host)?;
        let containers: Vec<String> = self.host_processes(Some(host))?.into_iter().map(|p| p.container).collect();
        if !containers.is_empty() {
            let mut args = if kill { vec!["kill".to_string()] } else { vec!["stop".to_string(), "--time".into(), "10".into()] };
            let running: Vec<String> = containers.iter().filter(|c| super::ops::running(c).unwrap_or(true)).cloned().collect();
            if !running.is_empty() {
                args.extend(running);
                run_async("docker", args, vec![]).await?;
            }
        }
        Ok(containers)
    }

    /// Start every process of `host` again.
    pub async fn start_host(&self, host: &str) -> Result<Vec<String>, BackendError> {
        let h = self.host(host)?;
        if !super::ops::running(&h.container)? {
            return Err(BackendError::Setup(format!("host {host}'s network holder {} is not running", h.container)));
        }
        let procs = self.host_processes(Some(host))?;
        let containers: Vec<String> = procs.iter().map(|p| p.container.clone()).collect();
        let stopped: Vec<String> = containers.iter().filter(|c| !super::ops::running(c).unwrap_or(false)).cloned().collect();
        if !stopped.is_empty() {
            let mut args = vec!["start".to_string()];
            args.extend(stopped);
            run_async("docker", args, vec![]).await?;
        }
        self.wait_listening(host, &procs).await?;
        Ok(containers)
    }
}
