#!/usr/bin/env bash
# A Docker engine for firedrill, idempotently: the kind backend needs one, and the local
# backend must keep working next to one (its coexistence test runs with this engine up).
#
#   - an engine the Docker CLI already reaches (DOCKER_HOST, a context, the machine's
#     socket) is used as it is: never reconfigured, never restarted. If its addresses are
#     outside the address plan (`firedrill addresses`), this says what the kind backend
#     needs and leaves it alone;
#   - otherwise firedrill's own engine (root): Debian's docker.io installed when dockerd is
#     missing, and dockerd started on paths of its own, all root-owned: socket
#     /run/firedrill/docker.sock, data root /var/lib/firedrill/docker/root, exec root
#     /run/firedrill/docker, bridge fd-docker0 (created here with the plan's address),
#     configuration, log and runtime wrapper in /var/lib/firedrill/docker
#     (`firedrill addresses --docker-daemon-json --own-engine`): no masquerade, no IP
#     forwarding, and — only where the host's capability bounding set lacks a capability —
#     fixtures/docker/runc-capbnd as the default runtime, so that privileged containers
#     start. An engine of the machine's that is installed but not running is reported and
#     left as it is: its socket, data, docker0 and service are never touched. The scripts
#     and the harness reach firedrill's engine through DOCKER_HOST (ci/lib.sh use_engine).
#   - `--stop`: stops firedrill's own engine and removes its bridge (`make down`); an
#     engine still holding containers (a kept run of another state directory) is left
#     running, with the reason.
#
# Usage: ci/docker.sh FIREDRILL_BINARY | ci/docker.sh --stop FIREDRILL_BINARY
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
stop=0
if [[ ${1:-} == --stop ]]; then stop=1; shift; fi
firedrill=${1:?usage: ci/docker.sh [--stop] FIREDRILL_BINARY}
export PATH=$PATH:/usr/sbin:/sbin
log() { printf 'docker: %s\n' "$*" >&2; }
# shellcheck source=lib.sh
. "$root/ci/lib.sh"

config=$("$firedrill" addresses --docker-daemon-json --own-engine)
own=$(jq -r '.hosts[0]' <<<"$config")
pidfile=$(jq -r .pidfile <<<"$config")
bridge=$(jq -r .bridge <<<"$config")
dir=$(dirname "$(jq -r '."data-root"' <<<"$config")")
own_up() { DOCKER_HOST=$own docker info >/dev/null 2>&1; }
# The pid in the pid file, when that process is a dockerd (/run outlives a reboot on some
# machines, and a pid is reused).
own_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] && echo "$pid"
}

if ((stop)); then
  pid=$(own_pid) || { log "firedrill's own engine is not running"; exit 0; }
  containers=$(DOCKER_HOST=$own docker ps -aq 2>/dev/null | wc -l)
  if ((containers > 0)); then
    log "firedrill's own engine ($own) still holds $containers containers (a run of another state directory?): left running"
    log "  see them with: DOCKER_HOST=$own docker ps -a"
    exit 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "firedrill's own engine (pid $pid) did not stop within 30 s; its log: $dir/dockerd.log"
    exit 1
  fi
  if ip link show "$bridge" >/dev/null 2>&1; then ip link delete "$bridge"; fi
  # The engine leaves its bridge's rules behind when it stops; the chains themselves are
  # Docker's, shared with any other engine of the machine, and stay.
  for table in filter nat; do
    { iptables -t "$table" -S 2>/dev/null || true; } | { grep -E -- "-[io] $bridge( |$)" || true; } | sed 's/^-A /-D /' |
      while read -r rule; do eval "iptables -t $table $rule"; done
  done
  log "firedrill's own engine stopped; its images stay in $dir/root for the next start"
  exit 0
fi

if [[ ${DOCKER_HOST:-} == "$own" ]] && own_up; then
  exit 0
