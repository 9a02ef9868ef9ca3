//! Ending a node container that will not end. runc inside a kind node freezes a pod
//! container's cgroup while it sets that container up (cgroup v1's freezer). A node stopped
//! or killed in that moment leaves the cgroup frozen, and a frozen process never dies, so
//! the node's first process waits for it forever and the engine gives up: "tried to kill
//! container, but did not receive an exit event". Seen on this machine in `stop-cluster`,
//! and then in every `down` after it. The cure is the freezer's own: thaw every cgroup
//! under the node's (the pending SIGKILL then takes its processes) and ask again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{run, run_async};
use crate::backend::BackendError;

/// Thaw every frozen cgroup under a container's: cgroup v1's `freezer.state`, v2's
/// `cgroup.freeze`. Returns the cgroups thawed. A container that is not running has none.
pub fn thaw(container: &str) -> Result<Vec<PathBuf>, BackendError> {
    let out = run("docker", &["inspect", "--format", "{{.State.Pid}} {{.Id}}", container])?;
    let mut fields = out.split_whitespace();
    let (Some(pid), Some(id)) = (fields.next(), fields.next()) else { return Ok(vec![]) };
    if pid == "0" {
        return Ok(vec![]);
    }
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut thawed = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let (mount, state_file, frozen, thawed_value) = match controllers {
            c if c.split(',').any(|c| c == "freezer") => ("/sys/fs/cgroup/freezer", "freezer.self_freezing", "1", ("freezer.state", "THAWED")),
            "" => ("/sys/fs/cgroup", "cgroup.freeze", "1", ("cgroup.freeze", "0")),
            _ => continue,
        };
        let root = Path::new(mount).join(container_root(path, id).trim_start_matches('/'));
        for dir in dirs_under(&root) {
            if std::fs::read_to_string(dir.join(state_file)).is_ok_and(|s| s.trim() == frozen) {
                std::fs::write(dir.join(thawed_value.0), thawed_value.1).map_err(|source| BackendError::Io { path: dir.join(thawed_value.0), source })?;
                thawed.push(dir);
            }
        }
    }
    Ok(thawed)
}

/// The container's own cgroup: the first process's path cut after the part naming the
/// container's id (`/docker/<id>`, `/system.slice/docker-<id>.scope`); the first
/// process's own path when no part does (systemd inside may have moved itself lower).
fn container_root<'a>(path: &'a str, id: &str) -> &'a str {
    match path.find(id) {
        Some(at) => {
            let end = path[at..].find('/').map_or(path.len(), |e| at + e);
            &path[..end]
        }
        None => path,
    }
}

fn dirs_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        todo.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()));
        out.push(d);
    }
    out
}

/// Run a docker command that ends `containers` (`stop`, `kill`, `rm --force`). If it
/// fails while one of them still runs, thaw their frozen cgroups, wait until they have
/// ended, and run it once more; an error then says what was thawed.
pub async fn end_containers(args: Vec<String>, containers: &[String]) -> Result<(), BackendError> {
    let first = match run_async("docker", args.clone(), vec![]).await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let mut thawed = Vec::new();
    for c in containers {
        thawed.extend(thaw(c).unwrap_or_default());
    }
    if thawed.is_empty() {
        return Err(first);
    }
    tracing::warn!(cgroups = ?thawed, "thawed frozen cgroups left in node containers; ending them again");
    for _ in 0..40 {
        if !containers.iter().any(|c| super::ops::running(c).unwrap_or(false)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let again = if args.first().is_some_and(|a| a == "kill") {
        // A killed container that has ended has nothing left to kill.
        let still: Vec<String> = containers.iter().filter(|c| super::ops::running(c).unwrap_or(true)).cloned().collect();
        if still.is_empty() { Ok(String::new()) } else { run_async("docker", [vec!["kill".to_string()], still].concat(), vec![]).await }
    } else {
        run_async("docker", args, vec![]).await
    };
    again.map(|_| ()).map_err(|e| BackendError::Setup(format!("{first}; after thawing {} frozen cgroup(s) in the node containers, still: {e}", thawed.len())))
}

#[cfg(test)]
mod tests {
    use super::container_root;

    #[test]
    fn the_containers_own_cgroup_is_cut_after_its_id() {
        assert_eq!(container_root("/docker/abc123/kubelet.slice/x.scope", "abc123"), "/docker/abc123");
        assert_eq!(container_root("/system.slice/docker-abc123.scope/init.scope", "abc123"), "/system.slice/docker-abc123.scope");
        assert_eq!(container_root("/docker/abc123", "abc123"), "/docker/abc123");
        assert_eq!(container_root("/init.scope", "abc123"), "/init.scope");
    }
}
