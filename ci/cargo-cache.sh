#!/usr/bin/env bash
# usage: ci/cargo-cache.sh restore|save   (CARGO=… for another cargo)
#
# The compiled dependencies of the workspace (every crate from the registry, none of the
# workspace's own), kept in the per-user cache keyed by what decides them: Cargo.lock,
# every Cargo.toml of the workspace (profiles, features), the toolchain (`rustc -vV`,
# `cargo -V`) and RUSTFLAGS. A fresh checkout then compiles only the workspace's crates.
#
# restore: into a target/debug that holds no build yet; a target already built is left
#          as it is (Cargo's own fingerprints decide what to rebuild there).
# save:    after a build, when no cache of this key exists yet; written aside and renamed,
#          so that a save cut short leaves nothing another restore would take. The two
#          newest keys are kept.
#
# Cargo decides for itself whether a restored artefact is fresh: a registry crate's
# fingerprint is its version, features and profile, never a file's time, so a key that
# differs in anything Cargo checks is rebuilt as if there were no cache.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
cache=${FIREDRILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/firedrill}/cargo
target=target/debug

key=$( {
  cat Cargo.lock
  git ls-files -z -- 'Cargo.toml' '*/Cargo.toml' | xargs -0 cat
  rustc -vV
  "$cargo" -V
  printf 'RUSTFLAGS=%s\n' "${RUSTFLAGS:-}"
} | sha256sum | cut -c1-16)
dir=$cache/$key

case ${1:-} in
  restore)
    if [[ -d $target/.fingerprint ]]; then
      echo "cargo-cache: $target already built; left as it is" >&2
    elif [[ -d $dir ]]; then
      mkdir -p "$target"
      cp -a "$dir/." "$target/"
      echo "cargo-cache: dependencies restored from $dir ($(du -sh "$dir" | cut -f1))" >&2
    else
      echo "cargo-cache: no dependencies cached for key $key; Cargo builds them" >&2
    fi
    ;;
  save)
    if [[ -d $dir ]]; then exit 0; fi
    [[ -d $target/.fingerprint ]] || { echo "cargo-cache: nothing built in $target to save" >&2; exit 1; }
    # The workspace's own units: their fingerprint directories are named PACKAGE-HASH, and
    # every artefact of a unit carries its HASH.
    mapfile -t own < <("$cargo" metadata --no-deps --format-version 1 | jq -r '.packages[].name')
    hashes=()
    for fp in "$target"/.fingerprint/*; do
      name=$(basename "$fp")
      for pkg in "${own[@]}"; do
        [[ ${name%-*} == "$pkg" ]] && hashes+=("${name##*-}")
      done
    done
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/.saving.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/deps" "$tmp/build" "$tmp/.fingerprint"
    is_own() {
      local h
      for h in "${hashes[@]}"; do [[ $1 == *-"$h" || $1 == *-"$h".* ]] && return 0; done
      return 1
    }
    for sub in deps build .fingerprint; do
      for f in "$target/$sub"/*; do
        [[ -e $f ]] || continue
        is_own "$(basename "$f")" || cp -a "$f" "$tmp/$sub/"
      done
    done
    if mv -T "$tmp" "$dir" 2>/dev/null; then
      trap - EXIT
      echo "cargo-cache: dependencies saved in $dir ($(du -sh "$dir" | cut -f1))" >&2
    fi
    # Keep the two newest keys.
    find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name '.saving.*' -printf '%T@ %p\n' |
      sort -rn | tail -n +3 | cut -d' ' -f2- | xargs -r rm -rf
    ;;
  *)
    echo "usage: ci/cargo-cache.sh restore|save" >&2
    exit 2
    ;;
esac
