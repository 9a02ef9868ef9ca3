# shellcheck shell=bash
# Shared by the set-up scripts (sourced, not run).

# apt_install PACKAGE…: install Debian packages without starting their system services
# (slapd, haproxy, prometheus and docker.io start one from their postinst; firedrill starts
# its own instances), and without leaving them enabled: where systemd runs, the units the
# packages enabled are disabled again, so that nothing starts at the next boot (prometheus
# would listen on 0.0.0.0:9090). Only packages this call installs: one already on the
# machine is left as it is. A policy-rc.d already on the machine is left as it is too; the
# one this writes is removed however the install ends (an error, Ctrl-C, a kill).
apt_install() {
  local policy=/usr/sbin/policy-rc.d
  (
    if [[ ! -e $policy ]]; then
      trap 'rm -f "$policy"' EXIT
      trap 'exit 130' INT TERM
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    fi
    local before
    before=$(systemctl list-unit-files --state=enabled --no-legend 2>/dev/null | awk '{print $1}' | sort)
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || exit
    # systemd is the init only where /run/systemd/system exists.
    [[ -d /run/systemd/system ]] || exit 0
    local unit
    comm -13 <(printf '%s\n' "$before") <(systemctl list-unit-files --state=enabled --no-legend | awk '{print $1}' | sort) |
      while read -r unit; do
        [[ -n $unit ]] || continue
        systemctl disable "$unit" >/dev/null 2>&1 && printf 'setup: %s: disabled (installed by firedrill'"'"'s set-up, never started)\n' "$unit" >&2
      done
  )
}

# use_engine: the Docker engine firedrill's scripts and tests talk to, as the kind backend
# chooses it (harness/src/backend/kind/engine.rs): the one the Docker CLI reaches
# (DOCKER_HOST, a context, the machine's socket) when it answers, else firedrill's own
# (ci/docker.sh), then exported as DOCKER_HOST for everything started after.
use_engine() {
  local own=unix:///run/firedrill/docker.sock
  [[ -z ${DOCKER_HOST:-} ]] || return 0
  docker info >/dev/null 2>&1 && return 0
  if DOCKER_HOST=$own docker info >/dev/null 2>&1; then export DOCKER_HOST=$own; fi
  return 0
}
