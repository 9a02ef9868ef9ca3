# shellcheck shell=bash
# Shared by the set-up scripts (sourced, not run).

# apt_install PACKAGE…: install Debian packages without starting their system services
# (slapd, haproxy, prometheus and docker.io start one from their postinst; firedrill starts
# its own instances). A policy-rc.d already on the machine is left as it is.
apt_install() {
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
  [[ $own_policy == 1 ]] && rm -f "$policy"
  return $status
}
