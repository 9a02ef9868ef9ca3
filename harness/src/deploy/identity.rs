//! The identity component: slapd on host `ldap`, dex as a Deployment in the topology's
//! first cluster, haproxy on host `lb` at the issuer address, and the cluster's API server
//! trusting dex through its structured authentication configuration.
//!
//! Where clusters are named by context (the existing backend) the hosts are pods of that
//! cluster (`host-pods.yaml`), the issuer is the first worker's address, and the API
//! server is left as the user configured it: it does not trust this issuer.
//!
//! Options (`fixtures/components/<name>/component.yaml`):
//! - `signing-key-rotation`: dex's `expiry.signingKeys` (default `10s`: short, so that
//!   rotation, and its stopping, are seen inside a drill's fault window);
//! - `apiserver-trusts`: `issuer-ca` (default) or `unrelated-ca`, which breaks the setup
//!   on purpose — the API server then cannot verify dex's certificate.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;

use super::{run_secret, vars};
use crate::backend::local::pki::{self, Ca, Leaf};
use crate::component::Component;
use crate::env::Env;
use crate::template;
use crate::wait::{self, Deadline};

/// The resource definitions the pinned dex's Kubernetes storage creates when it starts
/// (group `dex.coreos.com`).
const DEX_CRDS: [&str; 10] = [
    "authcodes.dex.coreos.com",
    "authrequests.dex.coreos.com",
    "connectors.dex.coreos.com",
    "devicerequests.dex.coreos.com",
    "devicetokens.dex.coreos.com",
    "oauth2clients.dex.coreos.com",
    "offlinesessionses.dex.coreos.com",
    "passwords.dex.coreos.com",
    "refreshtokens.dex.coreos.com",
    "signingkeies.dex.coreos.com",
];

/// The names of the cluster's resource definitions of dex's group.
async fn dex_crds(client: &kube::Client) -> Result<std::collections::BTreeSet<String>, String> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let list = api.list(&Default::default()).await.map_err(|e| format!("listing resource definitions: {e}"))?;
    Ok(list.items.into_iter().filter(|c| c.spec.group == "dex.coreos.com").filter_map(|c| c.metadata.name).collect())
}

fn crd(name: &str) -> crate::apply::Created {
    crate::apply::Created { api_version: "apiextensions.k8s.io/v1".into(), kind: "CustomResourceDefinition".into(), namespace: None, name: name.into() }
}

/// A user probes log in as.
#[derive(Clone, Debug)]
pub struct User {
    /// `local` (dex's password database) or `ldap`.
    pub connector: String,
    pub login: String,
    pub password: String,
}

/// What probes need to use the identity service.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The cluster running dex and trusting it.
    pub cluster: String,
    pub issuer: String,
    /// PEM of the CA that signed dex's certificate.
    pub ca_pem: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    /// By the names suites use (`local`, `ldap`).
    pub users: BTreeMap<String, User>,
    pub lb: Ipv4Addr,
    /// Where dex runs and keeps its storage objects.
    pub namespace: String,
    /// Whether the cluster's API server was configured to trust the issuer (not on
    /// clusters named by context, whose API servers firedrill does not configure).
    pub apiserver_trusts_issuer: bool,
}

const NAMESPACE: &str = "identity";
/// The port of the load balancer when it is a pod on a worker's network, where dex's
/// instances already serve on 5556.
const LB_POD_PORT: u16 = 5557;
/// Where the LDAP pod keeps its database (an emptyDir). Not under /var/lib: the local
/// backend overlays a missing mount path's parent, and its runs' directories are there.
const LDAP_POD_DATA: &str = "/srv/firedrill-ldap";

