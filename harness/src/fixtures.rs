//! Where things are: the repository's fixture, suite and snapshot directories, the
//! pinned versions, and the per-user cache of upstream binaries built by `make setup`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::FixtureError;

/// The repository directories firedrill reads.
#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
    pub fixtures: PathBuf,
    pub suites: PathBuf,
    pub snapshots: PathBuf,
    /// Recordings of live runs, one per scenario and backend (`firedrill record`).
    pub recordings: PathBuf,
}

impl Paths {
    pub fn at(root: impl Into<PathBuf>) -> Paths {
        let root = root.into();
        Paths { fixtures: root.join("fixtures"), suites: root.join("suites"), snapshots: root.join("snapshots"), recordings: root.join("recordings"), root }
    }

    /// `$FIREDRILL_ROOT`, else the nearest ancestor of the working directory holding
    /// `fixtures/versions.env`, else the checkout this binary was built from.
    pub fn discover() -> Paths {
        if let Some(root) = std::env::var_os("FIREDRILL_ROOT") {
            return Paths::at(root);
        }
        if let Ok(cwd) = std::env::current_dir()
            && let Some(root) = cwd.ancestors().find(|d| d.join("fixtures/versions.env").is_file())
        {
            return Paths::at(root);
        }
        Paths::at(Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("harness/ has a parent"))
    }
}

/// The pins of `fixtures/versions.env`.
#[derive(Clone, Debug, PartialEq)]
pub struct Versions {
    pub kubernetes: String,
    pub k8s_openapi_feature: String,
    pub etcd: String,
    pub dex: String,
    pub kind: String,
}

impl Versions {
    pub fn load(fixtures: &Path) -> Result<Versions, FixtureError> {
        let path = fixtures.join("versions.env");
        let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Read { path: path.clone(), source })?;
        Self::parse(&text).map_err(|message| FixtureError::Invalid { path, message })
    }

    fn parse(text: &str) -> Result<Versions, String> {
        let mut vars = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| format!("line {}: expected KEY=value", i + 1))?;
            vars.insert(k.trim().to_string(), v.trim().to_string());
        }
        let mut take = |k: &str| vars.remove(k).ok_or_else(|| format!("{k} is not set"));
        Ok(Versions {
            kubernetes: take("KUBERNETES_VERSION")?,
            k8s_openapi_feature: take("K8S_OPENAPI_FEATURE")?,
            etcd: take("ETCD_VERSION")?,
            dex: take("DEX_VERSION")?,
            kind: take("KIND_VERSION")?,
        })
    }
}

/// `$FIREDRILL_CACHE`, else `$XDG_CACHE_HOME/firedrill`, else `~/.cache/firedrill`
/// (the same rule as `ci/setup.sh`).
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("FIREDRILL_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("firedrill");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/firedrill")
}

/// The upstream binaries of the pinned versions, built by `make setup`.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kubectl: PathBuf,
    pub etcd: PathBuf,
    /// etcd's tools of the same release (the DR exercise's snapshot and restore).
    pub etcdctl: PathBuf,
    pub etcdutl: PathBuf,
    pub dex: PathBuf,
    pub kind: PathBuf,
    /// The pod sandbox program (kind hosts' network holder, the node image's pause).
    pub pause: PathBuf,
}

impl Binaries {
    /// Paths in `cache`, whether or not they exist.
    pub fn in_cache(cache: &Path, v: &Versions) -> Binaries {
        let bin = cache.join("bin");
        let k8s = bin.join(format!("kubernetes-{}", v.kubernetes));
        Binaries {
            kube_apiserver: k8s.join("kube-apiserver"),
            kube_controller_manager: k8s.join("kube-controller-manager"),
            kube_scheduler: k8s.join("kube-scheduler"),
            kubectl: k8s.join("kubectl"),
            etcd: bin.join(format!("etcd-{}", v.etcd)).join("etcd"),
            etcdctl: bin.join(format!("etcd-tools-{}", v.etcd)).join("etcdctl"),
            etcdutl: bin.join(format!("etcd-tools-{}", v.etcd)).join("etcdutl"),
            dex: bin.join(format!("dex-{}", v.dex)).join("dex"),
            kind: bin.join(format!("kind-{}", v.kind)).join("kind"),
            pause: bin.join(format!("pause-{}", v.kubernetes)).join("pause"),
        }
    }

    /// The binaries in the default cache; an error naming the first one missing.
    pub fn locate(paths: &Paths) -> Result<Binaries, FixtureError> {
        let v = Versions::load(&paths.fixtures)?;
        let b = Self::in_cache(&cache_dir(), &v);
        for p in [&b.kube_apiserver, &b.kube_controller_manager, &b.kube_scheduler, &b.kubectl, &b.etcd, &b.etcdctl, &b.etcdutl, &b.dex] {
            if !p.is_file() {
                return Err(FixtureError::Invalid {
                    path: p.clone(),
                    message: "not built; run `make setup` (ci/setup.sh) to build the pinned upstream binaries".into(),
                });
            }
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_env() {
        let v = Versions::parse(
            "# c\nKUBERNETES_VERSION=v1.36.3\nK8S_OPENAPI_FEATURE=v1_36\nETCD_VERSION=v3.6.16\n\nDEX_VERSION=v0.0.0-1-abc\nKIND_VERSION=v0.33.0\n",
        )
        .unwrap();
        assert_eq!(v.kubernetes, "v1.36.3");
        assert_eq!(v.dex, "v0.0.0-1-abc");
        assert!(Versions::parse("KUBERNETES_VERSION=v1\n").unwrap_err().contains("is not set"));
        assert!(Versions::parse("oops\n").unwrap_err().contains("line 1"));
    }

    /// The wrapper modules are generated from versions.env; they must agree with it,
    /// and the k8s-openapi feature must match the Kubernetes minor.
    #[test]
    fn wrapper_modules_and_crate_feature_follow_versions_env() {
        let paths = Paths::at(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
        let v = Versions::load(&paths.fixtures).unwrap();
        let read = |p: &str| std::fs::read_to_string(paths.fixtures.join("upstream").join(p)).unwrap();
        assert!(read("kubernetes/go.mod").contains(&format!("k8s.io/kubernetes {}", v.kubernetes)));
        assert!(read("etcd/go.mod").contains(&format!("go.etcd.io/etcd/server/v3 {}", v.etcd)));
        assert!(read("etcd-tools/go.mod").contains(&format!("go.etcd.io/etcd/etcdutl/v3 {}", v.etcd)));
        assert!(read("dex/go.mod").contains(&format!("github.com/dexidp/dex {}", v.dex)));
        let minor = v.kubernetes.trim_start_matches("v1.").split('.').next().unwrap().to_string();
        assert_eq!(v.k8s_openapi_feature, format!("v1_{minor}"));
        let cargo = std::fs::read_to_string(paths.root.join("Cargo.toml")).unwrap();
        assert!(cargo.contains(&format!("features = [\"{}\"]", v.k8s_openapi_feature)), "Cargo.toml's k8s-openapi feature differs from versions.env");
    }
}
