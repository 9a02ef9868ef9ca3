//! The control plane of a local cluster: certificates, kubeconfigs and the command lines
//! of etcd, kube-apiserver, kube-controller-manager and kube-scheduler, all real upstream
//! binaries run in the control-plane nodes' network namespaces.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::pki::{self, Ca, Leaf};
use super::shim::ExecSpec;
use super::state::{ClusterInfo, RunInfo};
use crate::backend::BackendError;
use crate::fixtures::Binaries;

/// The drills' node-failure timings: a lost node is NotReady after this long without a
/// lease renewal (upstream default 50 s) ...
pub const NODE_MONITOR_GRACE: &str = "20s";
/// ... and its pods are evicted this long after that (upstream default 300 s).
pub const EVICTION_TOLERATION_SECONDS: &str = "20";

/// Generate the cluster's PKI and kubeconfigs. Idempotent: an existing CA is reused.
pub fn prepare(run: &RunInfo, c: &ClusterInfo) -> Result<(), BackendError> {
    let pki_dir = c.pki();
    let ca = if pki_dir.join("ca.key").is_file() { Ca::load(&pki_dir)? } else { Ca::create(&pki_dir, &format!("firedrill {} {}", run.id, c.name))? };

    let mut ips: Vec<IpAddr> = c.nodes.iter().filter(|n| c.apiserver_nodes.contains(&n.name)).map(|n| IpAddr::V4(n.ip)).collect();
    if let Some(lb) = &c.apiserver_lb {
        ips.push(IpAddr::V4(run.host(lb)?.ip));
    }
    ips.push("127.0.0.1".parse().expect("literal"));
    ca.issue_to(
        &pki_dir,
        "apiserver",
        &Leaf {
            common_name: "kube-apiserver".into(),
            dns_names: vec!["kubernetes".into(), "kubernetes.default".into(), "kubernetes.default.svc".into(), "localhost".into()],
            ips,
            server: true,
            ..Default::default()
        },
    )?;
    if !pki_dir.join("sa.key").is_file() {
        let (private, public) = pki::key_pair()?;
        pki::write_private(&pki_dir.join("sa.key"), &private)?;
        pki::write_public(&pki_dir.join("sa.pub"), &public)?;
    }
    let server = c.server.as_str();
    let client = |cn: &str, org: Option<&str>| -> Result<pki::Pair, BackendError> {
        ca.issue(&Leaf { common_name: cn.into(), organizations: org.into_iter().map(String::from).collect(), client: true, ..Default::default() })
    };
    pki::write_kubeconfig(&c.admin_kubeconfig, &c.name, server, &ca.cert_pem, "admin", &client("firedrill-admin", Some("system:masters"))?)?;
    pki::write_kubeconfig(
        &c.dir.join("controller-manager.kubeconfig"),
        &c.name,
        server,
        &ca.cert_pem,
        "kcm",
        &client("system:kube-controller-manager", None)?,
    )?;
    pki::write_kubeconfig(&c.dir.join("scheduler.kubeconfig"), &c.name, server, &ca.cert_pem, "scheduler", &client("system:kube-scheduler", None)?)?;
    for n in &c.nodes {
        let pair = client(&format!("system:node:{}", n.name), Some("system:nodes"))?;
        pki::write_kubeconfig(&node_kubeconfig(c, &n.name), &c.name, server, &ca.cert_pem, &n.name, &pair)?;
    }
    let auth = authentication_config(c);
    if !auth.is_file() {
        pki::write_public(&auth, EMPTY_AUTHENTICATION_CONFIG)?;
    }
    Ok(())
}

/// Structured authentication configuration with no JWT issuer. Components that bring an
/// issuer rewrite the file; kube-apiserver reloads it on change.
pub const EMPTY_AUTHENTICATION_CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt: []\n";

pub fn authentication_config(c: &ClusterInfo) -> PathBuf {
    c.dir.join("authentication-config.yaml")
}

pub fn node_kubeconfig(c: &ClusterInfo, node: &str) -> PathBuf {
    c.dir.join("nodes").join(format!("{node}.kubeconfig"))
}

/// A control-plane process: its name, command line, network namespace and log.
pub struct Component {
    pub name: String,
    pub spec: ExecSpec,
    pub log: PathBuf,
    pub storage: bool,
}

