//! One pod on one node: volumes, init containers run one after another to completion,
//! containers as real processes, restarts with back-off, probes, status, graceful
//! termination, and the final delete — what the kubelet does for a pod, on the local
//! backend.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::mpsc;

use super::NodeCtx;
use super::env;
use super::probes::{self, ProbeState};
use super::volumes::{self, Volumes};
use crate::backend::images::Image;
use crate::backend::local::process;
use crate::backend::local::shim::ExecSpec;

/// What the node agent tells a pod worker.
#[derive(Debug)]
pub enum Msg {
    /// The pod object changed (for the worker: a deletion timestamp appeared).
    Update(Box<Pod>),
    /// The pod object is gone from the API.
    Gone,
}

/// Restart back-off: doubles from 1 s to 30 s, reset after 60 s of running. (The kubelet
/// uses 10 s to 5 min; drills need restarts to show within their windows.)
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const BACKOFF_RESET: Duration = Duration::from_secs(60);

struct Ctr {
    spec: Container,
    /// An init container: runs to completion, in order, before any container starts.
    init: bool,
    image: Result<Image, String>,
    pid: Option<u32>,
    cgroup: Option<PathBuf>,
    generation: u64,
    started_at: Option<Time>,
    running_since: Option<Instant>,
    restart_count: i32,
    last_terminated: Option<ContainerStateTerminated>,
    terminated: Option<ContainerStateTerminated>,
    waiting: Option<(String, String)>,
    restart_at: Option<Instant>,
    backoff: Duration,
    readiness: Option<ProbeState>,
    liveness: Option<ProbeState>,
    startup: Option<ProbeState>,
    log: PathBuf,
}

impl Ctr {
    fn ready(&self) -> bool {
        if self.init {
            return self.completed();
        }
        self.pid.is_some() && self.startup_done() && self.readiness.as_ref().map(|r| r.passing == Some(true)).unwrap_or(true)
    }
    fn completed(&self) -> bool {
        self.terminated.as_ref().is_some_and(|t| t.exit_code == 0)
    }
    fn startup_done(&self) -> bool {
        self.startup.as_ref().map(|s| s.passing == Some(true)).unwrap_or(true)
    }
}

struct Worker {
    ctx: Arc<NodeCtx>,
    pod: Pod,
    dir: PathBuf,
    ctrs: Vec<Ctr>,
    vols: Volumes,
    exits: (mpsc::UnboundedSender<(usize, u64, i32, Option<i32>)>, mpsc::UnboundedReceiver<(usize, u64, i32, Option<i32>)>),
    conditions: BTreeMap<String, PodCondition>,
    last_status: Option<serde_json::Value>,
    phase_override: Option<(String, String, String)>,
    start_time: Time,
    ports: Vec<u16>,
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""))
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Run the pod until it is deleted. Never returns an error: problems are reported on the
/// pod (status and events), as the kubelet does.
pub async fn run(ctx: Arc<NodeCtx>, pod: Pod, mut rx: mpsc::Receiver<Msg>) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = ctx.pods_dir.join(format!("{}_{}_{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""), uid));
    let mut w = Worker {
        ctx: ctx.clone(),
        dir,
        ctrs: Vec::new(),
        vols: Volumes::default(),
        exits: mpsc::unbounded_channel(),
        conditions: BTreeMap::new(),
        last_status: None,
        phase_override: None,
        start_time: pod.status.as_ref().and_then(|s| s.start_time.clone()).unwrap_or_else(now),
        ports: Vec::new(),
        pod,
    };
    if w.pod.metadata.deletion_timestamp.is_some() {
        w.finalize().await;
        return;
    }
    if !w.admit().await {
        // Rejected: wait for the pod to be deleted, then finish it.
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Update(p) if p.metadata.deletion_timestamp.is_some() => {
                    w.pod = *p;
                    w.finalize().await;
                    return;
                }
                Msg::Update(p) => w.pod = *p,
                Msg::Gone => return,
            }
        }
        return;
    }
    w.prepare(&mut rx).await;
    w.main_loop(rx).await;
}