fi
if docker info >/dev/null 2>&1; then
  current=$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null || true)
  want=$("$firedrill" addresses --docker-daemon-json)
  want_bip=$(jq -r .bip <<<"$want") want_pool=$(jq -r '."default-address-pools"[0].base' <<<"$want")
  log "using the Docker engine already running (${DOCKER_HOST:-"the CLI's default"}; not started by firedrill, left as it is)"
  if [[ $current != "${want_bip%.*}.0/${want_bip#*/} " ]]; then
    log "its default bridge is ${current:-unknown}; the kind backend needs the address plan's:"
    log "  \"bip\": \"$want_bip\", \"default-address-pools\": [{\"base\": \"$want_pool\", \"size\": 24}] in its daemon.json"
  fi
  exit 0
fi
if [[ -n ${DOCKER_HOST:-} ]]; then
  log "DOCKER_HOST=$DOCKER_HOST does not answer: start that engine, or unset DOCKER_HOST for firedrill's own ($own)"
  exit 1
fi
own_up && exit 0

if [[ $(id -u) -ne 0 ]]; then
  log "no Docker engine runs and starting firedrill's own needs root: run 'make setup' as root, or start an engine with the configuration 'firedrill addresses --docker-daemon-json' prints"
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing Debian's docker.io (its service is neither started nor enabled)"
  apt_install docker.io jq
else
  log "the machine's Docker engine ($(command -v dockerd)) is installed but not running: left as it is, not started"
fi

# Root executes the runtime wrapper and reads the configuration: both live in a root-owned
# directory, never in a user's cache.
install -d -m 0755 -o root -g root "$dir"
runtime=()
bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
last=$(cat /proc/sys/kernel/cap_last_cap)
if (((0x$bnd & ((1 << (last + 1)) - 1)) != (1 << (last + 1)) - 1)); then
  install -m 0755 -o root -g root "$root/fixtures/docker/runc-capbnd" "$dir/runc-capbnd"
  runtime=(--runtime "$dir/runc-capbnd")
  log "the capability bounding set ($bnd) lacks capabilities privileged containers get: runtime wrapper $dir/runc-capbnd"
fi
"$firedrill" addresses --docker-daemon-json --own-engine "${runtime[@]}" >"$dir/daemon.json.new" && mv "$dir/daemon.json.new" "$dir/daemon.json"

# A pid file of a dockerd something killed: dockerd refuses to start while it names a
# live process.
if [[ -f $pidfile ]] && ! own_pid >/dev/null; then rm -f "$pidfile"; fi
address=$("$firedrill" addresses --own-bridge)
# The plan's bridge block on an interface of someone else's (an engine once started with
# the plan's "bip" keeps its docker0 after it stops): two routes for one block.
clash=$(ip -o -4 addr show to "$address" | awk -v b="$bridge" '$2 != b {print $2}')
if [[ -n $clash ]]; then
  log "the address plan's bridge block ($address) is already on $clash, which firedrill's engine does not own: left as it is;"
  log "  remove it (if it is an engine's bridge, stop that engine first), or start that engine and use it instead"
  exit 1
fi
if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add "$bridge" type bridge
fi
ip -4 addr show dev "$bridge" | grep -qF "inet $address " || ip addr replace "$address" dev "$bridge"
ip link set "$bridge" up

log "starting firedrill's own engine ($own; $dir/daemon.json, log $dir/dockerd.log)"
setsid dockerd --config-file "$dir/daemon.json" </dev/null >>"$dir/dockerd.log" 2>&1 &
for _ in $(seq 1 600); do
  own_up && { log "engine up: $(DOCKER_HOST=$own docker version --format '{{.Server.Version}}'); use it with DOCKER_HOST=$own"; exit 0; }
  kill -0 $! 2>/dev/null || break
  sleep 0.1
done
log "dockerd did not come up; the end of $dir/dockerd.log:"
tail -n 20 "$dir/dockerd.log" >&2
exit 1
