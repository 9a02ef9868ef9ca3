//! `firedrill __shim SPEC`: the last step before a process of a local cluster runs.
//!
//! Runs single-threaded, before any runtime starts: joins the process's cgroup, enters
//! its host's network namespace, gives it a private mount namespace with its volumes
//! bind-mounted at their mount paths, starts a new session, and `exec`s the binary. The
//! pid the supervisor holds is therefore the process itself.
//!
//! A mount path whose directory does not exist gets an overlay over its deepest existing
//! ancestor, inside the private namespace only, so nothing is created on the machine.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use serde::{Deserialize, Serialize};

/// Everything the shim needs, written by the supervisor as JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExecSpec {
    /// `argv[0]` is the binary's path.
    pub argv: Vec<String>,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// Network namespace name (`/run/netns/<name>`); `None` stays in the current one.
    pub netns: Option<String>,
    /// cgroup v2 directory to join.
    pub cgroup: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    /// Where overlay upper and work directories go (only needed with mounts).
    pub scratch: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// Entry point. Never returns on success; on failure prints why and exits 127.
pub fn main(spec_path: &Path) -> ! {
    let err = match std::fs::read_to_string(spec_path)
        .map_err(|e| format!("reading {}: {e}", spec_path.display()))
        .and_then(|t| serde_json::from_str::<ExecSpec>(&t).map_err(|e| format!("parsing {}: {e}", spec_path.display())))
        .and_then(|spec| exec(&spec))
    {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("firedrill shim: {err}");
    std::process::exit(127)
}

enum Never {}

fn exec(spec: &ExecSpec) -> Result<Never, String> {
    if let Some(cg) = &spec.cgroup {
        std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string()).map_err(|e| format!("joining cgroup {}: {e}", cg.display()))?;
    }
    if let Some(ns) = &spec.netns {
        let path = Path::new("/run/netns").join(ns);
        let f = std::fs::File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        setns(f, CloneFlags::CLONE_NEWNET).map_err(|e| format!("entering network namespace {ns}: {e}"))?;
    }
    if !spec.mounts.is_empty() {
        mount_volumes(spec)?;
    }
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let cwd = spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    std::env::set_current_dir(&cwd).map_err(|e| format!("chdir {}: {e}", cwd.display()))?;
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("NUL byte in {s:?}"));
    let argv: Vec<CString> = spec.argv.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
    let env: Vec<CString> = spec.env.iter().map(|(k, v)| cstr(&format!("{k}={v}"))).collect::<Result<_, _>>()?;
    let prog = argv.first().ok_or("empty argv")?;
    match nix::unistd::execve(prog, &argv, &env) {
        Ok(never) => match never {},
        Err(e) => Err(format!("exec {}: {e}", spec.argv[0])),
    }
}

fn mount_volumes(spec: &ExecSpec) -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).map_err(|e| format!("making / private: {e}"))?;
    let scratch = spec.scratch.clone().ok_or("mounts need a scratch directory")?;
    let mut overlaid: Vec<PathBuf> = Vec::new();
    let mut mounts = spec.mounts.clone();
    // Parents before children, so a volume inside another volume's path lands on top.
    mounts.sort_by_key(|m| m.target.components().count());
    for m in &mounts {
        if !m.target.is_absolute() {
            return Err(format!("mount path {} is not absolute", m.target.display()));
        }
        let is_file = m.source.is_file();
        if std::fs::symlink_metadata(&m.target).is_err() {
            let ancestor = m
                .target
                .ancestors()
                .skip(1)
                .find(|a| a.exists())
                .ok_or_else(|| format!("no ancestor of {} exists", m.target.display()))?
                .canonicalize()
                .map_err(|e| format!("resolving the parent of {}: {e}", m.target.display()))?;
            if ancestor == Path::new("/") {
                return Err(format!("mount path {}: its top-level directory does not exist, and the local backend will not overlay /", m.target.display()));
            }
            if !overlaid.iter().any(|o| ancestor.starts_with(o)) {
                let n = overlaid.len();
                let (upper, work) = (scratch.join(format!("overlay-{n}/upper")), scratch.join(format!("overlay-{n}/work")));
                for d in [&upper, &work] {
                    std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
                }
                let opts = format!("lowerdir={},upperdir={},workdir={}", ancestor.display(), upper.display(), work.display());
                mount(Some("overlay"), &ancestor, Some("overlay"), MsFlags::empty(), Some(opts.as_str()))
                    .map_err(|e| format!("overlay over {}: {e}", ancestor.display()))?;
                overlaid.push(ancestor);
            }
            if is_file {
                if let Some(parent) = m.target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
                }
                std::fs::write(&m.target, b"").map_err(|e| format!("creating {}: {e}", m.target.display()))?;
            } else {
                std::fs::create_dir_all(&m.target).map_err(|e| format!("creating {}: {e}", m.target.display()))?;
            }
        }
        mount(Some(&m.source), &m.target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| format!("bind-mounting {} at {}: {e}", m.source.display(), m.target.display()))?;
        if m.read_only {
            mount(None::<&str>, &m.target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
                .map_err(|e| format!("making {} read-only: {e}", m.target.display()))?;
        }
    }
    Ok(())
}
