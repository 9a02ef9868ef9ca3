#!/usr/bin/env bash
# Build the kind backend's node image offline, from Debian's packages and the pinned Go
# builds of ci/setup.sh, the way `kind build node-image` assembles one (which needs a
# registry, so it cannot run here):
#
#   1. a Debian root filesystem (debootstrap, NODE_DEBIAN_SUITE) with the userland kind's base
#      image installs, runc included;
#   2. kind's base-image files (entrypoint, systemd units, containerd configuration), read
#      from the pinned kind module, and the trimming of systemd that kind's base image does;
#      then firedrill's own node files (fixtures/kind/node/);
#   3. containerd, crictl, the CNI plugins, kubeadm, kubelet and kubectl from the cache;
#   4. the images a node runs, made from the same builds and preloaded into the node's
#      containerd under the names `kubeadm config images list` gives (kube-apiserver,
#      kube-controller-manager, kube-scheduler, kube-proxy, etcd, pause) plus firedrill's
#      pod network (fixtures/kind/cni/, kind's kindnetd not being on the module proxy) and
#      its NetworkPolicy engine (fixtures/kind/netpol/, kube-network-policies).
#
# The image is named by a hash of every input and is built only when it is not in the
# Docker engine's store yet. Prints its name on the last line; also writes it to
# "$cache/kind/node-image" (read by the kind backend). Needs root and a running engine.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../fixtures/versions.env
. "$root/fixtures/versions.env"
cache=${FIREDRILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/firedrill}
bin=$cache/bin
log() { printf 'kind-image: %s\n' "$*" >&2; }
# shellcheck source=lib.sh
. "$root/ci/lib.sh"
use_engine

# The node's Debian packages: kind's base-image list, less what only rootless, NFS or iSCSI
# nodes use, plus runc (kind builds its own; containerd 2.x drives Debian's 1.1 the same way).
node_debs=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,runc

for b in kubernetes-node-$KUBERNETES_VERSION/kubeadm kubernetes-node-$KUBERNETES_VERSION/kubelet kubernetes-node-$KUBERNETES_VERSION/kube-proxy \
  kubernetes-$KUBERNETES_VERSION/kube-apiserver kubernetes-$KUBERNETES_VERSION/kubectl \
  etcd-$ETCD_VERSION/etcd containerd-$CONTAINERD_VERSION/containerd crictl-$CRICTL_VERSION/crictl \
  cni-plugins-$CNI_PLUGINS_VERSION/ptp pause-$KUBERNETES_VERSION/pause kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION/netpol; do
  [[ -x $bin/$b ]] || { log "$bin/$b is missing: run ci/setup.sh first"; exit 1; }
done
docker info >/dev/null 2>&1 || { log "no Docker engine answers: run ci/docker.sh first"; exit 1; }
[[ $(id -u) -eq 0 ]] || { log "building the node's root filesystem needs root"; exit 1; }
command -v debootstrap >/dev/null || PATH=$PATH:/usr/sbin
command -v debootstrap >/dev/null || apt_install debootstrap

