#!/usr/bin/env bash
# Validate the helm chart without a cluster (run by `make deploy-check`, hence `make test`):
#   1. install helm if missing: `go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION` into
#      $WARMFLEET_HOME/bin (only the Go module proxy serves helm on our CI machines);
#   2. `helm lint` and `helm template | kubernetes-validate --strict` for the default values and
#      for the optional parts switched on (KEDA, ServiceMonitor, secrets, sim).
# Idempotent: a second run reuses the binary. `helm/check.sh install` only installs and prints
# the binary's path.
#
# kubernetes-validate has no schemas for CRD kinds (ScaledObject, TriggerAuthentication,
# ServiceMonitor): it validates every built-in kind strictly and only warns for those;
# tests/deploy/test_helm.py checks the CRD objects' structure.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.17.4}"
# the Kubernetes version `helm template` assumes and manifests are validated against: the one
# helm v3.17's client-go (v0.32) targets, as helm's own release build stamps it
KUBE_VERSION="${KUBE_VERSION:-1.32.0}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
CHART="$HERE/warmfleet"
BIN_DIR="${WARMFLEET_HOME:-$HOME/.cache/warmfleet}/bin"
HELM="$BIN_DIR/helm"
VALIDATE="${KUBERNETES_VALIDATE:-$ROOT/.venv/bin/kubernetes-validate}"

say() { printf '[deploy-check] %s\n' "$*" >&2; }

install_helm() {
    if [[ -x "$HELM" ]] && [[ "$("$HELM" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]; then
        say "helm $HELM_VERSION: $HELM (cached)"
        return
    fi
    local go_bin
    go_bin="$(command -v go || true)"
    [[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
    if [[ -z "$go_bin" ]]; then
        say "no Go toolchain (looked on PATH and in /usr/local/go/bin): cannot install helm"
        exit 2
    fi
    local kube_major="${KUBE_VERSION%%.*}" kube_minor
    kube_minor="$(cut -d. -f2 <<<"$KUBE_VERSION")"
    # the -X flags are what helm's Makefile sets; without them a `go install`ed helm reports
    # version "v3.17" and assumes Kubernetes 1.20 for templates and deprecation lint
    local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    local pkg
    for pkg in pkg/chartutil pkg/lint/rules; do
        ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=$kube_major"
        ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$kube_minor"
    done
    say "installing helm $HELM_VERSION with $("$go_bin" version | cut -d' ' -f3) into $BIN_DIR"
    say "(first time on a fresh machine: downloads the modules and compiles, about 2-3 minutes)"
    mkdir -p "$BIN_DIR"
    local started=$SECONDS
    GOBIN="$BIN_DIR" GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 \
        "$go_bin" install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    say "helm installed in $((SECONDS - started)) s: $("$HELM" version --short)"
}

# the optional parts on: CRD APIs served, secrets referenced, the simulator
# (`helm lint` has no --api-versions: it lints with the optional objects guarded off)
CRD_APIS=(--api-versions keda.sh/v1alpha1 --api-versions monitoring.coreos.com/v1)
OPTIONAL=(
    --set keda.enabled=true
    --set serviceMonitor.enabled=true
    --set prometheusRule.enabled=true
    --set kafka.auth.existingSecret=warmfleet-kafka
    --set redis.auth.existingSecret=warmfleet-redis
    --set sim.enabled=true
)

# check NAME [helm --set flags...]: lint, then render (with the CRD APIs served) and validate
check() {
    local name="$1"
    shift
    say "$name: helm lint --strict"
    "$HELM" lint --strict --quiet --kube-version "$KUBE_VERSION" "$CHART" "$@" >&2
    say "$name: helm template | kubernetes-validate --strict (Kubernetes $KUBE_VERSION)"
    "$HELM" template t "$CHART" --namespace warmfleet --kube-version "$KUBE_VERSION" \
        "${CRD_APIS[@]}" "$@" \
        | "$VALIDATE" --strict --quiet --kubernetes-version "$KUBE_VERSION" -
}

install_helm
if [[ "${1:-}" == "install" ]]; then
    echo "$HELM"
    exit 0
fi
if [[ ! -x "$VALIDATE" ]]; then
    say "kubernetes-validate not found at $VALIDATE (pip install -e '.[dev]')"
    exit 2
fi
check "default values"
check "optional parts on" "${OPTIONAL[@]}"
check "reader without HPA, no PDBs" \
    --set reader.autoscaling.enabled=false \
    --set poller.pdb.enabled=false --set agents.pdb.enabled=false --set reader.pdb.enabled=false
say "chart OK"
