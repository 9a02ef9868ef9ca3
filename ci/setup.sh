#!/usr/bin/env bash
# Install and build everything firedrill needs on this machine, idempotently.
#
#   - Debian packages the drills use, installed only when missing;
#   - the pinned upstream binaries (fixtures/versions.env), built from the Go module
#     proxy through the wrapper modules in fixtures/upstream/, into a per-user cache
#     keyed by version and by the hash of the wrapper module. A warm rerun builds nothing.
#
# Prints the cache directory on its last line. Build times of the last cold build of each
# component are kept in "$cache/build-times".
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../fixtures/versions.env
. "$root/fixtures/versions.env"
cache=${FIREDRILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/firedrill}
mkdir -p "$cache"

log() { printf 'setup: %s\n' "$*" >&2; }

# What to set up: everything (no argument), or a part. `local`: the Debian packages and the
# builds the local backend runs (and every test but the kind backend's); `kind`: what only
# the kind backend's node image adds (kubeadm, kubelet, kube-proxy, kind, containerd, crictl,
# the CNI plugins). `make test` builds the kind part in the background while the local
# backend's tests run.
part=${1:-all}
case $part in
  all | local | kind) ;;
  *) log "unknown part '$part': ci/setup.sh [local|kind]"; exit 2 ;;
esac
want() { [[ $part == all || $part == "$1" ]]; }
# shellcheck source=lib.sh
. "$root/ci/lib.sh"

# --- Debian packages -----------------------------------------------------------------
# Each entry: package:command-that-proves-it-is-installed[|another]. Chromium lays out the
# HTML report in a test; a runner's own Chromium or Chrome will do (Ubuntu's package is a snap).
debs=(
  nftables:nft
  iproute2:ip
  util-linux:nsenter
  bsdutils:script
  slapd:slapd
  ldap-utils:ldapsearch
  haproxy:haproxy
  prometheus:prometheus
  curl:curl
  procps:pgrep
  jq:jq
  patch:patch
  busybox-static:busybox
  shellcheck:shellcheck
  'chromium:chromium|chromium-browser|google-chrome'
)
missing=()
for entry in "${debs[@]}"; do
  pkg=${entry%%:*} found=0
  IFS='|' read -ra cmds <<<"${entry#*:}"
  for cmd in "${cmds[@]}"; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 && found=1
  done
  ((found)) || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages (${missing[*]}) and not root: install them or run as root"
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  apt_install "${missing[@]}"
fi

# --- Upstream binaries ---------------------------------------------------------------
# Every build links with -s -w (no symbol table, no DWARF), so the compiler need not write
# DWARF at all: the binaries behave the same and a cold build is about a fifth faster
# (etcd with an empty build cache: 92 s and 94 s without the flag, 72 s and 76 s with it).
nodwarf=-gcflags=all=-dwarf=false
# GO_TOOLCHAIN whatever Go is on PATH (the go command fetches it through the module proxy
# when it is not the machine's), so that every machine builds with the same Go, and every
# build's stamp names it.
export GOFLAGS="-mod=readonly $nodwarf" GOTOOLCHAIN=$GO_TOOLCHAIN CGO_ENABLED=0 nodwarf

# Refuse to build a wrapper module that disagrees with versions.env.
check_pin() { # module-dir module version
  if ! grep -qE "^[[:space:]]*(require )?$2 $3( |$)" "$root/fixtures/upstream/$1/go.mod"; then
    log "fixtures/upstream/$1/go.mod does not require $2 $3 (fixtures/versions.env); run ci/upstream-mod.sh"
    exit 1
  fi
}
check_pin kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION"
check_pin etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
check_pin etcd-tools go.etcd.io/etcd/etcdctl/v3 "$ETCD_VERSION"
check_pin etcd-tools go.etcd.io/etcd/etcdutl/v3 "$ETCD_VERSION"
check_pin dex github.com/dexidp/dex "$DEX_VERSION"