kind_src=$(cd /tmp && GOFLAGS='' GOTOOLCHAIN=local go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
base_files=$kind_src/images/base/files
[[ -f $base_files/usr/local/bin/entrypoint ]] || { log "kind's base-image files are not in $kind_src"; exit 1; }

# Every input, hashed: this script, the fixtures, the pins, the builds' stamps, kind's files.
hash=$( {
  cat "$0" "$root/fixtures/versions.env"
  find "$root/fixtures/kind" -type f | sort | xargs cat
  cat "$bin"/{kubernetes-$KUBERNETES_VERSION,kubernetes-node-$KUBERNETES_VERSION,etcd-$ETCD_VERSION,containerd-$CONTAINERD_VERSION,crictl-$CRICTL_VERSION,cni-plugins-$CNI_PLUGINS_VERSION,pause-$KUBERNETES_VERSION,kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION}/.stamp
  find "$base_files" -type f | sort | xargs cat
  dpkg-query -W busybox-static
} | sha256sum | cut -c1-12)
image=firedrill.local/kind-node:$KUBERNETES_VERSION-$hash
mkdir -p "$cache/kind"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image" >"$cache/kind/node-image"
  echo "$image"
  exit 0
fi

start=$SECONDS
work=$(mktemp -d "$cache/kind/build.XXXXXX")
builder=fd-kind-build-$$
# The node's images are built under names of this build's own (firedrill.local/node-build-HASH/…)
# and take the names kubeadm asks for (registry.k8s.io/…) only inside the node's containerd:
# an image of the user's engine with one of those names is never overwritten or removed.
staging=firedrill.local/node-build-$hash
cleanup() {
  docker rm -f -v "$builder" >/dev/null 2>&1 || true
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$staging/" | xargs -r docker rmi >/dev/null 2>&1 || true
  docker rmi "firedrill.local/kind-base:$hash" "firedrill.local/kind-preloaded:$hash" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- 1. Debian root filesystem (cached by suite and package list) ---------------------
debs_key=$(echo "$NODE_DEBIAN_SUITE $node_debs" | sha256sum | cut -c1-12)
debootstrap_tar=$cache/kind/debootstrap-$NODE_DEBIAN_SUITE-$debs_key.tar
if [[ ! -f $debootstrap_tar ]]; then
  log "debootstrap $NODE_DEBIAN_SUITE (about a minute)"
  debootstrap --variant=minbase --include="$node_debs" "$NODE_DEBIAN_SUITE" "$work/debootstrap" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work"/debootstrap/usr/share/{doc,man,info,locale}/* "$work"/debootstrap/var/cache/apt/archives/*.deb "$work"/debootstrap/var/lib/apt/lists/*
  tar -C "$work/debootstrap" -cf "$debootstrap_tar.tmp" . && mv "$debootstrap_tar.tmp" "$debootstrap_tar"
  rm -rf "$work/debootstrap"
fi
rootfs=$work/rootfs
mkdir -p "$rootfs" && tar -C "$rootfs" -xf "$debootstrap_tar"

# --- 2. kind's base-image files and systemd set-up ------------------------------------
cp -r "$base_files/." "$rootfs/"
# The module cache is read-only: give what was copied the modes kind's base image gives it.
find "$base_files" -mindepth 1 -type d -printf '%P\n' | while read -r d; do chmod 0755 "$rootfs/$d"; done
find "$base_files" -type f -printf '%P\n' | while read -r f; do
  case $f in
    usr/local/bin/* | kind/bin/*) chmod 0755 "$rootfs/$f" ;;
    *) chmod 0644 "$rootfs/$f" ;;
  esac
done
# Only the units kind's node needs start: no tmpfiles set-up, no getty, no udev.
rm -f "$rootfs"/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service
rm -f "$rootfs"/lib/systemd/system/multi-user.target.wants/* "$rootfs"/etc/systemd/system/*.wants/* \
  "$rootfs"/lib/systemd/system/local-fs.target.wants/* "$rootfs"/lib/systemd/system/basic.target.wants/*
rm -f "$rootfs"/lib/systemd/system/sockets.target.wants/*udev* "$rootfs"/lib/systemd/system/sockets.target.wants/*initctl*
echo 'ReadKMsg=no' >>"$rootfs/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$rootfs/sbin/init"
chroot "$rootfs" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
chroot "$rootfs" systemctl mask systemd-binfmt.service >/dev/null 2>&1
mkdir -p "$rootfs/etc/kubernetes/manifests" "$rootfs/opt/cni/bin" "$rootfs/kind/manifests"
# firedrill's own node files (fixtures/kind/node/): the OOM-score guard before containerd.
cp -r "$root/fixtures/kind/node/." "$rootfs/"

# --- 3. Binaries ----------------------------------------------------------------------
install -m 0755 "$bin/containerd-$CONTAINERD_VERSION"/{containerd,ctr,containerd-shim-runc-v2} "$bin/crictl-$CRICTL_VERSION/crictl" "$rootfs/usr/local/bin/"
install -m 0755 "$bin/cni-plugins-$CNI_PLUGINS_VERSION"/{ptp,host-local,loopback,portmap} "$rootfs/opt/cni/bin/"
install -m 0755 "$bin/kubernetes-node-$KUBERNETES_VERSION"/{kubeadm,kubelet} "$bin/kubernetes-$KUBERNETES_VERSION/kubectl" "$rootfs/usr/bin/"
"$bin/containerd-$CONTAINERD_VERSION/ctr" oci spec |
  jq '.hooks.createContainer[.hooks.createContainer|length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
  jq 'del(.process.rlimits)' >"$rootfs/etc/containerd/cri-base.json"
echo "$KUBERNETES_VERSION" >"$rootfs/kind/version"
{
  cat "$root/fixtures/kind/cni/manifest.yaml"
  echo ---
  sed "s/NETPOL_VERSION/$KUBE_NETWORK_POLICIES_VERSION/" "$root/fixtures/kind/netpol/manifest.yaml"
} >"$rootfs/kind/manifests/default-cni.yaml"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV container=docker' --change 'ENTRYPOINT ["/usr/local/bin/entrypoint","/sbin/init"]' \
  - "firedrill.local/kind-base:$hash" >/dev/null

# --- 4. The images a node runs --------------------------------------------------------
# image REF -- DIR [ENTRYPOINT-JSON]: import DIR for the node as REF: in Docker under this
# build's staging name (images: the staging names; refs: what each is called in the node).
images=() refs=()
image() {
  local ref=$1 dir=$3 entrypoint=${4:-}
  local staged=$staging/${ref##*/}
  local changes=(--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin')
  [[ -n $entrypoint ]] && changes+=(--change "ENTRYPOINT $entrypoint")
  tar -C "$dir" -c . | docker import "${changes[@]}" - "$staged" >/dev/null
  images+=("$staged") refs+=("$ref")
}
# closure ROOT DEST PATH...: copy each PATH of ROOT, and the shared libraries it loads, to DEST.
closure() {
  local from=$1 to=$2; shift 2
  local f
  for f in "$@"; do
    printf '%s\n' "$f"
    chroot "$from" ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
  done | sort -u | while read -r p; do
    mkdir -p "$to/$(dirname "$p")" && cp -L "$from/$p" "$to/$p"
  done
}
mapfile -t wanted < <("$bin/kubernetes-node-$KUBERNETES_VERSION/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION" 2>/dev/null)
# containerd's sandbox image, as kind's containerd configuration names it.
sandbox=$(sed -n 's/^ *sandbox_image = "\(.*\)"/\1/p' "$rootfs/etc/containerd/config.toml")
for ref in "${wanted[@]}" "$sandbox"; do
  name=${ref%:*} name=${name##*/}
  d=$work/images/$name && mkdir -p "$d/usr/local/bin"
  case $name in
    kube-apiserver | kube-controller-manager | kube-scheduler)
      cp "$bin/kubernetes-$KUBERNETES_VERSION/$name" "$d/usr/local/bin/"
      image "$ref" -- "$d" ;;
    kube-proxy)
      cp "$bin/kubernetes-node-$KUBERNETES_VERSION/kube-proxy" "$d/usr/local/bin/"
      closure "$rootfs" "$d" /usr/sbin/nft /usr/sbin/xtables-nft-multi
      for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do ln -sf xtables-nft-multi "$d/usr/sbin/$t"; done
      image "$ref" -- "$d" ;;
    etcd)
      cp "$bin/etcd-$ETCD_VERSION/etcd" "$d/usr/local/bin/"
      image "$ref" -- "$d" ;;
    pause)
      cp "$bin/pause-$KUBERNETES_VERSION/pause" "$d/pause"
      image "$ref" -- "$d" '["/pause"]' ;;
    coredns)
      # Left out on purpose: no component needs cluster DNS, and kubeadm's CoreDNS forwards
      # names it does not serve off the machine. kind clusters run without the DNS add-on
      # (fixtures/kind/cluster.yaml).
      log "not in the node image: $ref (no DNS add-on on kind clusters: see the README)"
      continue ;;
    *) log "kubeadm lists an image this script does not know how to build: $ref"; exit 1 ;;
  esac
