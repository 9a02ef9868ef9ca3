#!/usr/bin/env bash
# After the tests: nothing firedrill creates may remain on this machine — no process it
# started, network namespace, link, bridge, nftables table, mount or cgroup.
# Exits 1 and lists what it found otherwise.
set -u
found=()
while read -r ns _; do [[ $ns == fd* ]] && found+=("netns $ns"); done < <(ip netns list 2>/dev/null)
while read -r link; do found+=("link $link"); done < <(ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -E '^fd[0-9]')
while read -r t; do found+=("nft $t"); done < <(nft list tables 2>/dev/null | grep -i firedrill)
while read -r m; do found+=("mount $m"); done < <(awk '$5 ~ /firedrill|\/run\/netns\/fd/ {print $5}' /proc/self/mountinfo)
while read -r cg; do
  procs=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | wc -l)
  found+=("cgroup $cg ($procs processes)")
done < <(find /sys/fs/cgroup -maxdepth 3 -type d -name firedrill 2>/dev/null | while read -r d; do find "$d" -mindepth 1 -maxdepth 1 -type d; done)
while read -r p; do found+=("process $p"); done < <(pgrep -af 'firedrill (__daemon|__shim)|firedrill-run-' 2>/dev/null)
if ((${#found[@]})); then
  printf 'left behind by firedrill:\n' >&2
  printf '  %s\n' "${found[@]}" >&2
  exit 1
fi
echo "leftovers: none"
