#!/usr/bin/env bash
# Starts or stops the local control plane: real kube-apiserver, kube-controller-manager,
# kube-scheduler and etcd run by kwokctl's binary runtime, with kwok faking nodes and kubelets.
#   hack/cluster.sh up      build the binaries if needed, start the cluster, write the kubeconfig
#   hack/cluster.sh down    delete the cluster
#   hack/cluster.sh status  exit 0 when the API server answers /readyz
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=hack/versions.sh
source "$here/versions.sh"

# One cluster per checkout, so that two clones (a developer's and CI's) do not share one.
CLUSTER_NAME="${CLUSTER_NAME:-retool-operator-$(printf '%s' "$repo" | sha256sum | cut -c1-8)}"
CLUSTER_KUBECONFIG="${CLUSTER_KUBECONFIG:-$repo/.local/kubeconfig}"
export KWOK_WORKDIR="${KWOK_WORKDIR:-$RETOOL_OPERATOR_CACHE/kwok}"
export KWOK_RUNTIME=binary
export KWOK_KUBE_VERSION="$K8S_VERSION"
# kwokctl runs kubectl; ours matches the API server's version.
export PATH="$K8S_BIN_DIR:$KWOK_BIN_DIR:$PATH"

log() { printf '[cluster] %s\n' "$*" >&2; }

ready() {
  [ -s "$CLUSTER_KUBECONFIG" ] &&
    [ "$(kubectl --kubeconfig "$CLUSTER_KUBECONFIG" get --raw /readyz --request-timeout=5s 2>/dev/null)" = ok ]
}

wait_until() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then log "timed out after ${seconds}s waiting for $what"; return 1; fi
    sleep 1
  done
}

nodes_ready() {
  local count
  count=$(kubectl --kubeconfig "$CLUSTER_KUBECONFIG" get nodes -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)
  [ "$count" -ge 3 ]
}

# What the cluster was made from; a change (kwok stages or nodes, versions) means a new cluster.
config_hash() {
  cat "$here/kwok/stages.yaml" "$here/kwok/nodes.yaml" "$here/versions.sh" | sha256sum | cut -c1-16
}
hash_file() { echo "$KWOK_WORKDIR/clusters/$CLUSTER_NAME/retool-operator.hash"; }

up() {
  bash "$here/build-binaries.sh" all
  mkdir -p "$(dirname "$CLUSTER_KUBECONFIG")"
  if ready && [ "$(cat "$(hash_file)" 2>/dev/null)" = "$(config_hash)" ]; then
    log "cluster $CLUSTER_NAME is already up"
  else
    if kwokctl get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
      # Left over from an earlier run whose processes are gone, or made from other stages or
      # versions: start afresh, tests want a clean API.
      log "cluster $CLUSTER_NAME is stale (not answering, or made from another config): recreating it"
      kwokctl delete cluster --name "$CLUSTER_NAME" >/dev/null 2>&1 || true
    fi
    log "creating cluster $CLUSTER_NAME (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)"
    kwokctl create cluster --name "$CLUSTER_NAME" \
      --config "$here/kwok/stages.yaml" \
      --kube-apiserver-binary "$K8S_BIN_DIR/kube-apiserver" \
      --kube-controller-manager-binary "$K8S_BIN_DIR/kube-controller-manager" \
      --kube-scheduler-binary "$K8S_BIN_DIR/kube-scheduler" \
      --etcd-binary "$ETCD_BIN_DIR/etcd" \
      --kwok-controller-binary "$KWOK_BIN_DIR/kwok" \
      --disable-qps-limits \
      --kubeconfig "" \
      --wait 120s
    config_hash >"$(hash_file)"
    kwokctl get kubeconfig --name "$CLUSTER_NAME" >"$CLUSTER_KUBECONFIG.tmp"
    mv "$CLUSTER_KUBECONFIG.tmp" "$CLUSTER_KUBECONFIG"
    wait_until "the API server's /readyz" 120 ready
  fi
  kubectl --kubeconfig "$CLUSTER_KUBECONFIG" apply --server-side -f "$here/kwok/nodes.yaml" >/dev/null
  wait_until "3 Ready kwok nodes" 60 nodes_ready
  log "ready: export KUBECONFIG=$CLUSTER_KUBECONFIG"
}

down() {
  if kwokctl get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    kwokctl delete cluster --name "$CLUSTER_NAME"
  fi
  rm -f "$CLUSTER_KUBECONFIG"
  log "cluster $CLUSTER_NAME is down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) ready ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