impl Worker {
    async fn event(&self, kind: &str, reason: &str, message: &str) {
        super::event(&self.ctx, &self.pod, kind, reason, message).await;
    }

    /// The kubelet's admission: supported features and free ports. Reports a rejection
    /// as phase Failed with a reason and an event.
    async fn admit(&mut self) -> bool {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let sidecar = spec.init_containers.iter().flatten().find(|c| c.restart_policy.as_deref() == Some("Always"));
        let reject = if let Some(c) = sidecar {
            Some((
                "UnsupportedFeature",
                format!("init container {}: sidecar containers (restartPolicy: Always) are not supported by the local backend", c.name),
            ))
        } else {
            let mut wanted = Vec::new();
            for c in &spec.containers {
                for p in c.ports.iter().flatten() {
                    if let Ok(port) = u16::try_from(p.container_port) {
                        wanted.push(port);
                    }
                }
            }
            let me = key(&self.pod);
            let mut used = self.ctx.ports.lock().expect("ports lock");
            match wanted.iter().find_map(|p| used.get(p).filter(|owner| **owner != me).map(|owner| (*p, owner.clone()))) {
                Some((port, owner)) => Some((
                    "PortConflict",
                    format!("port {port} is already used on node {} by pod {owner} (pods share the node's address on the local backend)", self.ctx.node),
                )),
                None => {
                    for p in &wanted {
                        used.insert(*p, me.clone());
                    }
                    self.ports = wanted;
                    None
                }
            }
        };
        match reject {
            None => true,
            Some((reason, message)) => {
                self.event("Warning", reason, &message).await;
                self.phase_override = Some(("Failed".into(), reason.into(), message));
                self.push_status().await;
                false
            }
        }
    }

