//! The directory component on the local backend's `multi` topology (needs root and
//! `make setup`), deployed as the management suite deploys it:
//!
//! - the partition fault is enforced by the kernel: while it is in place no TCP
//!   connection crosses between east's nodes and the directory cluster's API server, in
//!   either direction, while west still reaches it; after revert both do again and no
//!   partition table is left;
//!   east's directory-sync says `DirectoryReachable=False` on its own status meanwhile;
//! - an invalid ClusterPolicy is skipped with an Event on the replica, and the loop goes
//!   on applying other changes;
//! - de-registration is the registry's two steps through directory-api: the Cluster
//!   object goes, then the replica's pull credentials; the revoked token is refused by
//!   the directory's API server, and the other replica's mirror drops the Cluster.

use std::process::Command;
use std::time::Duration;

use firedrill::env::Env;
use firedrill::fault::FaultSpec;
use firedrill::wait::{self, Deadline};
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::Api;
use kube::api::{ListParams, PostParams};

mod common;

/// Whether a TCP connection from network namespace `netns` to `addr` completes within 3 s.
fn connects(netns: &str, addr: &str) -> bool {
    let (host, port) = addr.rsplit_once(':').unwrap();
    Command::new("ip")
        .args(["netns", "exec", netns, "timeout", "3", "bash", "-c", &format!("exec 3<>/dev/tcp/{host}/{port}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn apiserver_addr(env: &Env, cluster: &str) -> String {
    env.cluster(cluster).unwrap().server.trim_start_matches("https://").to_string()
}

fn node_netns(env: &Env, cluster: &str) -> Vec<String> {
    env.cluster(cluster).unwrap().local.as_ref().unwrap().nodes.iter().map(|n| n.netns.clone()).collect()
}

fn nft_tables(netns: &str) -> String {
    let o = Command::new("ip").args(["netns", "exec", netns, "nft", "list", "tables"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn http_client() -> reqwest::Client {
    // Only the directory's API server is called over TLS here, with its run-generated
    // certificate; what is checked is the status code a token gets.
    reqwest::Client::builder().danger_accept_invalid_certs(true).timeout(Duration::from_secs(5)).build().unwrap()
}

/// Wait until `cluster`'s directory-sync reports `DirectoryReachable=<status>`.
async fn reachable_condition(env: &Env, cluster: &str, status: &str) -> Result<(), wait::Timeout> {
    let api: Api<directory::DirectorySync> = Api::namespaced(env.cluster(cluster).unwrap().client.clone(), directory::NAMESPACE);
    let (name, want) = (cluster.to_string(), status.to_string());
    wait::until(Deadline::after(Duration::from_secs(30)), &format!("{cluster}'s directory-sync to report DirectoryReachable={status}"), || {
        let (api, name, want) = (api.clone(), name.clone(), want.clone());
        async move { api.get(&name).await.ok()?.status?.conditions.iter().any(|c| c.type_ == "DirectoryReachable" && c.status == want).then_some(()) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_and_deregistration_on_the_multi_topology() {
    common::on_suite_env("management", |env, comps| async move { checks(&env, &comps).await }).await;
}

async fn checks(env: &Env, comps: &[firedrill::component::Component]) {
    let deployed = firedrill::deploy::deploy(env, comps).await.unwrap_or_else(|e| panic!("{e}"));
    let d = deployed.directory.expect("the management suite deploys the directory");

    // Partition.
    let dir_api = apiserver_addr(env, "directory");
    let east_api = apiserver_addr(env, "east");
    let east_nodes = node_netns(env, "east");
    let dir_nodes = node_netns(env, "directory");
    let west_nodes = node_netns(env, "west");
    assert!(connects(&east_nodes[0], &dir_api), "before the fault, east reaches the directory");
    let fault = FaultSpec::Partition { between: vec!["east".into(), "directory".into()] };
    let undo = fault.plan(env, "test-partition").await.unwrap();
    fault.inject(env, &undo).await.unwrap();
    let during =
        (east_nodes.iter().map(|ns| connects(ns, &dir_api)).collect::<Vec<_>>(), connects(&dir_nodes[0], &east_api), connects(&west_nodes[0], &dir_api));
    let reported = reachable_condition(env, "east", "False").await;
    undo.revert(env).await.unwrap();
    reported.unwrap();
    reachable_condition(env, "east", "True").await.unwrap();
    assert_eq!(during.0, vec![false; east_nodes.len()], "during the partition no east node reaches the directory's API server");
    assert!(!during.1, "during the partition the directory does not reach east's API server");
    assert!(during.2, "during the partition west still reaches the directory");
    assert!(east_nodes.iter().all(|ns| connects(ns, &dir_api)), "after revert east reaches the directory again");
    assert!(connects(&dir_nodes[0], &east_api), "after revert the directory reaches east again");
    for ns in east_nodes.iter().chain(&dir_nodes) {
        assert!(!nft_tables(ns).contains("firedrill_"), "{ns}: partition table left after revert: {}", nft_tables(ns));
    }

    // An invalid policy is skipped with an Event; later changes still arrive.
    let dir = env.cluster("directory").unwrap();
    let policies: Api<directory::ClusterPolicy> = Api::all(dir.client.clone());
    let bad = directory::ClusterPolicySpec {
        cluster_selector: [("role".to_string(), "replica".to_string())].into(),
        namespaces: vec!["Not_A_Label".into()],
        ..Default::default()
    };
    policies.create(&PostParams::default(), &directory::ClusterPolicy::new("broken", bad)).await.unwrap();
    let events: Api<Event> = Api::namespaced(env.cluster("east").unwrap().client.clone(), directory::NAMESPACE);
    wait::until(Deadline::after(Duration::from_secs(30)), "an Event on east's DirectorySync naming the invalid policy", || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .any(|e| e.involved_object.kind.as_deref() == Some("DirectorySync") && e.message.as_deref().unwrap_or("").contains("broken"))
                .then_some(())
        }
    })
    .await
    .unwrap();
    let r = http_client()
        .patch(format!("{}/clusters/east", d.api))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({ "annotations": { "test": "after-invalid" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let east_mirror: Api<directory::Cluster> = Api::all(env.cluster("east").unwrap().client.clone());
    wait::until(Deadline::after(Duration::from_secs(30)), "east to mirror a change made after the invalid policy", || {
        let m = east_mirror.clone();
        async move { (m.get_opt("east").await.ok()??.metadata.annotations?.get("test")? == "after-invalid").then_some(()) }
    })
    .await
    .unwrap();
    let east_cluster = Api::<directory::Cluster>::all(dir.client.clone()).get("east").await.unwrap();
    assert_eq!(east_cluster.metadata.labels.unwrap_or_default().get("role").map(String::as_str), Some("replica"), "a change of annotations keeps the labels");
    policies.delete("broken", &Default::default()).await.unwrap();

    // De-registration of west.
    let secrets: Api<Secret> = Api::namespaced(dir.client.clone(), directory::NAMESPACE);
    let token = wait::until(Deadline::after(Duration::from_secs(30)), "the token of west's pull credentials", || {
        let secrets = secrets.clone();
        async move { String::from_utf8(secrets.get_opt("west-token").await.ok()??.data?.get("token")?.0.clone()).ok() }
    })
    .await
    .unwrap();
    let http = http_client();
    let read_clusters = |token: String| {
        let http = http.clone();
        let url = format!("https://{dir_api}/apis/multicluster.coreos.com/v1/clusters");
        async move { http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(read_clusters(token.clone()).await, 200, "west's credentials read the directory before de-registration");
    let r = http.delete(format!("{}/clusters/west", d.api)).bearer_auth(&d.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());
    let clusters: Api<directory::Cluster> = Api::all(dir.client.clone());
    assert!(clusters.get_opt("west").await.unwrap().is_none(), "the Cluster object is gone from the directory");
    assert!(secrets.get_opt("west-token").await.unwrap().is_none(), "west's pull credentials are gone");
    wait::until(Deadline::after(Duration::from_secs(30)), "the directory's API server to refuse west's revoked token", || {
        let status = read_clusters(token.clone());
        async move { (status.await == 401).then_some(()) }
    })
    .await
    .unwrap();
    let east: Api<directory::Cluster> = Api::all(env.cluster("east").unwrap().client.clone());
    wait::until(Deadline::after(Duration::from_secs(60)), "east's mirror to drop the de-registered Cluster west", || {
        let east = east.clone();
        async move { east.get_opt("west").await.ok()?.is_none().then_some(()) }
    })
    .await
    .unwrap();
    let r = http.delete(format!("{}/clusters/west", d.api)).bearer_auth(&d.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "de-registering twice is not an error");
    let r = http.delete(format!("{}/clusters/east", d.api)).bearer_auth("wrong-token").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "directory-api refuses a caller without its token");
    assert!(clusters.get_opt("east").await.unwrap().is_some(), "and changes nothing");
}