pub async fn deploy(env: &Env, c: &Component) -> Result<Identity, String> {
    let mut rotation = "10s".to_string();
    let mut trust_unrelated = false;
    for (k, v) in &c.options {
        match (k.as_str(), v.as_str()) {
            ("signing-key-rotation", v) => rotation = v.to_string(),
            ("apiserver-trusts", "issuer-ca") => {}
            ("apiserver-trusts", "unrelated-ca") => trust_unrelated = true,
            (k, v) => return Err(format!("unknown option {k}: {v} (known: signing-key-rotation, apiserver-trusts: issuer-ca|unrelated-ca)")),
        }
    }
    let cluster = env.clusters.first().ok_or("the environment has no cluster")?;
    let workers = schedulable_workers(&cluster.client).await?;
    if workers.len() < 2 {
        return Err(format!("dex runs 2 replicas on different nodes; cluster {} has {} schedulable node(s)", cluster.name, workers.len()));
    }
    let as_pods = env.existing().is_some();
    if as_pods && trust_unrelated {
        return Err("option apiserver-trusts: unrelated-ca needs an API server firedrill configures; clusters named by context keep their own".into());
    }
    let (lb, lb_port) = if as_pods { (workers[0].1, LB_POD_PORT) } else { (env.host("lb").map_err(|e| e.to_string())?, 5556) };
    let issuer = format!("https://{lb}:{lb_port}/dex");
    let ca_dir = env.harness_pki();
    let ca = if ca_dir.join("ca.key").is_file() { Ca::load(&ca_dir) } else { Ca::create(&ca_dir, &format!("firedrill {} harness", env.run_id)) }
        .map_err(|e| e.to_string())?;

    let local_password = run_secret(env, "identity", "local-password", 12)?;
    let users: BTreeMap<String, User> = [
        ("local".to_string(), User { connector: "local".into(), login: "alice@firedrill.test".into(), password: local_password.clone() }),
        ("ldap".to_string(), User { connector: "ldap".into(), login: "bob".into(), password: run_secret(env, "identity", "ldap-password", 12)? }),
    ]
    .into();
    let ldap_admin_password = run_secret(env, "identity", "ldap-admin-password", 12)?;
    let client_id = "firedrill".to_string();
    let client_secret = run_secret(env, "identity", "client-secret", 16)?;
    let redirect_uri = "http://127.0.0.1:5555/callback".to_string();
    let fixtures = env.paths.fixtures.join("components/identity");
    let read = |f: &str| std::fs::read_to_string(fixtures.join(f)).map_err(|e| format!("reading fixtures/components/identity/{f}: {e}"));

    let ldap_vars = |dir: &str, db: &str| {
        vars(&[
            ("dir", dir.to_string()),
            ("db", db.to_string()),
            ("ldap_admin_password", ldap_admin_password.clone()),
            ("ldap_login", users["ldap"].login.clone()),
            ("ldap_password", users["ldap"].password.clone()),
            ("ldap_email", "bob@firedrill.test".into()),
        ])
    };
    let servers: String = workers.iter().enumerate().map(|(i, (_, ip))| format!("  server dex-{i} {ip}:5556\n")).collect();
    let v = vars(&[("lb_ip", lb.to_string()), ("lb_port", lb_port.to_string()), ("servers", servers.trim_end().to_string())]);
    let haproxy_cfg = template::render("haproxy.cfg", &read("haproxy.cfg")?, &v)?;

    // The authentication provider: outside the cluster, or a pod of it.
    let ldap = if as_pods {
        let v = ldap_vars(LDAP_POD_DATA, LDAP_POD_DATA);
        let slapd_conf = template::render("slapd.conf", &read("slapd.conf")?, &v)?;
        let seed = template::render("seed.ldif", &read("seed.ldif")?, &v)?;
        let v = vars(&[
            ("slapd_conf", slapd_conf),
            ("seed_ldif", seed),
            ("data", LDAP_POD_DATA.into()),
            ("haproxy_cfg", haproxy_cfg.clone()),
            ("lb_node", workers[0].0.clone()),
            ("lb_port", lb_port.to_string()),
        ]);
        let manifests = template::render("host-pods.yaml", &read("host-pods.yaml")?, &v)?;
        // Kept (0600: it holds the directory's passwords) for whoever debugs the run.
        let rendered = env.run_dir.join("components/identity/host-pods.yaml");
        pki::write_private(&rendered, &manifests).map_err(|e| e.to_string())?;
        env.apply(cluster, &rendered.display().to_string(), &manifests).await?;
        ready_pod_ip(&cluster.client, "app=ldap").await?
    } else {
        let ldap = env.host("ldap").map_err(|e| e.to_string())?;
        let ldap_dir = env.run_dir.join("hosts/ldap");
        std::fs::create_dir_all(ldap_dir.join("db")).map_err(|e| format!("{}: {e}", ldap_dir.display()))?;
        let v = ldap_vars(&ldap_dir.display().to_string(), &ldap_dir.join("db").display().to_string());
        pki::write_private(&ldap_dir.join("slapd.conf"), &template::render("slapd.conf", &read("slapd.conf")?, &v)?).map_err(|e| e.to_string())?;
        pki::write_private(&ldap_dir.join("seed.ldif"), &template::render("seed.ldif", &read("seed.ldif")?, &v)?).map_err(|e| e.to_string())?;
        if !ldap_dir.join("db/data.mdb").exists() {
            let out = std::process::Command::new("/usr/sbin/slapadd")
                .arg("-f")
                .arg(ldap_dir.join("slapd.conf"))
                .arg("-l")
                .arg(ldap_dir.join("seed.ldif"))
                .output()
                .map_err(|e| format!("running slapadd: {e}"))?;
            if !out.status.success() {
                return Err(format!("slapadd: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        let slapd = vec![
            "/usr/sbin/slapd".to_string(),
            "-d".into(),
            "0".into(),
            "-h".into(),
            format!("ldap://{ldap}:389/"),
            "-f".into(),
            ldap_dir.join("slapd.conf").display().to_string(),
        ];
        env.add_host_process("ldap", "slapd", slapd, vec![("PATH".into(), "/usr/sbin:/usr/bin:/bin".into())], &[389]).await.map_err(|e| e.to_string())?;
        ldap
    };

    // dex.
    let mut ips: Vec<std::net::IpAddr> = workers.iter().map(|(_, w)| (*w).into()).collect();
    ips.push(lb.into());
    let tls = ca.issue(&Leaf { common_name: "dex".into(), ips, server: true, ..Default::default() }).map_err(|e| e.to_string())?;
    let hash = bcrypt::hash(&local_password, 10).map_err(|e| format!("hashing the local user's password: {e}"))?;
    let v = vars(&[
        ("issuer", issuer.clone()),
        ("signing_key_rotation", rotation),
        ("client_id", client_id.clone()),
        ("client_secret", client_secret.clone()),
        ("redirect_uri", redirect_uri.clone()),
        ("local_login", users["local"].login.clone()),
        ("local_password_hash", hash),
        ("ldap_ip", ldap.to_string()),
        ("ldap_admin_password", ldap_admin_password),
    ]);
    let dex_config = template::render("dex-config.yaml", &read("dex-config.yaml")?, &v)?;
    let v = vars(&[("tls_crt", tls.cert_pem.clone()), ("tls_key", tls.key_pem.clone()), ("dex_config", dex_config)]);
    let manifests = template::render("manifests.yaml", &read("manifests.yaml")?, &v)?;
    // Kept (0600: it holds dex's key) for whoever debugs the run.
    let rendered = env.run_dir.join("components/identity/manifests.yaml");
    pki::write_private(&rendered, &manifests).map_err(|e| e.to_string())?;
    // dex creates its storage's resource definitions itself; on clusters named by context,
    // the ones not there yet go to the run's ledger first, so that `down` removes them.
    let dex_crds_before = match env.existing() {
        Some(run) => {
            let before = dex_crds(&cluster.client).await?;
            for name in DEX_CRDS.iter().filter(|n| !before.contains(**n)) {
                run.note_created(&cluster.name, &crd(name)).map_err(|e| e.to_string())?;
            }
            Some(before)
        }
        None => None,
    };
    env.apply(cluster, &rendered.display().to_string(), &manifests).await?;

    // The load balancer at the issuer address (already a pod where the hosts are pods),
    // and the API server trusting the issuer (or, to break the setup on purpose, a CA that
    // did not sign its certificate).
    if !as_pods {
        let cfg = env.run_dir.join("hosts/lb/haproxy.cfg");
        pki::write_public(&cfg, &haproxy_cfg).map_err(|e| e.to_string())?;
        let haproxy = vec!["/usr/sbin/haproxy".to_string(), "-db".into(), "-f".into(), cfg.display().to_string()];
        env.add_host_process("lb", "haproxy", haproxy, vec![("PATH".into(), "/usr/sbin:/usr/bin:/bin".into())], &[5556]).await.map_err(|e| e.to_string())?;
        let trusted = if trust_unrelated { Ca::generate("unrelated CA").map_err(|e| e.to_string())?.0.cert_pem } else { ca.cert_pem.clone() };
        let v = vars(&[("issuer", issuer.clone()), ("client_id", client_id.clone()), ("issuer_ca", trusted)]);
        let auth = template::render("authentication-config.yaml", &read("authentication-config.yaml")?, &v)?;
        env.set_authentication_config(&cluster.name, &auth).map_err(|e| e.to_string())?;
    }

    // Ready: both instances available and the issuer answering through the load balancer.
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    wait::until(Deadline::after(Duration::from_secs(120)), "deployment identity/dex to have 2 available replicas", || {
        let api = deployments.clone();
        async move {
            let d = api.get("dex").await.ok()?;
            (d.status?.available_replicas? >= 2).then_some(())
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    if let (Some(run), Some(before)) = (env.existing(), &dex_crds_before) {
        // One this dex made that the list above does not know (a newer dex) is recorded
        // now, late but before anything else can forget it.
        for name in dex_crds(&cluster.client).await?.into_iter().filter(|n| !before.contains(n) && !DEX_CRDS.contains(&n.as_str())) {
            run.note_created(&cluster.name, &crd(&name)).map_err(|e| e.to_string())?;
        }
    }
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).map_err(|e| e.to_string())?)
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    wait::until(Deadline::after(Duration::from_secs(60)), &format!("the issuer to answer at {discovery}"), || {
        let http = http.clone();
        let url = discovery.clone();
        async move { http.get(&url).send().await.ok()?.status().is_success().then_some(()) }
    })
    .await
    .map_err(|e| e.to_string())?;

    Ok(Identity {
        cluster: cluster.name.clone(),
        issuer,
        ca_pem: ca.cert_pem,
        client_id,
        client_secret,
        redirect_uri,
        users,
        lb,
        namespace: NAMESPACE.into(),
        apiserver_trusts_issuer: !as_pods,
    })
}

/// The nodes pods may be scheduled on (no control-plane taint): name and address.
async fn schedulable_workers(client: &kube::Client) -> Result<Vec<(String, Ipv4Addr)>, String> {
    let nodes: Api<Node> = Api::all(client.clone());
    Ok(nodes
        .list(&Default::default())
        .await
        .map_err(|e| format!("listing nodes: {e}"))?
        .items
        .iter()
        .filter(|n| !n.spec.as_ref().and_then(|s| s.taints.as_ref()).is_some_and(|t| t.iter().any(|t| t.key == "node-role.kubernetes.io/control-plane")))
        .filter_map(|n| {
            let ip = n.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == "InternalIP")?.address.parse().ok()?;
            Some((n.metadata.name.clone()?, ip))
        })
        .collect())
}

/// The address of the ready pod of the identity namespace matching `selector`.
async fn ready_pod_ip(client: &kube::Client, selector: &str) -> Result<Ipv4Addr, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let lp = kube::api::ListParams::default().labels(selector);
    wait::until(Deadline::after(Duration::from_secs(120)), &format!("a ready pod {selector} in namespace {NAMESPACE}"), || {
        let (pods, lp) = (pods.clone(), lp.clone());
        async move {
            pods.list(&lp).await.ok()?.items.into_iter().find_map(|p| {
                let st = p.status?;
                let ready = st.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
                if ready { st.pod_ip?.parse().ok() } else { None }
            })
        }
    })
    .await
    .map_err(|e| e.to_string())
}
