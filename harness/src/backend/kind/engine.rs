//! Which Docker engine the kind backend talks to, and firedrill's own.
//!
//! The engine is the one the Docker CLI would use (`DOCKER_HOST`, a Docker context, the
//! machine's socket), with one addition: where none of those is set or answers and the
//! engine `ci/docker.sh` started for firedrill does, firedrill's own. That engine is its
//! own in every path — socket, data root, exec root, bridge, configuration — so it never
//! takes over, re-addresses or writes into an engine of the machine's, running or stopped.
//!
//! A kind run records the engine it was made on; `down`, `recover` and attaching refuse to
//! act on another one (the same names on another engine are not the run's).

use std::path::Path;
use std::sync::OnceLock;

/// firedrill's own engine: where it listens and keeps everything, all root-owned paths
/// (root executes what it configures; nothing there is the invoking user's).
pub const OWN_SOCKET: &str = "/run/firedrill/docker.sock";
pub const OWN_EXEC_ROOT: &str = "/run/firedrill/docker";
pub const OWN_PIDFILE: &str = "/run/firedrill/dockerd.pid";
/// Its configuration, log and runtime wrapper (`ci/docker.sh`).
pub const OWN_DIR: &str = "/var/lib/firedrill/docker";
pub const OWN_DATA_ROOT: &str = "/var/lib/firedrill/docker/root";
/// Its default bridge, created by `ci/docker.sh` with the address plan's address (an
/// engine re-addresses `docker0` when it is given a `bip`; this one never touches it).
pub const OWN_BRIDGE: &str = "fd-docker0";
/// The machine's default engine socket.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// `DOCKER_HOST` for firedrill's own engine.
pub fn own_host() -> String {
    format!("unix://{OWN_SOCKET}")
}

/// `DOCKER_HOST` the backend adds to the commands it runs: firedrill's own engine, where
/// the CLI has no engine of its own to use and firedrill's answers. Decided once.
pub fn selected() -> Option<&'static str> {
    static SELECTED: OnceLock<Option<String>> = OnceLock::new();
    SELECTED
        .get_or_init(|| {
            let chosen = std::env::var_os("DOCKER_HOST").is_some()
                || std::env::var_os("DOCKER_CONTEXT").is_some()
                || has_current_context()
                || answers(Path::new(DEFAULT_SOCKET));
            (!chosen && answers(Path::new(OWN_SOCKET))).then(own_host)
        })
        .as_deref()
}

/// The engine commands run against: `DOCKER_HOST` as they carry it, or None for the CLI's
/// own default (its socket or context).
pub fn in_effect() -> Option<String> {
    selected().map(str::to_string).or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
}

/// How the engine in effect is described in output.
pub fn describe(host: Option<&str>) -> String {
    match host {
        Some(h) if h == own_host() => format!("firedrill's own engine ({h})"),
        Some(h) => format!("DOCKER_HOST={h}"),
        None => "the Docker CLI's default engine".to_string(),
    }
}

/// A `std::process::Command` for `program` (docker, kind) against the engine in effect.
pub fn command(program: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    if let Some(h) = selected() {
        cmd.env("DOCKER_HOST", h);
    }
    cmd
}

/// [`command`] as a `duct` expression, for the backend's own commands and pipes.
pub fn expression<A: Into<std::ffi::OsString>>(program: &str, args: impl IntoIterator<Item = A>) -> duct::Expression {
    let cmd = duct::cmd(program, args);
    match selected() {
        Some(h) => cmd.env("DOCKER_HOST", h),
        None => cmd,
    }
}

/// Whether something accepts connections on the Unix socket at `path`.
fn answers(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Whether the Docker CLI's configuration names a current context other than the default.
fn has_current_context() -> bool {
    let dir = std::env::var_os("DOCKER_CONFIG").map(std::path::PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
    let Some(text) = dir.and_then(|d| std::fs::read_to_string(d.join("config.json")).ok()) else { return false };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("currentContext").and_then(|c| c.as_str()).map(|c| !c.is_empty() && c != "default"))
        .unwrap_or(false)
}

/// A plan's `engine` field as it was written: absent is `None` (a plan from before engines
/// were recorded), `null` is `Some(None)` (the CLI's default engine), else the host.
pub fn deserialize_recorded<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Refuse to act on a run recorded on another engine than the one in effect. `recorded` is
/// the plan's `engine` field: absent (a plan from before engines were recorded) is not
/// checked.
pub fn check(run: &str, recorded: Option<Option<String>>) -> Result<(), super::BackendError> {
    let Some(recorded) = recorded else { return Ok(()) };
    let now = in_effect();
    if recorded == now {
        return Ok(());
    }
    let fix = match &recorded {
        Some(h) => format!("run it with DOCKER_HOST={h}"),
        None => "run it without DOCKER_HOST, against the Docker CLI's default engine".to_string(),
    };
    Err(super::BackendError::Setup(format!(
        "kind run {run} was made on {}, but this firedrill talks to {}: its containers are not there; {fix}",
        describe(recorded.as_deref()),
        describe(now.as_deref())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_acted_on_only_on_its_own_engine() {
        // Plans from before engines were recorded are not checked.
        assert!(check("r", None).is_ok());
        assert!(check("r", Some(in_effect())).is_ok());
        let other = Some("unix:///nonexistent/other.sock".to_string());
        let e = check("r", Some(other)).unwrap_err().to_string();
        assert!(e.contains("DOCKER_HOST=unix:///nonexistent/other.sock"), "{e}");
    }

    #[test]
    fn own_paths_are_outside_any_users_home_and_the_machines_engine() {
        for p in [OWN_SOCKET, OWN_EXEC_ROOT, OWN_PIDFILE, OWN_DIR, OWN_DATA_ROOT] {
            assert!(p.starts_with("/run/firedrill/") || p.starts_with("/var/lib/firedrill/"), "{p}");
        }
        assert_ne!(OWN_BRIDGE, "docker0");
        assert!(OWN_BRIDGE.len() <= 15, "an interface name holds at most 15 bytes");
    }
}
