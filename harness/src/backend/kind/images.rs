//! The components' images on kind: each image of `fixtures/images.yaml` is built offline
//! from the binary the table names — the binary (without debug information) at the
//! image's `path`, the other files it lists at theirs, the shared libraries all of them
//! load (as `ldd` lists them) at theirs, an empty `/tmp`, `ENTRYPOINT [path]` — with
//! `docker import` (nothing is pulled). Every image is then loaded into every cluster of a
//! run with `kind load docker-image`; hosts' images are also run by the engine itself. An
//! image is rebuilt only when its inputs changed: their hash is a label of the image.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{KindRunInfo, run, run_async};
use crate::backend::BackendError;
use crate::backend::images::{Image, ImageMap};

const LABEL: &str = "firedrill.binary-sha256";

/// The files an image of `binary` holds: the binary and every library it loads, each with
/// the path it has on this machine (where the binary runs the same way).
fn closure(binary: &Path) -> Result<Vec<PathBuf>, BackendError> {
    let out = duct::cmd("ldd", [binary]).stdout_capture().stderr_capture().unchecked().run().map_err(|e| BackendError::io(binary, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && !text.contains("not a dynamic executable") && !String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable") {
        return Err(BackendError::Command { command: format!("ldd {}", binary.display()), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            if p.contains("not found") {
                return Err(BackendError::Setup(format!("{}: a library it needs is not found: {line}", binary.display())));
            }
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// The hash of an image's inputs: its binary, and each of its other files by path and content.
fn inputs_hash(binary: &Path, files: &[PathBuf]) -> Result<String, BackendError> {
    let mut h = Sha256::new();
    h.update(std::fs::read(binary).map_err(|e| BackendError::io(binary, e))?);
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        h.update(std::fs::read(f).map_err(|e| BackendError::io(f, e))?);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Every regular file under `files` (each a file or a directory), sorted.
fn expand(files: &[PathBuf]) -> Result<Vec<PathBuf>, BackendError> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = files.to_vec();
    while let Some(p) = todo.pop() {
        let meta = std::fs::metadata(&p).map_err(|e| BackendError::io(&p, e))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).map_err(|e| BackendError::io(&p, e))? {
                todo.push(e.map_err(|e| BackendError::io(&p, e))?.path());
            }
        } else if meta.is_file() {
            out.push(p);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Whether a file is a shared object (whose libraries the image needs too).
fn is_shared_object(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.ends_with(".so") || name.contains(".so.")
}

/// Every image's binary exists (checked before a run creates anything).
pub fn check(map: &ImageMap) -> Result<(), BackendError> {
    for (name, image) in map.iter() {
        if !image.binary.is_file() {
            return Err(BackendError::Setup(format!("image {name} maps to {}, which does not exist (run `make build`)", image.binary.display())));
        }
    }
    Ok(())
}

/// Build `name` from `image` unless the engine has it built from the same binary.
fn build(name: &str, image: &Image) -> Result<bool, BackendError> {
    let files = expand(&image.files)?;
    let hash = inputs_hash(&image.binary, &files)?;
    let current = run("docker", &["image", "inspect", "--format", &format!("{{{{index .Config.Labels \"{LABEL}\"}}}}"), name]).unwrap_or_default();
    if current.trim() == hash {
        return Ok(false);
    }
    // The image the name points to now, if any (whatever its labels).
    let previous = run("docker", &["image", "inspect", "--format", "{{.Id}}", name]).unwrap_or_default();
    let previous = previous.trim();
    let dir = tempfile::tempdir().map_err(|e| BackendError::io(Path::new("/tmp"), e))?;
    let place = |from: &Path, to: &str| -> Result<(), BackendError> {
        let dest = dir.path().join(to.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("a path inside the image has a parent")).map_err(|e| BackendError::io(&dest, e))?;
        std::fs::copy(from, &dest).map_err(|e| BackendError::io(from, e))?;
        Ok(())
    };
    place(&image.binary, &image.path)?;
    // The workspace's debug builds are mostly debug information (about 150 MB each), which
    // every node would import: the image keeps the code only, where `strip` is installed.
    let inside = dir.path().join(image.path.trim_start_matches('/'));
    let _ = duct::cmd("strip", ["--strip-debug".into(), inside.display().to_string()]).stdout_null().stderr_null().unchecked().run();
    let mut libs = closure(&image.binary)?;
    for f in &files {
        place(f, &f.display().to_string())?;
        if is_shared_object(f) {
            libs.extend(closure(f)?);
        }
    }
    for lib in libs {
        place(&lib, &lib.display().to_string())?;
    }
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| BackendError::io(&tmp, e))?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).map_err(|e| BackendError::io(&tmp, e))?;
    let entrypoint = serde_json::to_string(&[&image.path]).expect("a path serialises");
    let docker_import = super::engine::expression(
        "docker",
        [
            "import".to_string(),
            "--change".into(),
            format!("ENTRYPOINT {entrypoint}"),
            "--change".into(),
            format!("LABEL {LABEL}={hash}"),
            "-".into(),
            name.to_string(),
        ],
    );
    let import = duct::cmd("tar", ["-C".into(), dir.path().display().to_string(), "-c".into(), ".".into()])
        .pipe(docker_import)
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| BackendError::Command { command: format!("docker import {name}"), stderr: e.to_string() })?;
    if !import.status.success() {
        return Err(BackendError::Command { command: format!("docker import {name}"), stderr: String::from_utf8_lossy(&import.stderr).trim().to_string() });
    }
    // The image the name pointed to is left without a name: removed, so that rebuilds do
    // not pile up unnamed images (the engine refuses while a container still uses it).
    if !previous.is_empty() {
        let _ = run("docker", &["rmi", previous]);
    }
    Ok(true)
}

/// Build every image of `map` whose inputs changed.
pub fn build_all(map: &ImageMap) -> Result<(), BackendError> {
    for (name, image) in map.iter() {
        build(name, image)?;
    }
    Ok(())
}

/// Load every image of `map` (built by [`build_all`]) into every cluster of the run: the
/// pods' images, and the hosts' too, which the engine runs for this run's hosts and which
/// the existing backend runs as pods when it is pointed at these clusters. Returns the
/// loaded images' names.
pub async fn load(info: &KindRunInfo, kind: &Path, map: &ImageMap) -> Result<Vec<String>, BackendError> {
    let names: Vec<String> = map.iter().map(|(n, _)| n.to_string()).collect();
    for c in &info.clusters {
        let mut args = vec!["load".to_string(), "docker-image".into(), "--name".into(), c.kind_name.clone()];
        args.extend(names.iter().cloned());
        run_async(&kind.display().to_string(), args, vec![]).await?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binarys_closure_holds_its_loader_and_libc() {
        let libs = closure(Path::new("/bin/sh")).unwrap();
        assert!(libs.iter().any(|l| l.file_name().is_some_and(|f| f.to_string_lossy().starts_with("libc.so"))), "{libs:?}");
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("ld-linux")), "{libs:?}");
    }

    #[test]
    fn a_static_binary_needs_nothing_else() {
        assert_eq!(closure(Path::new("/bin/busybox")).unwrap(), Vec::<PathBuf>::new());
    }
}