fn spec(argv: Vec<String>, netns: &str) -> ExecSpec {
    ExecSpec { argv, env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())], netns: Some(netns.to_string()), ..Default::default() }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// etcd members, kube-apiservers, controller-managers and schedulers of a cluster, in
/// start order.
pub fn components(c: &ClusterInfo, bin: &Binaries) -> Result<Vec<Component>, BackendError> {
    let pki = c.pki();
    let logs = c.dir.join("logs");
    let ha = c.apiserver_nodes.len() > 1;
    let mut out = Vec::new();

    let members: Vec<(String, String)> =
        c.etcd_nodes.iter().map(|n| c.node(n).map(|node| (n.clone(), format!("http://{}:2380", node.ip)))).collect::<Result<_, _>>()?;
    let initial = members.iter().map(|(n, u)| format!("{n}={u}")).collect::<Vec<_>>().join(",");
    for (name, peer) in &members {
        let node = c.node(name)?;
        let data = c.dir.join(format!("etcd-{name}"));
        out.push(Component {
            name: format!("{}/etcd-{name}", c.name),
            spec: spec(
                vec![
                    s(&bin.etcd),
                    format!("--name={name}"),
                    format!("--data-dir={}", s(&data)),
                    format!("--listen-client-urls=http://127.0.0.1:2379,http://{}:2379", node.ip),
                    format!("--advertise-client-urls=http://{}:2379", node.ip),
                    format!("--listen-peer-urls={peer}"),
                    format!("--initial-advertise-peer-urls={peer}"),
                    format!("--initial-cluster={initial}"),
                    format!("--initial-cluster-token={}", c.name),
                    "--initial-cluster-state=new".into(),
                    "--log-level=warn".into(),
                    "--quota-backend-bytes=1073741824".into(),
                    // Throwaway clusters: a killed member keeps what it wrote (the page cache
                    // survives a process), and nothing waits on the VM's disk.
                    "--unsafe-no-fsync".into(),
                ],
                &node.netns,
            ),
            log: logs.join(format!("etcd-{name}.log")),
            storage: true,
        });
    }
    let etcd_servers = members.iter().map(|(n, _)| c.node(n).map(|node| format!("http://{}:2379", node.ip))).collect::<Result<Vec<_>, _>>()?.join(",");

    for name in &c.apiserver_nodes {
        let node = c.node(name)?;
        out.push(Component {
            name: format!("{}/kube-apiserver-{name}", c.name),
            spec: spec(apiserver_args(c, bin, &etcd_servers, &node.ip.to_string(), 6443), &node.netns),
            log: logs.join(format!("kube-apiserver-{name}.log")),
            storage: false,
        });
    }
    for name in &c.apiserver_nodes {
        let node = c.node(name)?;
        let kc = c.dir.join("controller-manager.kubeconfig");
        out.push(Component {
            name: format!("{}/kube-controller-manager-{name}", c.name),
            spec: spec(
                vec![
                    s(&bin.kube_controller_manager),
                    format!("--kubeconfig={}", s(&kc)),
                    format!("--authentication-kubeconfig={}", s(&kc)),
                    format!("--authorization-kubeconfig={}", s(&kc)),
                    format!("--bind-address={}", node.ip),
                    "--secure-port=10257".into(),
                    format!("--root-ca-file={}", s(&pki.join("ca.crt"))),
                    format!("--service-account-private-key-file={}", s(&pki.join("sa.key"))),
                    format!("--cluster-signing-cert-file={}", s(&pki.join("ca.crt"))),
                    format!("--cluster-signing-key-file={}", s(&pki.join("ca.key"))),
                    format!("--cluster-name={}", c.name),
                    format!("--service-cluster-ip-range={}", c.service_range),
                    "--use-service-account-credentials=true".into(),
                    format!("--leader-elect={ha}"),
                    format!("--node-monitor-grace-period={NODE_MONITOR_GRACE}"),
                    "--node-monitor-period=2s".into(),
                    "--v=1".into(),
                ],
                &node.netns,
            ),
            log: logs.join(format!("kube-controller-manager-{name}.log")),
            storage: false,
        });
        let kc = c.dir.join("scheduler.kubeconfig");
        out.push(Component {
            name: format!("{}/kube-scheduler-{name}", c.name),
            spec: spec(
                vec![
                    s(&bin.kube_scheduler),
                    format!("--kubeconfig={}", s(&kc)),
                    format!("--authentication-kubeconfig={}", s(&kc)),
                    format!("--authorization-kubeconfig={}", s(&kc)),
                    format!("--bind-address={}", node.ip),
                    "--secure-port=10259".into(),
                    format!("--leader-elect={ha}"),
                    "--v=1".into(),
                ],
                &node.netns,
            ),
            log: logs.join(format!("kube-scheduler-{name}.log")),
            storage: false,
        });
    }
    Ok(out)
}

