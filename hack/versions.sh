# Versions of the local control plane and where their binaries are cached (outside the repo).
# Sourced by the hack/ scripts; override any of them from the environment.
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
# Tools the lint and tests run (hack/build-binaries.sh tools): helm for the chart, kube-score for
# deploy/, kstatus (sigs.k8s.io/cli-utils) and gopher-lua (the version Argo CD uses) in the
# small programs under hack/tools/.
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUBE_SCORE_VERSION="${KUBE_SCORE_VERSION:-v1.20.0}"
CLI_UTILS_VERSION="${CLI_UTILS_VERSION:-v0.37.2}"
GOPHER_LUA_VERSION="${GOPHER_LUA_VERSION:-v1.1.1}"
RETOOL_OPERATOR_CACHE="${RETOOL_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/retool-operator}"
BIN_CACHE="$RETOOL_OPERATOR_CACHE/bin"
K8S_BIN_DIR="$BIN_CACHE/kubernetes-$K8S_VERSION"
ETCD_BIN_DIR="$BIN_CACHE/etcd-$ETCD_VERSION"
KWOK_BIN_DIR="$BIN_CACHE/kwok-$KWOK_VERSION"
HELM_BIN_DIR="$BIN_CACHE/helm-$HELM_VERSION"
KUBE_SCORE_BIN_DIR="$BIN_CACHE/kube-score-$KUBE_SCORE_VERSION"
KSTATUS_BIN_DIR="$BIN_CACHE/kstatus-$CLI_UTILS_VERSION"
ARGOCD_LUA_BIN_DIR="$BIN_CACHE/argocd-lua-$GOPHER_LUA_VERSION"
# Gateway API CRDs for the HTTPRoute tests, from the module's config/crd/standard.
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.0}"
