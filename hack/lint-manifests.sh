#!/usr/bin/env bash
# `make lint`: helm lint on the chart (both RBAC modes, every option on), then kube-score on what
# deploy/ and the chart render. Findings left on purpose are ignored by a kube-score/ignore
# annotation on the object, each justified in a comment beside it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=hack/versions.sh
source "$here/versions.sh"
kube_score="$KUBE_SCORE_BIN_DIR/kube-score"
kubectl="$K8S_BIN_DIR/kubectl"
helm="$HELM_BIN_DIR/helm"

render_and_score() {
  local what=$1; shift
  local rendered; rendered=$("$@")
  echo "kube-score: $what" >&2
  if ! printf '%s\n' "$rendered" | "$kube_score" score -; then
    echo "kube-score: findings in $what (fix them, or justify a kube-score/ignore annotation)" >&2
    return 1
  fi
}

chart="$repo/charts/retool-operator"
echo "helm lint: $chart" >&2
"$helm" lint --strict "$chart"
"$helm" lint --strict "$chart" --set watchNamespace=retool --set networkPolicy.enabled=true \
  --set serviceMonitor.enabled=true --set prometheusRule.enabled=true

render_and_score "deploy/" "$kubectl" kustomize "$repo/deploy"
render_and_score "deploy/namespaced/" "$kubectl" kustomize "$repo/deploy/namespaced"
render_and_score "charts/retool-operator" "$helm" template retool-operator "$chart" \
  --namespace retool-system
render_and_score "charts/retool-operator (one namespace, NetworkPolicy)" "$helm" template \
  retool-operator "$chart" --namespace retool-system --set watchNamespace=retool \
  --set networkPolicy.enabled=true
