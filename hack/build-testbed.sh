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
  local names=(kube-apiserver kube-controller-manager kube-scheduler kubectl) missing=()
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
    install_prometheus
    ;;
  path) ;;
  *) fail "unknown target $what (all|path)";;
esac
[ "$what" = all ] && say "done in $(( $(date +%s) - start ))s: $bin"
echo "$bin"
