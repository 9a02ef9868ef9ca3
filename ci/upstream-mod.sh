#!/usr/bin/env bash
# Regenerate the wrapper Go modules under fixtures/upstream/ from fixtures/versions.env.
# Run after bumping a version; commit the resulting go.mod and go.sum files.
# (ci/setup.sh refuses to build when a wrapper module disagrees with versions.env.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../fixtures/versions.env
. "$root/fixtures/versions.env"
up="$root/fixtures/upstream"
export GOFLAGS=-mod=mod GOTOOLCHAIN=$GO_TOOLCHAIN
# The checksum database has no entry for this pseudo-version of dex's api/v2 submodule;
# its hash is recorded in fixtures/upstream/dex/go.sum from the proxy's copy instead, and
# builds verify against go.sum.
export GONOSUMDB=github.com/dexidp/dex/api/v2

k8s_minor=${KUBERNETES_VERSION#v1.}     # 36.3
staging_version="v0.${k8s_minor}"       # v0.36.3

(
  cd "$up/kubernetes"
  rm -f go.mod go.sum
  go mod init firedrill.local/upstream/kubernetes >/dev/null 2>&1
  go mod edit -go=1.26.0 -require="k8s.io/kubernetes@${KUBERNETES_VERSION}"
  # k8s.io/kubernetes replaces its staging modules with ./staging paths, which do not
  # exist outside its repository: point each one at the published module of the same release.
  for m in $(curl -fsS "${GOPROXY_URL:-https://proxy.golang.org}/k8s.io/kubernetes/@v/${KUBERNETES_VERSION}.mod" \
      | awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}'); do
    go mod edit -replace="${m}=${m}@${staging_version}"
  done
  go mod tidy
)

(
  cd "$up/etcd"
  rm -f go.mod go.sum
  go mod init firedrill.local/upstream/etcd >/dev/null 2>&1
  go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  go mod edit -go=1.26.0
  go mod tidy
)

# etcd's tools (etcdctl, etcdutl) of the same release, as `tool` requirements.
(
  cd "$up/etcd-tools"
  rm -f go.mod go.sum
  go mod init firedrill.local/upstream/etcd-tools >/dev/null 2>&1
  go mod edit -go=1.26.0
  go get -tool "go.etcd.io/etcd/etcdctl/v3@${ETCD_VERSION}" "go.etcd.io/etcd/etcdutl/v3@${ETCD_VERSION}"
  go mod tidy
)

(
  cd "$up/dex"
  rm -f go.mod go.sum
  go mod init firedrill.local/upstream/dex >/dev/null 2>&1
  go mod edit -require="github.com/dexidp/dex@${DEX_VERSION}"
  go mod edit -replace="github.com/dexidp/dex/api/v2=github.com/dexidp/dex/api/v2@${DEX_API_VERSION}"
  go mod edit -go=1.21
  GOTOOLCHAIN=$DEX_GO_TOOLCHAIN go mod tidy
)
echo "wrapper modules regenerated from fixtures/versions.env"
