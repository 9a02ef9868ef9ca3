//! The upstream binaries `make setup` built are the pinned ones (fixtures/versions.env).

use std::path::Path;
use std::process::Command;

use firedrill::fixtures::{Binaries, Paths, Versions, cache_dir};

fn output(bin: &Path, args: &[&str]) -> String {
    let o = Command::new(bin).args(args).output().unwrap_or_else(|e| panic!("{} cannot run ({e}); run `make setup`", bin.display()));
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn the_pinned_upstream_binaries_print_their_pinned_versions() {
    let paths = Paths::at(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    let v = Versions::load(&paths.fixtures).unwrap();
    let b = Binaries::in_cache(&cache_dir(), &v);
    let k8s = format!("Kubernetes {}", v.kubernetes);
    for bin in [&b.kube_apiserver, &b.kube_controller_manager, &b.kube_scheduler] {
        let out = output(bin, &["--version"]);
        assert_eq!(out.trim(), k8s, "{}", bin.display());
    }
    assert!(output(&b.kubectl, &["version", "--client"]).contains(&format!("Client Version: {}", v.kubernetes)));
    let etcd = output(&b.etcd, &["--version"]);
    assert!(etcd.contains(&format!("etcd Version: {}", v.etcd.trim_start_matches('v'))), "{etcd}");
    let dex = output(&b.dex, &["version"]);
    assert!(dex.contains(&format!("Dex Version: {}", v.dex)), "{dex}");
    let kind = output(&b.kind, &["version"]);
    assert!(kind.starts_with(&format!("kind {} ", v.kind)), "{kind}");
}

/// A pin of fixtures/versions.env that only the kind node image uses.
fn pin(paths: &Paths, key: &str) -> String {
    let text = std::fs::read_to_string(paths.fixtures.join("versions.env")).unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("versions.env has no {key}")).to_string()
}

#[test]
fn the_kind_node_images_binaries_print_their_pinned_versions() {
    let paths = Paths::at(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    let v = Versions::load(&paths.fixtures).unwrap();
    let bin = cache_dir().join("bin");
    let k8s = bin.join(format!("kubernetes-node-{}", v.kubernetes));
    assert_eq!(output(&k8s.join("kubeadm"), &["version", "-o", "short"]).trim(), v.kubernetes);
    for name in ["kubelet", "kube-proxy"] {
        assert_eq!(output(&k8s.join(name), &["--version"]).trim(), format!("Kubernetes {}", v.kubernetes), "{name}");
    }
    let containerd = pin(&paths, "CONTAINERD_VERSION");
    let out = output(&bin.join(format!("containerd-{containerd}/containerd")), &["--version"]);
    assert!(out.contains(&format!(" {containerd}")), "{out}");
    let crictl = pin(&paths, "CRICTL_VERSION");
    let out = output(&bin.join(format!("crictl-{crictl}/crictl")), &["--version"]);
    assert_eq!(out.trim(), format!("crictl version {crictl}"));
}
