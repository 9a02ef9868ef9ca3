#!/usr/bin/env bash
# A Docker engine for firedrill, idempotently: the kind backend needs one, and the local
# backend must keep working next to one (its coexistence test runs with this engine up).
#
#   - an engine already running is used as it is: never reconfigured, never restarted.
#     If its addresses are outside the address plan (`firedrill addresses`), this says
#     what the kind backend needs and leaves it alone;
#   - otherwise Debian's docker.io is installed when dockerd is missing, and dockerd is
#     started with firedrill's configuration (`firedrill addresses --docker-daemon-json`):
#     bridge and pools from the plan, no masquerade, and — only where the host's
#     capability bounding set lacks a capability — fixtures/docker/runc-capbnd as the
#     default runtime, so that privileged containers start.
#
# Usage: ci/docker.sh FIREDRILL_BINARY
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
firedrill=${1:?usage: ci/docker.sh FIREDRILL_BINARY}
cache=${FIREDRILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/firedrill}
dir=$cache/docker
export PATH=$PATH:/usr/sbin:/sbin
log() { printf 'docker: %s\n' "$*" >&2; }
# shellcheck source=lib.sh
. "$root/ci/lib.sh"

engine_up() { docker info >/dev/null 2>&1; }
ours() { [[ -f $dir/dockerd.pid ]] && kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null; }

if engine_up; then
  ours && exit 0
  bridge=$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null || true)
  want=$("$firedrill" addresses --docker-daemon-json)
  want_bip=$(jq -r .bip <<<"$want") want_pool=$(jq -r '."default-address-pools"[0].base' <<<"$want")
  log "using the Docker engine already running (not started by firedrill; left as it is)"
  if [[ $bridge != "${want_bip%.*}.0/${want_bip#*/} " ]]; then
    log "its default bridge is ${bridge:-unknown}; the kind backend needs the address plan's:"
    log "  \"bip\": \"$want_bip\", \"default-address-pools\": [{\"base\": \"$want_pool\", \"size\": 24}] in its daemon.json"
  fi
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "no Docker engine runs and starting one needs root: run 'make setup' as root, or start dockerd with the configuration 'firedrill addresses --docker-daemon-json' prints"
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing Debian's docker.io"
  apt_install docker.io jq
fi

mkdir -p "$dir"
# A pid file left by an engine this script started and something killed: dockerd refuses
# to start while it exists.
if [[ -f $dir/dockerd.pid ]] && ! ours; then rm -f "$dir/dockerd.pid"; fi
runtime=()
bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
last=$(cat /proc/sys/kernel/cap_last_cap)
if (((0x$bnd & ((1 << (last + 1)) - 1)) != (1 << (last + 1)) - 1)); then
  install -m 0755 "$root/fixtures/docker/runc-capbnd" "$dir/runc-capbnd"
  runtime=(--runtime "$dir/runc-capbnd")
  log "the capability bounding set ($bnd) lacks capabilities privileged containers get: runtime wrapper $dir/runc-capbnd"
fi
"$firedrill" addresses --docker-daemon-json "${runtime[@]}" >"$dir/daemon.json"

log "starting dockerd ($dir/daemon.json, log $dir/dockerd.log)"
setsid dockerd --config-file "$dir/daemon.json" --pidfile "$dir/dockerd.pid" </dev/null >>"$dir/dockerd.log" 2>&1 &
for _ in $(seq 1 600); do
  engine_up && { log "engine up: $(docker version --format '{{.Server.Version}}')"; exit 0; }
  kill -0 $! 2>/dev/null || break
  sleep 0.1
done
log "dockerd did not come up; the end of $dir/dockerd.log:"
tail -n 20 "$dir/dockerd.log" >&2
exit 1