    /// Volumes (retried until they can be written) and images.
    async fn prepare(&mut self, rx: &mut mpsc::Receiver<Msg>) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let started = Instant::now();
        let inits = spec.init_containers.clone().unwrap_or_default();
        let initialized = inits.is_empty();
        self.ctrs = inits
            .iter()
            .map(|c| (c, true))
            .chain(spec.containers.iter().map(|c| (c, false)))
            .enumerate()
            .map(|(i, (c, init))| {
                let image = self.ctx.images.resolve(c.image.as_deref().unwrap_or("")).cloned();
                // The first init container (or, without any, every container) is due now;
                // the rest wait for the one before them.
                let due = i == 0 || (initialized && !init);
                Ctr {
                    init,
                    image,
                    pid: None,
                    cgroup: None,
                    generation: 0,
                    started_at: None,
                    running_since: None,
                    restart_count: 0,
                    last_terminated: None,
                    terminated: None,
                    waiting: Some((if due { "ContainerCreating" } else { "PodInitializing" }.into(), String::new())),
                    restart_at: due.then_some(started),
                    backoff: BACKOFF_START,
                    readiness: None,
                    liveness: None,
                    startup: None,
                    log: self.dir.join("logs").join(format!("{}.log", c.name)),
                    spec: c.clone(),
                }
            })
            .collect();
        self.set_condition("PodScheduled", true, None);
        self.set_condition("PodReadyToStartContainers", false, None);
        self.set_condition("Initialized", initialized, (!initialized).then_some("ContainersNotInitialized"));
        self.push_status().await;
        loop {
            match volumes::materialize(&self.ctx.client, &self.pod, &self.dir).await {
                Ok(v) => {
                    self.vols = v;
                    break;
                }
                Err(e) => {
                    self.event("Warning", "FailedMount", &e).await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        msg = rx.recv() => match msg {
                            Some(Msg::Update(p)) => {
                                let deleting = p.metadata.deletion_timestamp.is_some();
                                self.pod = *p;
                                if deleting {
                                    return;
                                }
                            }
                            Some(Msg::Gone) | None => return,
                        }
                    }
                }
            }
        }
        self.set_condition("PodReadyToStartContainers", true, None);
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].restart_at.is_some() {
                self.hold_if_no_image(i).await;
            }
        }
    }

    /// A container whose turn came but whose image cannot run waits with `ErrImagePull`.
    async fn hold_if_no_image(&mut self, i: usize) {
        let c = &mut self.ctrs[i];
        if let Err(e) = &c.image {
            let (msg, name) = (e.clone(), c.spec.name.clone());
            c.waiting = Some(("ErrImagePull".into(), msg.clone()));
            c.restart_at = None;
            self.event("Warning", "Failed", &format!("container {name}: {msg}")).await;
        }
    }

    async fn main_loop(mut self, mut rx: mpsc::Receiver<Msg>) {
        let http = self.ctx.probe_http.clone();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.pod.metadata.deletion_timestamp.is_some() {
                self.terminate(None).await;
                self.finalize().await;
                return;
            }
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Update(p)) => {
                        // Another writer changed a condition this node reports (the
                        // node-lifecycle controller marks the pods of a silent node not
                        // Ready): report ours again, as the kubelet's status manager does.
                        if self.conditions_differ(&p) {
                            self.last_status = None;
                        }
                        self.pod = *p;
                    }
                    Some(Msg::Gone) | None => {
                        self.terminate(Some(Duration::ZERO)).await;
                        self.cleanup();
                        return;
                    }
                },
                Some((idx, generation, code, signal)) = self.exits.1.recv() => {
                    self.on_exit(idx, generation, code, signal).await;
                }
                _ = tick.tick() => {
                    self.start_due().await;
                    self.run_probes(&http).await;
                    self.renew_tokens().await;
                }
            }
            self.push_status().await;
        }
    }

    async fn start_due(&mut self) {
        let now_i = Instant::now();
        for i in 0..self.ctrs.len() {
            let due = self.ctrs[i].pid.is_none() && self.ctrs[i].restart_at.is_some_and(|t| t <= now_i) && self.ctrs[i].image.is_ok();
            if due && let Err(e) = self.start(i).await {
                let c = &mut self.ctrs[i];
                c.waiting = Some(("CreateContainerConfigError".into(), e.clone()));
                c.restart_at = Some(Instant::now() + c.backoff);
                c.backoff = (c.backoff * 2).min(BACKOFF_MAX);
                let name = c.spec.name.clone();
                self.event("Warning", "Failed", &format!("container {name}: {e}")).await;
            }
        }
    }

    async fn start(&mut self, i: usize) -> Result<(), String> {
        let ctx = self.ctx.clone();
        let spec = self.ctrs[i].spec.clone();
        let image = self.ctrs[i].image.clone()?;
        let env = env::build(&ctx.client, &self.pod, &spec, (&ctx.apiserver.0, ctx.apiserver.1)).await?;
        let vars: BTreeMap<String, String> = env.iter().cloned().collect();
        let expand = |v: &[String]| v.iter().map(|a| env::expand(a, &vars)).collect::<Vec<_>>();
        let argv = ctx.images.argv(&image, &expand(spec.command.as_deref().unwrap_or(&[])), &expand(spec.args.as_deref().unwrap_or(&[])))?;
        let mounts = volumes::mounts(&self.vols, &spec)?;
        let generation = self.ctrs[i].generation + 1;
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let cgroup = ctx.cgroup.join(&uid).join(format!("{}-{generation}", spec.name));
        let exec = ExecSpec {
            argv,
            env,
            cwd: spec.working_dir.as_ref().map(PathBuf::from),
            netns: Some(ctx.netns.clone()),
            cgroup: None,
            scratch: Some(self.dir.join("scratch").join(format!("{}-{generation}", spec.name))),
            mounts,
        };
        let name = format!("{}/{}/{}/{}", ctx.cluster, ctx.node, key(&self.pod), spec.name);
        let log = self.ctrs[i].log.clone();
        let mut proc = process::spawn(&ctx.firedrill, &ctx.run_dir, &name, &cgroup, exec, &log).map_err(|e| e.to_string())?;
        let tx = self.exits.0.clone();
        tokio::spawn(async move {
            use std::os::unix::process::ExitStatusExt;
            let (code, signal) = match proc.child.wait().await {
                Ok(st) => (st.code().unwrap_or(128 + st.signal().unwrap_or(0)), st.signal()),
                Err(_) => (-1, None),
            };
            let _ = tx.send((i, generation, code, signal));
        });
        let started = Instant::now();
        let c = &mut self.ctrs[i];
        c.generation = generation;
        c.pid = Some(proc.pid);
        c.cgroup = Some(cgroup);
        c.started_at = Some(now());
        c.running_since = Some(started);
        c.waiting = None;
        c.terminated = None;
        c.restart_at = None;
        c.readiness = spec.readiness_probe.as_ref().map(|p| ProbeState::new(p, started));
        c.liveness = spec.liveness_probe.as_ref().map(|p| ProbeState::new(p, started));
        c.startup = spec.startup_probe.as_ref().map(|p| ProbeState::new(p, started));
        let msg = format!("Started container {} (pid {})", spec.name, proc.pid);
        self.event("Normal", "Started", &msg).await;
        Ok(())
    }

    async fn on_exit(&mut self, i: usize, generation: u64, code: i32, signal: Option<i32>) {
        let policy = self.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
        let Some(c) = self.ctrs.get_mut(i) else { return };
        if c.generation != generation || c.pid.is_none() {
            return;
        }
        if let Some(cg) = c.cgroup.take() {
            process::kill_cgroup(&cg).await;
            process::remove_cgroup(&cg).await;
        }
        let message = if code != 0 { tail(&c.log, 5) } else { None };
        let term = ContainerStateTerminated {
            exit_code: code,
            signal,
            reason: Some(if code == 0 { "Completed".into() } else { "Error".into() }),
            message,
            started_at: c.started_at.clone(),
            finished_at: Some(now()),
            container_id: c.pid.map(|p| format!("firedrill://{p}")),
        };
        c.pid = None;
        c.readiness = None;
        c.liveness = None;
        c.startup = None;
        // An init container is restarted only when it failed, and not under `Never`.
        let restart = if c.init { code != 0 && policy != "Never" } else { policy == "Always" || (policy == "OnFailure" && code != 0) };
        if c.running_since.is_some_and(|t| t.elapsed() >= BACKOFF_RESET) {
            c.backoff = BACKOFF_START;
        }
        c.running_since = None;
        let name = c.spec.name.clone();
        if restart {
            c.restart_count += 1;
            c.last_terminated = Some(term);
            c.terminated = None;
            c.waiting = Some(("CrashLoopBackOff".into(), format!("back-off {:?} restarting failed container {name}", c.backoff)));
            c.restart_at = Some(Instant::now() + c.backoff);
            c.backoff = (c.backoff * 2).min(BACKOFF_MAX);
            let msg = format!("container {name} exited with {code}; restarting");
            self.event("Warning", "BackOff", &msg).await;
        } else {
            let init_done = c.init && code == 0;
            c.terminated = Some(term);
            c.waiting = None;
            c.restart_at = None;
            if init_done {
                self.next_after_init(i).await;
            }
        }
    }

    /// Init container `i` completed: start the next one, or, after the last, every
    /// container.
    async fn next_after_init(&mut self, i: usize) {
        let now_i = Instant::now();
        let next: Vec<usize> = match self.ctrs.get(i + 1) {
            Some(c) if c.init => vec![i + 1],
            _ => {
                self.set_condition("Initialized", true, None);
                (i + 1..self.ctrs.len()).collect()
            }
        };
        for j in next {
            self.ctrs[j].restart_at = Some(now_i);
            self.ctrs[j].waiting = Some(("ContainerCreating".into(), String::new()));
            self.hold_if_no_image(j).await;
        }
    }

    async fn run_probes(&mut self, http: &reqwest::Client) {
        let now_i = Instant::now();
        let ip = self.ctx.ip;
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].pid.is_none() {
                continue;
            }
            let spec = self.ctrs[i].spec.clone();
            // Startup first; readiness and liveness only once it passed.
            if let Some(s) = self.ctrs[i].startup.as_mut()
                && s.passing != Some(true)
                && s.due(now_i)
            {
                let r = probes::run(&s.probe, &spec, ip, http).await;
                s.record(r, Instant::now());
                if s.passing == Some(false) {
                    let err = s.last_error.clone().unwrap_or_default();
                    self.event("Warning", "Unhealthy", &format!("Startup probe failed: {err}")).await;
                    self.kill_for_restart(i).await;
                }
                continue;
            }
            if !self.ctrs[i].startup_done() {
                continue;
            }
            if let Some(r) = self.ctrs[i].readiness.as_mut()
                && r.due(now_i)
            {
                let res = probes::run(&r.probe, &spec, ip, http).await;
                if r.record(res, Instant::now()) && r.passing == Some(false) {
                    let err = r.last_error.clone().unwrap_or_default();
                    self.event("Warning", "Unhealthy", &format!("Readiness probe failed: {err}")).await;
                }
            }
            if let Some(l) = self.ctrs[i].liveness.as_mut()
                && l.due(now_i)
            {
                let res = probes::run(&l.probe, &spec, ip, http).await;
                l.record(res, Instant::now());
                if l.passing == Some(false) {
                    let err = l.last_error.clone().unwrap_or_default();
                    self.event("Warning", "Unhealthy", &format!("Liveness probe failed: {err}; container {} will be restarted", spec.name)).await;
                    self.kill_for_restart(i).await;
                }
            }
        }
    }

    /// Stop a container that failed its liveness or startup probe; `on_exit` restarts it.
    async fn kill_for_restart(&mut self, i: usize) {
        let grace = self.grace(None);
        let c = &mut self.ctrs[i];
        c.liveness = None;
        c.startup = None;
        c.readiness = None;
        if let Some(pid) = c.pid {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
            if let Some(cg) = c.cgroup.clone() {
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    process::kill_cgroup(&cg).await;
                });
            }
        }
    }

    async fn renew_tokens(&mut self) {
        let now_i = Instant::now();
        for t in std::mem::take(&mut self.vols.tokens) {
            if t.renew_at > now_i {
                self.vols.tokens.push(t);
                continue;
            }
            match volumes::write_token(&self.ctx.client, &self.pod, t.clone()).await {
                Ok(t) => self.vols.tokens.push(t),
                Err(e) => {
                    self.event("Warning", "FailedMount", &format!("renewing a service-account token: {e}")).await;
                    self.vols.tokens.push(volumes::TokenFile { renew_at: now_i + Duration::from_secs(5), ..t });
                }
            }
        }
    }

    fn grace(&self, override_: Option<Duration>) -> Duration {
        override_.unwrap_or_else(|| {
            let secs =
                self.pod.metadata.deletion_grace_period_seconds.or(self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds)).unwrap_or(30);
            Duration::from_secs(secs.max(0) as u64)
        })
    }

    /// SIGTERM every running container, wait for them up to the grace period, SIGKILL the
    /// rest (their whole cgroups).
    async fn terminate(&mut self, grace: Option<Duration>) {
        let grace = self.grace(grace);
        let running: Vec<usize> = (0..self.ctrs.len()).filter(|i| self.ctrs[*i].pid.is_some()).collect();
        if running.is_empty() {
            return;
        }
        for &i in &running {
            if let Some(pid) = self.ctrs[i].pid {
                let name = self.ctrs[i].spec.name.clone();
                self.event("Normal", "Killing", &format!("Stopping container {name}")).await;
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut killed = false;
        loop {
            let alive: Vec<usize> = (0..self.ctrs.len()).filter(|i| self.ctrs[*i].pid.is_some()).collect();
            if alive.is_empty() {
                break;
            }
            if !killed && tokio::time::Instant::now() >= deadline {
                for &i in &alive {
                    if let Some(cg) = &self.ctrs[i].cgroup {
                        process::kill_cgroup(cg).await;
                    }
                }
                killed = true;
            }
            let wait_until = if killed { tokio::time::Instant::now() + Duration::from_secs(5) } else { deadline };
            match tokio::time::timeout_at(wait_until, self.exits.1.recv()).await {
                Ok(Some((i, generation, code, signal))) => {
                    // Terminating: record the exit, never restart.
                    if let Some(c) = self.ctrs.get_mut(i)
                        && c.generation == generation
                    {
                        c.restart_at = None;
                        if let Some(cg) = c.cgroup.take() {
                            process::kill_cgroup(&cg).await;
                            process::remove_cgroup(&cg).await;
                        }
                        c.terminated = Some(ContainerStateTerminated {
                            exit_code: code,
                            signal,
                            reason: Some(if code == 0 { "Completed".into() } else { "Error".into() }),
                            started_at: c.started_at.clone(),
                            finished_at: Some(now()),
                            ..Default::default()
                        });
                        c.pid = None;
                    }
                }
                Ok(None) => break,
                Err(_) if killed => {
                    tracing::warn!(pod = %key(&self.pod), "containers did not exit 5 s after SIGKILL");
                    break;
                }
                Err(_) => {}
            }
        }
    }

    fn cleanup(&mut self) {
        let me = key(&self.pod);
        self.ctx.ports.lock().expect("ports lock").retain(|_, owner| *owner != me);
        // Secrets and tokens do not outlive the pod; logs do (for the report).
        let _ = std::fs::remove_dir_all(self.dir.join("volumes"));
        let _ = std::fs::remove_dir_all(self.dir.join("scratch"));
    }

    /// The kubelet's last word on a pod: once its containers are gone, delete it for good.
    async fn finalize(&mut self) {
        self.cleanup();
        let uid = self.pod.metadata.uid.clone();
        if let Some(cg) = uid.as_ref().map(|u| self.ctx.cgroup.join(u)) {
            process::kill_cgroup(&cg).await;
            process::remove_cgroup(&cg).await;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), self.pod.metadata.namespace.as_deref().unwrap_or(""));
        let dp = DeleteParams { grace_period_seconds: Some(0), preconditions: Some(Preconditions { uid, resource_version: None }), ..Default::default() };
        if let Err(e) = api.delete(self.pod.metadata.name.as_deref().unwrap_or(""), &dp).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
        {
            tracing::warn!(pod = %key(&self.pod), error = %e, "final delete failed");
        }
    }

    fn set_condition(&mut self, kind: &str, status: bool, reason: Option<&str>) {
        let s = if status { "True" } else { "False" };
        let changed = self.conditions.get(kind).map(|c| c.status != s).unwrap_or(true);
        if changed {
            self.conditions.insert(
                kind.to_string(),
                PodCondition {
                    type_: kind.to_string(),
                    status: s.to_string(),
                    last_transition_time: Some(now()),
                    reason: reason.map(String::from),
                    ..Default::default()
                },
            );
        }
    }

    /// Whether `api` holds, for a condition this node reports, another status than ours.
    fn conditions_differ(&self, api: &Pod) -> bool {
        let theirs = api.status.as_ref().and_then(|s| s.conditions.as_ref());
        self.conditions.values().any(|ours| {
            let found = theirs.and_then(|cs| cs.iter().find(|c| c.type_ == ours.type_));
            found.is_none_or(|c| c.status != ours.status)
        })
    }

    fn status(&mut self) -> PodStatus {
        let mut containers = self.ctrs.iter().filter(|c| !c.init).peekable();
        let all_ready = containers.peek().is_some() && containers.all(|c| c.ready());
        self.set_condition("ContainersReady", all_ready, if all_ready { None } else { Some("ContainersNotReady") });
        self.set_condition("Ready", all_ready, if all_ready { None } else { Some("ContainersNotReady") });
        let mains: Vec<&Ctr> = self.ctrs.iter().filter(|c| !c.init).collect();
        let inits: Vec<&Ctr> = self.ctrs.iter().filter(|c| c.init).collect();
        let status_of = |c: &&Ctr| {
            let state = if c.pid.is_some() {
                ContainerState { running: Some(ContainerStateRunning { started_at: c.started_at.clone() }), ..Default::default() }
            } else if let Some(t) = &c.terminated {
                ContainerState { terminated: Some(t.clone()), ..Default::default() }
            } else {
                let (reason, message) = c.waiting.clone().unwrap_or_default();
                ContainerState {
                    waiting: Some(ContainerStateWaiting { reason: Some(reason), message: (!message.is_empty()).then_some(message) }),
                    ..Default::default()
                }
            };
            ContainerStatus {
                name: c.spec.name.clone(),
                image: c.spec.image.clone().unwrap_or_default(),
                image_id: c.image.as_ref().map(|i| format!("firedrill-local://{}", i.binary.display())).unwrap_or_default(),
                container_id: c.pid.map(|p| format!("firedrill://{p}")),
                ready: c.ready(),
                started: Some(c.pid.is_some() && c.startup_done()),
                restart_count: c.restart_count,
                state: Some(state),
                last_state: c.last_terminated.clone().map(|t| ContainerState { terminated: Some(t), ..Default::default() }),
                ..Default::default()
            }
        };
        let statuses: Vec<ContainerStatus> = mains.iter().map(status_of).collect();
        let init_statuses: Vec<ContainerStatus> = inits.iter().map(status_of).collect();
        let init_failed = inits.iter().any(|c| c.terminated.as_ref().is_some_and(|t| t.exit_code != 0));
        let initialized = inits.iter().all(|c| c.completed());
        let policy = self.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
        let (phase, reason, message) = if let Some((p, r, m)) = &self.phase_override {
            (p.clone(), Some(r.clone()), Some(m.clone()))
        } else if init_failed {
            // Only under `Never` does a failed init container stay failed: the pod is.
            ("Failed".to_string(), None, None)
        } else if !initialized {
            ("Pending".to_string(), None, None)
        } else {
            let all_done = !mains.is_empty() && mains.iter().all(|c| c.terminated.is_some());
            let any_started = mains.iter().any(|c| c.pid.is_some() || c.restart_count > 0 || c.terminated.is_some());
            let phase = if all_done && policy != "Always" {
                if mains.iter().all(|c| c.terminated.as_ref().is_some_and(|t| t.exit_code == 0)) { "Succeeded" } else { "Failed" }
            } else if any_started && mains.iter().all(|c| c.pid.is_some() || c.restart_count > 0 || c.terminated.is_some()) {
                "Running"
            } else {
                "Pending"
            };
            (phase.to_string(), None, None)
        };
        let ip = self.ctx.ip.to_string();
        PodStatus {
            phase: Some(phase),
            reason,
            message,
            conditions: Some(self.conditions.values().cloned().collect()),
            container_statuses: Some(statuses),
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            host_ip: Some(ip.clone()),
            host_ips: Some(vec![HostIP { ip: ip.clone() }]),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip }]),
            start_time: Some(self.start_time.clone()),
            qos_class: Some("BestEffort".into()),
            ..Default::default()
        }
    }

    async fn push_status(&mut self) {
        let status = self.status();
        let value = serde_json::json!({ "status": status });
        if self.last_status.as_ref() == Some(&value) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), self.pod.metadata.namespace.as_deref().unwrap_or(""));
        match api.patch_status(self.pod.metadata.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Merge(&value)).await {
            Ok(_) => self.last_status = Some(value),
            Err(e) => tracing::debug!(pod = %key(&self.pod), error = %e, "status update failed; retrying on the next change"),
        }
    }
}

/// The last `n` lines of a log, for a terminated container's message.
fn tail(path: &std::path::Path, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let out = lines[start..].join("\n");
    (!out.is_empty()).then_some(out)
}