done
d=$work/images/cni && mkdir -p "$d/bin"
cp /bin/busybox "$d/bin/busybox"
for t in sh cat printf mv sleep ip echo; do ln -sf busybox "$d/bin/$t"; done
cp "$bin/kubernetes-$KUBERNETES_VERSION/kubectl" "$d/bin/kubectl"
install -m 0755 "$root/fixtures/kind/cni/firedrill-cni" "$d/bin/firedrill-cni"
image firedrill.local/cni:1 -- "$d" '["/bin/firedrill-cni"]'
d=$work/images/netpol && mkdir -p "$d/bin"
cp "$bin/kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION/netpol" "$d/bin/netpol"
image "firedrill.local/netpol:$KUBE_NETWORK_POLICIES_VERSION" -- "$d" '["/bin/netpol"]'

# --- 5. Preload them into the node's containerd, as kind's build does ------------------
# (Docker warns that IPv4 forwarding is off: the address plan keeps it off, and this
# container needs no network.)
docker run -d --name "$builder" --network none --entrypoint=sleep --security-opt seccomp=unconfined "firedrill.local/kind-base:$hash" infinity >/dev/null 2>&1
docker exec "$builder" bash -c 'nohup containerd >/var/log/containerd-build.log 2>&1 &'
for _ in $(seq 100); do docker exec "$builder" test -S /run/containerd/containerd.sock && break; sleep 0.1; done
docker exec "$builder" ctr info >/dev/null 2>&1 || { docker exec "$builder" cat /var/log/containerd-build.log >&2; exit 1; }
docker save "${images[@]}" | docker exec -i "$builder" \
  ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null 2>"$work/import.log" ||
  { cat "$work/import.log" >&2; exit 1; }