# build NAME VERSION MODULE-DIR BINARY... -- COMMAND...
# Runs COMMAND in fixtures/upstream/MODULE-DIR with $out set to the cache directory,
# unless every BINARY already exists there and the stamp (versions + module files) matches.
build() {
  local name=$1 version=$2 module=$3; shift 3
  local bins=()
  while [[ $1 != -- ]]; do bins+=("$1"); shift; done
  shift
  out="$cache/bin/$name-$version"
  local stamp
  stamp=$( {
    echo "$name $version ${GOTOOLCHAIN:-} $(go env GOVERSION)"
    if [[ -d $root/fixtures/upstream/$module ]]; then
      find "$root/fixtures/upstream/$module" -type f | sort | xargs cat
    fi
  } | sha256sum | cut -c1-16)
  local ok=1
  for b in "${bins[@]}"; do [[ -x $out/$b ]] || ok=0; done
  if [[ $ok == 1 && -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
    return 0
  fi
  log "building $name $version (cold builds take minutes on 2 cores)"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  local start=$SECONDS
  local final=$out
  export out="$out.tmp"
  (cd "$root/fixtures/upstream/$module" 2>/dev/null || cd "$root"; "$@")
  echo "$stamp" >"$out/.stamp"
  rm -rf "$final" && mv "$out" "$final"
  out=$final
  local took=$((SECONDS - start))
  log "built $name $version in ${took}s"
  { grep -v "^$name " "$cache/build-times" 2>/dev/null || true; echo "$name $version ${took}s"; } \
    >"$cache/build-times.tmp" && mv "$cache/build-times.tmp" "$cache/build-times"
}

k8s_minor=${KUBERNETES_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
export k8s_ldflags DEX_VERSION KIND_VERSION DEX_GO_TOOLCHAIN
# Each command runs with $out (exported by build) naming the directory to fill.

# k8s NAME PROGRAM...: Kubernetes' PROGRAMs in one go build of the wrapper module, as build NAME.
k8s() {
  local name=$1; shift
  build "$name" "$KUBERNETES_VERSION" kubernetes "$@" -- \
    sh -c 'go build -trimpath -ldflags "-s -w $k8s_ldflags" -o "$out/" "$@"' sh "${@/#/./cmd/}"
}

if want local; then
  k8s kubernetes kube-apiserver kube-controller-manager kube-scheduler kubectl

  build etcd "$ETCD_VERSION" etcd etcd -- \
    sh -c 'go build -trimpath -ldflags "-s -w" -o "$out/etcd" .'

  # etcd's own backup tooling, for the DR exercise: etcdctl takes the snapshot, etcdutl
  # checks and restores it.
  build etcd-tools "$ETCD_VERSION" etcd-tools etcdctl etcdutl -- \
    sh -c 'for t in etcdctl etcdutl; do go build -trimpath -ldflags "-s -w" -o "$out/$t" "go.etcd.io/etcd/$t/v3"; done'

  # dex v2.41 compiles its SQLite storage only with cgo (cmd/dex refers to it either way),
  # and is built with the Go toolchain of its release (see versions.env).
  GOTOOLCHAIN=$DEX_GO_TOOLCHAIN build dex "$DEX_VERSION" dex dex -- \
    sh -c 'CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=$DEX_VERSION" -o "$out/dex" github.com/dexidp/dex/cmd/dex'

  export ACTIONLINT_VERSION
  build actionlint "$ACTIONLINT_VERSION" actionlint actionlint -- \
    sh -c 'GOBIN="$out" GOFLAGS=$nodwarf go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"'

  # The pod sandbox ("pause") program, from the pinned Kubernetes module's source.
  pause_src=$(cd "$root/fixtures/upstream/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  export pause_src
  build pause "$KUBERNETES_VERSION" pause pause -- \
    sh -c 'gcc -Os -static -DVERSION="$KUBERNETES_VERSION" -o "$out/pause" "$pause_src" && strip "$out/pause"'
fi

# The kind backend's node image pieces (ci/kind-image.sh assembles them with Debian's userland).
if want kind; then
  # The node's own Kubernetes programs, from the same wrapper module (and Go build cache).
  k8s kubernetes-node kubeadm kubelet kube-proxy

  build kind "$KIND_VERSION" kind kind -- \
    sh -c 'GOBIN="$out" GOFLAGS=$nodwarf go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"'

  export CONTAINERD_VERSION CRICTL_VERSION CNI_PLUGINS_VERSION
  build containerd "$CONTAINERD_VERSION" containerd containerd ctr containerd-shim-runc-v2 -- \
    sh -c 'm=github.com/containerd/containerd/v2; GOBIN="$out" GOFLAGS=$nodwarf go install -trimpath \
      -tags "no_btrfs no_devmapper no_zfs no_aufs" -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" \
      "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/ctr@$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"'

  build crictl "$CRICTL_VERSION" crictl crictl -- \
    sh -c 'GOBIN="$out" GOFLAGS=$nodwarf go install -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
      "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"'

  build cni-plugins "$CNI_PLUGINS_VERSION" cni-plugins ptp host-local loopback portmap -- \
    sh -c 'm=github.com/containernetworking/plugins/plugins; GOBIN="$out" GOFLAGS=$nodwarf go install -trimpath -ldflags "-s -w" \
      "$m/main/ptp@$CNI_PLUGINS_VERSION" "$m/main/loopback@$CNI_PLUGINS_VERSION" \
      "$m/ipam/host-local@$CNI_PLUGINS_VERSION" "$m/meta/portmap@$CNI_PLUGINS_VERSION"'

  # The NetworkPolicy engine: the module's source from the proxy, patched to queue through
  # the xtables NFQUEUE target (kernels without nft_queue; see the patch's header).
  export KUBE_NETWORK_POLICIES_VERSION
  build kube-network-policies "$KUBE_NETWORK_POLICIES_VERSION" kube-network-policies netpol -- \
    sh -c 'src=$(GOFLAGS= go mod download -json "sigs.k8s.io/kube-network-policies@$KUBE_NETWORK_POLICIES_VERSION" | jq -r .Dir) &&
      w=$(mktemp -d) && cp -r "$src/." "$w" && chmod -R u+w "$w" &&
      patch -s -p1 -d "$w" <nfqueue-target.patch &&
      (cd "$w" && GOFLAGS="-mod=readonly $nodwarf" go build -trimpath -ldflags "-s -w" -o "$out/netpol" ./cmd); s=$?; rm -rf "$w"; exit $s'
fi

echo "$cache"
