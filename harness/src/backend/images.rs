//! The image → binary table (`fixtures/images.yaml`): the local backend runs an image's
//! binary as a process; the kind backend builds the image from it (`kind::images`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::FixtureError;
use crate::fixtures::Binaries;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    images: BTreeMap<String, Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    binary: Source,
    path: String,
    /// Files or directories the binary reads besides its libraries (modules it loads,
    /// schemas), copied into the image at the same paths, with the libraries they load.
    #[serde(default)]
    files: Vec<PathBuf>,
    /// `cluster` (default): a pod's image, loaded into every cluster; `host`: a host's
    /// process outside the clusters, run by the Docker engine itself.
    #[serde(default, rename = "runs-on")]
    runs_on: RunsOn,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunsOn {
    #[default]
    Cluster,
    Host,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
enum Source {
    /// An upstream binary built by `make setup`: dex, etcd, kube-apiserver, …
    Cache(String),
    /// A binary of this workspace, next to the firedrill executable.
    Workspace(String),
    /// A binary from a Debian package `make setup` installs (an absolute path).
    System(PathBuf),
}

/// A resolved image: the binary to run and the path it has inside the image.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub binary: PathBuf,
    pub path: String,
    pub files: Vec<PathBuf>,
    pub runs_on: RunsOn,
}

#[derive(Clone, Debug, Default)]
pub struct ImageMap {
    images: BTreeMap<String, Image>,
}

impl ImageMap {
    pub fn load(fixtures: &Path, binaries: &Binaries, firedrill: &Path) -> Result<ImageMap, FixtureError> {
        let path = fixtures.join("images.yaml");
        let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Read { path: path.clone(), source })?;
        let file: File = serde_saphyr::from_str(&text).map_err(|e| FixtureError::parse(&path, &e))?;
        let mut images = BTreeMap::new();
        for (name, e) in file.images {
            let binary = match &e.binary {
                Source::Cache(b) => match b.as_str() {
                    "dex" => binaries.dex.clone(),
                    "etcd" => binaries.etcd.clone(),
                    "kube-apiserver" => binaries.kube_apiserver.clone(),
                    "kubectl" => binaries.kubectl.clone(),
                    "pause" => binaries.pause.clone(),
                    other => return Err(FixtureError::Invalid { path, message: format!("image {name}: no cached binary `{other}`") }),
                },
                Source::Workspace(b) => firedrill.parent().unwrap_or(Path::new(".")).join(b),
                Source::System(p) if p.is_absolute() => p.clone(),
                Source::System(p) => {
                    return Err(FixtureError::Invalid { path, message: format!("image {name}: system binary {} is not an absolute path", p.display()) });
                }
            };
            if let Some(f) = e.files.iter().find(|f| !f.is_absolute()) {
                return Err(FixtureError::Invalid { path, message: format!("image {name}: file {} is not an absolute path", f.display()) });
            }
            images.insert(name, Image { binary, path: e.path, files: e.files, runs_on: e.runs_on });
        }
        Ok(ImageMap { images })
    }

    /// Every image by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Image)> {
        self.images.iter().map(|(n, i)| (n.as_str(), i))
    }

    /// The host image whose binary is `binary` (a host process's argv[0]).
    pub fn for_host_binary(&self, binary: &Path) -> Result<(&str, &Image), String> {
        self.iter().find(|(_, i)| i.runs_on == RunsOn::Host && i.binary == binary).ok_or_else(|| {
            format!(
                "no image in fixtures/images.yaml runs {} on a host (`runs-on: host`); the kind backend runs hosts' processes from images only",
                binary.display()
            )
        })
    }

    /// The image, or a message naming what is missing.
    pub fn resolve(&self, image: &str) -> Result<&Image, String> {
        let found = self.images.get(image).ok_or_else(|| {
            format!(
                "image {image} is not in fixtures/images.yaml (the local backend runs only: {})",
                self.images.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        if !found.binary.is_file() {
            return Err(format!("image {image} maps to {}, which does not exist (run `make build`)", found.binary.display()));
        }
        Ok(found)
    }

    /// argv for a container: `command` replaces the entrypoint and must name the image's
    /// binary; `args` follow.
    pub fn argv(&self, image: &Image, command: &[String], args: &[String]) -> Result<Vec<String>, String> {
        let mut argv = vec![image.binary.display().to_string()];
        if let Some((first, rest)) = command.split_first() {
            let base = Path::new(&image.path).file_name().and_then(|f| f.to_str()).unwrap_or_default();
            if first != &image.path && first != base {
                return Err(format!("command `{first}` is not this image's binary ({}); the local backend runs images' own binaries only", image.path));
            }
            argv.extend(rest.iter().cloned());
        }
        argv.extend(args.iter().cloned());
        Ok(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ImageMap {
        let mut images = BTreeMap::new();
        images.insert(
            "x.local/dex:pinned".to_string(),
            Image { binary: PathBuf::from("/bin/true"), path: "/usr/local/bin/dex".into(), files: vec![], runs_on: RunsOn::Cluster },
        );
        ImageMap { images }
    }

    #[test]
    fn unknown_images_and_foreign_commands_are_refused() {
        let m = map();
        assert!(m.resolve("x.local/dex:other").unwrap_err().contains("not in fixtures/images.yaml"));
        let img = m.resolve("x.local/dex:pinned").unwrap().clone();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(m.argv(&img, &s(&["/usr/local/bin/dex", "serve"]), &s(&["c.yaml"])).unwrap(), s(&["/bin/true", "serve", "c.yaml"]));
        assert_eq!(m.argv(&img, &[], &s(&["serve"])).unwrap(), s(&["/bin/true", "serve"]));
        assert!(m.argv(&img, &s(&["/bin/sh", "-c", "x"]), &[]).is_err());
    }

    #[test]
    fn a_host_process_finds_the_host_image_of_its_binary_only() {
        let mut m = map();
        m.images.insert(
            "x.local/lb:debian".into(),
            Image { binary: PathBuf::from("/usr/sbin/haproxy"), path: "/usr/sbin/haproxy".into(), files: vec![], runs_on: RunsOn::Host },
        );
        assert_eq!(m.for_host_binary(Path::new("/usr/sbin/haproxy")).unwrap().0, "x.local/lb:debian");
        // A pod's image is not a host's, even for the same binary.
        assert!(m.for_host_binary(Path::new("/bin/true")).unwrap_err().contains("runs-on: host"));
    }

    #[test]
    fn the_repositorys_table_loads_and_its_host_images_name_absolute_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let v = crate::fixtures::Versions::load(&root.join("fixtures")).unwrap();
        let b = crate::fixtures::Binaries::in_cache(Path::new("/nonexistent"), &v);
        let m = ImageMap::load(&root.join("fixtures"), &b, Path::new("/x/firedrill")).unwrap();
        let hosts: Vec<&str> = m.iter().filter(|(_, i)| i.runs_on == RunsOn::Host).map(|(n, _)| n).collect();
        assert!(hosts.contains(&"firedrill.local/slapd:debian") && hosts.contains(&"firedrill.local/haproxy:debian"), "{hosts:?}");
        assert_eq!(m.for_host_binary(Path::new("/usr/sbin/slapd")).unwrap().1.files, [PathBuf::from("/usr/lib/ldap"), PathBuf::from("/etc/ldap/schema")]);
    }
}
