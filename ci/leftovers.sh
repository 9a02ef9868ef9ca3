#!/usr/bin/env bash
# After the tests: nothing firedrill creates may remain on this machine — no process it
# started, network namespace, link, bridge, nftables table or rule, mount or cgroup, and
# no Docker container or network of its tests (named fd-…) or volume no container uses
# (images are a cache and stay).
# Exits 1 and lists what it found otherwise.
#
#   ci/leftovers.sh --record FILE   write what is there now (before the tests) to FILE
#   ci/leftovers.sh --since FILE    fail only on what is there now and was not in FILE
# Environments a developer kept (or a killed session left) before the tests started are
# theirs, not the tests': `--since` names them without failing.
set -u
mode=${1:-} baseline=${2:-}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
use_engine
found=()
while read -r ns _; do [[ $ns == fd* ]] && found+=("netns $ns"); done < <(ip netns list 2>/dev/null)
while read -r link; do found+=("link $link"); done < <(ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -E '^fd[0-9]')
while read -r t; do found+=("nft $t"); done < <(nft list tables 2>/dev/null | grep -i firedrill)
while read -r r; do found+=("nft rule $r"); done < <(nft list chain ip filter FORWARD 2>/dev/null | grep -o 'comment "firedrill [^"]*"')
# firedrill's own Docker engine (ci/docker.sh) mounts its data root on itself while it
# runs: the engine stays up between runs, as the machine's own would; its containers'
# mounts come and go with the containers, which are checked below.
while read -r m; do found+=("mount $m"); done < <(awk '$5 ~ /firedrill|\/run\/netns\/fd/ && $5 !~ /^\/var\/lib\/firedrill\/docker\/root($|\/)|^\/run\/firedrill\/docker\// {print $5}' /proc/self/mountinfo)
while read -r cg; do
  procs=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | wc -l)
  found+=("cgroup $cg ($procs processes)")
done < <(find /sys/fs/cgroup -maxdepth 3 -type d -name firedrill 2>/dev/null | while read -r d; do find "$d" -mindepth 1 -maxdepth 1 -type d; done)
if docker info >/dev/null 2>&1; then
  while read -r c; do found+=("docker container $c"); done < <(docker ps -a --format '{{.Names}}' | grep -E '^fd-')
  while read -r n; do found+=("docker network $n"); done < <(docker network ls --format '{{.Name}}' | grep -E '^fd-')
  # kind nodes' /var volumes are anonymous: any volume no container uses that was not there before.
  while read -r v; do found+=("docker volume $v"); done < <(docker volume ls -q --filter dangling=true)
fi
while read -r p; do found+=("process $p"); done < <(pgrep -af 'firedrill (__daemon|__shim)|firedrill-run-' 2>/dev/null)
# The kind backend's extra API servers (the cold-start probe's) run in a node's namespace.
while read -r p; do found+=("process $p"); done < <(pgrep -af 'kube-apiserver .*--endpoint-reconciler-type=none' 2>/dev/null)
if [[ $mode == --record ]]; then
  printf '%s\n' "${found[@]}" | sed '/^$/d' >"$baseline"
  exit 0
fi
if [[ $mode == --since ]]; then
  old=() new=()
  for f in "${found[@]}"; do
    key=${f% (*}
    if grep -qxF -- "$key" <(sed 's/ ([0-9]* processes)$//' "$baseline" 2>/dev/null); then old+=("$f"); else new+=("$f"); fi
  done
  if ((${#old[@]})); then
    printf 'there before the tests (not theirs; `firedrill sweep` lists what no run records):\n' >&2
    printf '  %s\n' "${old[@]}" >&2
  fi
  found=("${new[@]}")
fi
if ((${#found[@]})); then
  printf 'left behind by firedrill:\n' >&2
  printf '  %s\n' "${found[@]}" >&2
  exit 1
fi
echo "leftovers: none"
