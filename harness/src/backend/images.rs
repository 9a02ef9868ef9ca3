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
                    other => return Err(FixtureError::Invalid { path, message: format!("image {name}: no cached binary `{other}`") }),
                },
                Source::Workspace(b) => firedrill.parent().unwrap_or(Path::new(".")).join(b),
                Source::System(p) if p.is_absolute() => p.clone(),
                Source::System(p) => {
                    return Err(FixtureError::Invalid { path, message: format!("image {name}: system binary {} is not an absolute path", p.display()) });
                }
            };
            images.insert(name, Image { binary, path: e.path });
        }
        Ok(ImageMap { images })
    }

    /// Every image by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Image)> {
        self.images.iter().map(|(n, i)| (n.as_str(), i))
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
        images.insert("x.local/dex:pinned".to_string(), Image { binary: PathBuf::from("/bin/true"), path: "/usr/local/bin/dex".into() });
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
}
