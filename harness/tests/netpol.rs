//! NetworkPolicy on kind (needs root and `make setup`'s engine and node image): the
//! existing backend's partition — NetworkPolicies in every namespace of both sides — on
//! clusters whose network enforces them, the node image's kube-network-policies.
//!
//! `make test` runs it before the kind tests' shared run comes up: a `multi` run's six
//! node containers beside the shared run's three exceeded the machine's
//! `fs.inotify.max_user_instances` (128, shared by every node's systemd, kubelet and
//! containerd), and the ninth node's systemd exited as it started.

mod common;

use common::kind::{assert_nothing_left, firedrill, text, volumes};

/// The existing backend's partition (NetworkPolicies in every namespace of both sides) on
/// clusters whose network enforces them: the node image's kube-network-policies. Through a
/// kubeconfig with a context per cluster of a kind `multi` run, `east-west-partitioned`
/// matches its table, which it reaches only with the fault proven in effect (a canary pod
/// on each side reaches its own API server and not the other's) and, after the window,
/// proven undone (each reaches both). No policy or canary is left. Before, the partition
/// had only ever been seen not in effect (tests/existing.rs, on the local backend).
#[tokio::test(flavor = "multi_thread")]
async fn a_network_policy_partition_is_in_effect_then_undone_on_kind() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state = tempfile::tempdir().unwrap();
    let before = volumes();
    let up = tokio::task::spawn_blocking({
        let state = state.path().to_path_buf();
        move || firedrill(&state, &["up", "--backend", "kind", "--topology", "multi"])
    })
    .await
    .unwrap();
    assert!(up.status.success(), "firedrill up: {}", text(&up));
    let dir = text(&up).lines().find_map(|l| l.strip_prefix("tear down with: firedrill down ")).expect("up names its run directory").trim().to_string();
    let run = firedrill::backend::kind::KindRun::attach(std::path::Path::new(&dir)).unwrap();
    let outcome = async {
        let kubeconfig = state.path().join("lab.kubeconfig");
        let files: Vec<(String, std::path::PathBuf)> =
            ["directory", "east", "west"].iter().map(|r| (format!("lab-{r}"), run.info.cluster(r).unwrap().kubeconfig.clone())).collect();
        let pairs: Vec<(&str, &std::path::Path)> = files.iter().map(|(c, f)| (c.as_str(), f.as_path())).collect();
        common::kubeconfig_with_contexts(&pairs, &kubeconfig);
        let report = state.path().join("report");
        let mut args: Vec<String> = ["run", "--backend", "existing", "--kubeconfig", &kubeconfig.display().to_string()].map(String::from).to_vec();
        for r in ["directory", "east", "west"] {
            args.extend(["--context".into(), format!("{r}=lab-{r}")]);
        }
        args.extend(
            ["--suites", "harness/tests/data/existing", "--snapshots", "harness/tests/data/snapshots", "--report", &report.display().to_string()]
                .map(String::from),
        );
        args.push("existing-multi::east-west-partitioned".into());
        let o = common::firedrill_in(state.path(), args).await;
        let v = common::verdicts(&report);
        assert_eq!(v["existing-multi::east-west-partitioned"].0, "match", "{v:?}\n{}", text(&o));
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        for c in ["east", "west"] {
            let client = firedrill::backend::kube_client(&run.info.cluster(c).unwrap().kubeconfig).await.unwrap();
            let policies = kube::Api::<NetworkPolicy>::all(client.clone()).list(&Default::default()).await.unwrap();
            let left: Vec<String> = policies.items.into_iter().filter_map(|p| p.metadata.name).filter(|n| n.starts_with("firedrill-")).collect();
            assert_eq!(left, Vec::<String>::new(), "policies left in {c}");
            let canaries = kube::Api::<Pod>::all(client).list(&kube::api::ListParams::default().labels("firedrill.dev/canary")).await.unwrap();
            assert!(canaries.items.is_empty(), "canary pods left in {c}");
        }
    };
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(outcome)).await;
    let number = run.info.number;
    let down = tokio::task::spawn_blocking({
        let state = state.path().to_path_buf();
        move || firedrill(&state, &["down", &dir])
    })
    .await
    .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(down.status.success(), "firedrill down: {}", text(&down));
    assert_nothing_left(number, &before);
}
