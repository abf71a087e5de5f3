#!/usr/bin/env bash
# Builds, once, the control-plane binaries the local test cluster runs (docs/design.md §7):
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from k8s.io/kubernetes,
# etcd from go.etcd.io/etcd/server/v3, and kwok/kwokctl; and (`tools`) what lint and tests run:
# helm, kube-score, and the small programs of hack/tools/ (kstatus, argocd-lua). Everything comes from the Go module proxy
# the go command is configured with; nothing else is downloaded. Results are cached outside the
# repository, keyed by version, and reused.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.sh
source "$here/versions.sh"

if ! command -v go >/dev/null 2>&1; then
  echo "error: Go is not installed (or not on PATH). The local control plane is built from source" >&2
  echo "       with the go command (Go >= 1.25); install Go, or run the tests against an existing" >&2
  echo "       cluster with: make test PYTEST_ARGS='--cluster=existing'" >&2
  exit 1
fi

export CGO_ENABLED=0
log() { printf '[build-binaries] %s\n' "$*" >&2; }

build_kubernetes() {
  local dir="$K8S_BIN_DIR"
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=0
  for b in "${want[@]}"; do [ -x "$dir/$b" ] || missing=1; done
  if [ "$missing" = 0 ]; then log "kubernetes $K8S_VERSION: cached in $dir"; return; fi
  log "kubernetes $K8S_VERSION: building ${want[*]} from source."
  log "A cold build downloads ~1 GB of modules and takes about 6-10 minutes on 2 cores; later runs reuse $dir."
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/k8s-build.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    go mod init local/k8s-build >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    # Every staging module (the "=> ./staging/src/..." lines) is published as v0.X.Y.
    local staging_version="v0.${K8S_VERSION#v1.}"
    local replaces=()
    while read -r module; do
      replaces+=("-replace=$module=$module@$staging_version")
    done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\// {print $1}' "$gomod")
    log "replacing ${#replaces[@]} staging modules with $staging_version"
    go mod edit "${replaces[@]}"
    local pkgs=()
    for b in "${want[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b@$K8S_VERSION"); done
    go get "${pkgs[@]}"
    local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    local ldflags="-s -w"
    for kv in "gitVersion=$K8S_VERSION" "gitMajor=1" "gitMinor=$minor" "gitTreeState=clean" \
              "gitCommit=0000000000000000000000000000000000000000" "buildDate=1970-01-01T00:00:00Z"; do
      ldflags="$ldflags -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
    done
    mkdir -p "$dir.tmp"
    for b in "${want[@]}"; do
      log "go build k8s.io/kubernetes/cmd/$b"
      go build -trimpath -ldflags "$ldflags" -o "$dir.tmp/$b" "k8s.io/kubernetes/cmd/$b"
    done
  )
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  log "kubernetes $K8S_VERSION: done"
}

build_etcd() {
  local dir="$ETCD_BIN_DIR"
  if [ -x "$dir/etcd" ]; then log "etcd $ETCD_VERSION: cached in $dir"; return; fi
  log "etcd $ETCD_VERSION: building from source (a few minutes when cold)"
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/etcd-build.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    go mod init local/etcd-build >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    mkdir -p "$dir.tmp"
    go build -trimpath -ldflags "-s -w" -o "$dir.tmp/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  log "etcd $ETCD_VERSION: done"
}

build_kwok() {
  local dir="$KWOK_BIN_DIR"
  if [ -x "$dir/kwok" ] && [ -x "$dir/kwokctl" ]; then log "kwok $KWOK_VERSION: cached in $dir"; return; fi
  log "kwok $KWOK_VERSION: go install kwok and kwokctl"
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  log "kwok $KWOK_VERSION: done"
}

# A published command: go install PACKAGE@VERSION into DIR (cached, keyed by version).
go_install() {
  local what=$1 dir=$2 binary=$3 package=$4 ldflags=${5:-"-s -w"}
  if [ -x "$dir/$binary" ]; then log "$what: cached in $dir"; return; fi
  log "$what: go install $package"
  local started=$SECONDS
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" go install -trimpath -ldflags "$ldflags" "$package"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  log "$what: done in $((SECONDS - started))s"
}

# One of our small programs (hack/tools/NAME/main.go) built in a throwaway module against one
# pinned library, resolved from the Go module proxy.
build_tool() {
  local name=$1 dir=$2 module=$3
  if [ -x "$dir/$name" ]; then log "$name ($module): cached in $dir"; return; fi
  log "$name: building hack/tools/$name against $module"
  local started=$SECONDS
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/$name-build.XXXXXX")
  cp "$here/tools/$name/main.go" "$work/"
  (
    cd "$work"
    go mod init "local/$name" >/dev/null 2>&1
    go get "$module"
    go mod tidy >/dev/null 2>&1
    mkdir -p "$dir.tmp"
    go build -trimpath -ldflags "-s -w" -o "$dir.tmp/$name" .
  ) || { rm -rf "$work"; return 1; }
  rm -rf "$work"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  log "$name: done in $((SECONDS - started))s"
}

build_helm() {
  go_install "helm $HELM_VERSION" "$HELM_BIN_DIR" helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
    "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
}
build_kube_score() {
  go_install "kube-score $KUBE_SCORE_VERSION" "$KUBE_SCORE_BIN_DIR" kube-score \
    "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
}
build_kstatus() { build_tool kstatus "$KSTATUS_BIN_DIR" "sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION"; }
build_argocd_lua() {
  build_tool argocd-lua "$ARGOCD_LUA_BIN_DIR" "github.com/yuin/gopher-lua@$GOPHER_LUA_VERSION"
}

mkdir -p "$BIN_CACHE"
case "${1:-all}" in
  kubernetes) build_kubernetes ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  all) build_kwok; build_etcd; build_kubernetes ;;
  helm) build_helm ;;
  kube-score) build_kube_score ;;
  kstatus) build_kstatus ;;
  argocd-lua) build_argocd_lua ;;
  tools) build_argocd_lua; build_kstatus; build_kube_score; build_helm ;;
  *) echo "usage: $0 [all|kubernetes|etcd|kwok|tools|helm|kube-score|kstatus|argocd-lua]" >&2; exit 2 ;;
esac