/// kube-apiserver's command line; `port` differs for the extra server the cold-start
/// probe starts next to the running one.
pub fn apiserver_args(c: &ClusterInfo, bin: &Binaries, etcd_servers: &str, advertise: &str, port: u16) -> Vec<String> {
    let pki = c.pki();
    vec![
        s(&bin.kube_apiserver),
        format!("--etcd-servers={etcd_servers}"),
        "--bind-address=0.0.0.0".into(),
        format!("--secure-port={port}"),
        format!("--advertise-address={advertise}"),
        format!("--tls-cert-file={}", s(&pki.join("apiserver.crt"))),
        format!("--tls-private-key-file={}", s(&pki.join("apiserver.key"))),
        format!("--client-ca-file={}", s(&pki.join("ca.crt"))),
        format!("--service-account-key-file={}", s(&pki.join("sa.pub"))),
        format!("--service-account-signing-key-file={}", s(&pki.join("sa.key"))),
        format!("--service-account-issuer={}", c.server),
        format!("--service-cluster-ip-range={}", c.service_range),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        format!("--authentication-config={}", s(&authentication_config(c))),
        "--allow-privileged=true".into(),
        format!("--default-not-ready-toleration-seconds={EVICTION_TOLERATION_SECONDS}"),
        format!("--default-unreachable-toleration-seconds={EVICTION_TOLERATION_SECONDS}"),
        "--profiling=false".into(),
        "--v=1".into(),
    ]
}

/// The etcd client URLs of a cluster.
pub fn etcd_servers(c: &ClusterInfo) -> Result<String, BackendError> {
    Ok(c.etcd_nodes.iter().map(|n| c.node(n).map(|node| format!("http://{}:2379", node.ip))).collect::<Result<Vec<_>, _>>()?.join(","))
}

/// An HTTPS client trusting the cluster CA and presenting the admin certificate.
pub fn admin_http(c: &ClusterInfo) -> Result<reqwest::Client, BackendError> {
    admin_http_builder(c)?.build().map_err(|e| BackendError::Setup(format!("HTTP client: {e}")))
}

/// As [`admin_http`], for the controller-manager's and scheduler's own ports: they serve a
/// certificate they signed themselves at start-up, which no file of the run holds.
pub fn admin_http_self_signed(c: &ClusterInfo) -> Result<reqwest::Client, BackendError> {
    admin_http_builder(c)?.danger_accept_invalid_certs(true).build().map_err(|e| BackendError::Setup(format!("HTTP client: {e}")))
}

fn admin_http_builder(c: &ClusterInfo) -> Result<reqwest::ClientBuilder, BackendError> {
    let pki = c.pki();
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| BackendError::io(&p, e));
    let ca = reqwest::Certificate::from_pem(&read(pki.join("ca.crt"))?).map_err(|e| BackendError::Setup(format!("cluster CA: {e}")))?;
    let kubeconfig = std::fs::read_to_string(&c.admin_kubeconfig).map_err(|e| BackendError::io(&c.admin_kubeconfig, e))?;
    let identity = admin_identity_pem(&kubeconfig)?;
    let id = reqwest::Identity::from_pem(identity.as_bytes()).map_err(|e| BackendError::Setup(format!("admin identity: {e}")))?;
    Ok(reqwest::Client::builder().add_root_certificate(ca).identity(id).timeout(Duration::from_secs(5)))
}

/// The admin certificate and key (PEM, concatenated) embedded in a kubeconfig we wrote.
fn admin_identity_pem(kubeconfig: &str) -> Result<String, BackendError> {
    use base64::Engine;
    let field = |name: &str| -> Result<String, BackendError> {
        let line = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .ok_or_else(|| BackendError::Setup(format!("admin kubeconfig has no {name}")))?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(line).map_err(|e| BackendError::Setup(format!("admin kubeconfig {name}: {e}")))?;
        String::from_utf8(bytes).map_err(|e| BackendError::Setup(format!("admin kubeconfig {name}: {e}")))
    };
    Ok(format!("{}{}", field("client-certificate-data")?, field("client-key-data")?))
}
