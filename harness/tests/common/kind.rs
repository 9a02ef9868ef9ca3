//! What the tests of the kind backend share: the engine's containers, networks and
//! volumes of kind runs, and running firedrill with a state directory.

use std::process::{Command, Output};

pub fn docker(args: &[&str]) -> String {
    let o = firedrill::backend::kind::engine::command("docker").args(args).output().expect("the docker CLI runs (make setup installs an engine)");
    assert!(o.status.success(), "docker {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn firedrill(state: &std::path::Path, args: &[&str]) -> Output {
    Command::new(super::firedrill()).args(args).env("FIREDRILL_STATE", state).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Names of node containers of kind clusters whose name starts with `prefix`.
pub fn containers(prefix: &str) -> Vec<String> {
    containers_in(prefix, &["-a"])
}

pub fn containers_in(prefix: &str, filter: &[&str]) -> Vec<String> {
    let mut args = vec!["ps", "--filter", "label=io.x-k8s.kind.cluster", "--format", "{{.Names}}\t{{.Label \"io.x-k8s.kind.cluster\"}}"];
    args.extend(filter);
    docker(&args).lines().filter_map(|l| l.split_once('\t')).filter(|(_, c)| c.starts_with(prefix)).map(|(n, _)| n.to_string()).collect()
}

pub fn networks() -> Vec<String> {
    docker(&["network", "ls", "--format", "{{.Name}}"]).lines().filter(|n| n.starts_with("fd-kind-")).map(String::from).collect()
}

pub fn volumes() -> Vec<String> {
    docker(&["volume", "ls", "-q"]).lines().map(String::from).collect()
}

/// The containers of kind run `number`'s hosts.
pub fn host_containers(number: u8) -> Vec<String> {
    docker(&["ps", "-a", "--filter", &format!("label=firedrill.kind-run={number}"), "--format", "{{.Names}}"]).lines().map(String::from).collect()
}

/// Nothing of kind run `number` is on the engine; the volumes are those there before.
pub fn assert_nothing_left(number: u8, before: &[String]) {
    assert_eq!(containers(&format!("fd-k{number}-")), Vec::<String>::new(), "node containers left");
    assert_eq!(host_containers(number), Vec::<String>::new(), "host containers left");
    assert!(!networks().contains(&format!("fd-kind-{number}")), "network fd-kind-{number} left");
    let new: Vec<String> = volumes().into_iter().filter(|v| !before.contains(v)).collect();
    assert_eq!(new, Vec::<String>::new(), "volumes left");
}