# Each takes its name in the node (kubeadm's, or firedrill.local's), the staging name goes.
for i in "${!images[@]}"; do
  docker exec "$builder" ctr --namespace=k8s.io images tag --force "${images[$i]}" "${refs[$i]}" >/dev/null &&
    docker exec "$builder" ctr --namespace=k8s.io images rm "${images[$i]}" >/dev/null ||
    { log "naming ${images[$i]} ${refs[$i]} in the node's containerd failed"; exit 1; }
done
loaded=$(docker exec "$builder" ctr --namespace=k8s.io images ls -q 2>/dev/null)
for ref in "${refs[@]}"; do
  grep -qx "$ref\|docker.io/$ref" <<<"$loaded" || { log "$ref is not in the node's containerd after the import"; exit 1; }
done
if grep -q "^$staging/" <<<"$loaded"; then log "a staging name is left in the node's containerd"; exit 1; fi
docker exec "$builder" pkill containerd
for _ in $(seq 100); do docker exec "$builder" pgrep -x containerd >/dev/null || break; sleep 0.1; done
docker commit "$builder" "firedrill.local/kind-preloaded:$hash" >/dev/null
# systemd stops on SIGRTMIN+3; neither `docker import` nor `docker commit` can set a stop
# signal, a build from the local image can (the classic builder: nothing is pulled).
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n' "firedrill.local/kind-preloaded:$hash" |
  DOCKER_BUILDKIT=0 docker build -q -t "$image" - >/dev/null 2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }
docker rm -f -v "$builder" >/dev/null
docker rmi "${images[@]}" "firedrill.local/kind-base:$hash" "firedrill.local/kind-preloaded:$hash" >/dev/null
echo "$image" >"$cache/kind/node-image"
# Earlier node images are a stale cache (about 900 MB each); one a container still uses stays.
docker images --format '{{.Repository}}:{{.Tag}}' firedrill.local/kind-node | grep -vxF "$image" | xargs -r docker rmi >/dev/null 2>&1 || true
took=$((SECONDS - start))
log "built $image in ${took}s"
{ grep -v "^kind-node " "$cache/build-times" 2>/dev/null || true; echo "kind-node $KUBERNETES_VERSION ${took}s"; } \
  >"$cache/build-times.tmp" && mv "$cache/build-times.tmp" "$cache/build-times"
echo "$image"
