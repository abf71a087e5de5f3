# Versions of the local control plane and where their binaries are cached (outside the repo).
# Sourced by the hack/ scripts; override any of them from the environment.
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
RETOOL_OPERATOR_CACHE="${RETOOL_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/retool-operator}"
BIN_CACHE="$RETOOL_OPERATOR_CACHE/bin"
K8S_BIN_DIR="$BIN_CACHE/kubernetes-$K8S_VERSION"
ETCD_BIN_DIR="$BIN_CACHE/etcd-$ETCD_VERSION"
KWOK_BIN_DIR="$BIN_CACHE/kwok-$KWOK_VERSION"
# Gateway API CRDs for the HTTPRoute tests, from the module's config/crd/standard.
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.0}"
