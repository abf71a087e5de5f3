#!/usr/bin/env bash
# `make run`: apply the CRD and a sample RetoolDeployment, then run the operator in the foreground.
# KUBECONFIG names the cluster. With the local control plane, the sample points at the local
# PostgreSQL that `make postgres-up` started (.local/postgres.env).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=hack/versions.sh
source "$here/versions.sh"
[ -x "$K8S_BIN_DIR/kubectl" ] && export PATH="$K8S_BIN_DIR:$PATH"
: "${KUBECONFIG:?KUBECONFIG must name the cluster}"
namespace="${RUN_NAMESPACE:-retool}"

kubectl apply --server-side -f "$repo/crds/retooldeployments.yaml"
kubectl wait --for=condition=Established crd/retooldeployments.retool-operator.dev --timeout=60s
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
if [ -f "$repo/.local/postgres.env" ]; then
  # shellcheck disable=SC1091
  source "$repo/.local/postgres.env"
  (cd "$repo" && .venv/bin/python -m hack.sample --host "$PGHOST" --port "$PGPORT") | kubectl -n "$namespace" apply -f -
else
  (cd "$repo" && .venv/bin/python -m hack.sample) | kubectl -n "$namespace" apply -f -
fi
echo "Applied RetoolDeployment $namespace/retool; watch it with: kubectl -n $namespace get rtd -w"
exec "$repo/.venv/bin/retool-operator" run --all-namespaces
