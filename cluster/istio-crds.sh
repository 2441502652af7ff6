#!/usr/bin/env bash
# Istio's CustomResourceDefinitions for the local cluster, from Istio's own `base` Helm chart at
# ISTIO_VERSION (cluster/versions.env): the same module, release and values the istio_mesh role
# installs (roles/istio_mesh), so the CRDs always match the Istio binaries and the API server
# validates every mesh policy (roles/mesh_policies) against Istio's own schemas. Only the CRDs
# (and the base chart's ServiceAccount): no control plane, no webhook.
#
#   cluster/istio-crds.sh          fetch the charts / build Helm (if not cached), install or
#                                  upgrade the release istio-base, wait until Established
#   cluster/istio-crds.sh fetch    only fetch; prints the path of the chart's CRD file
#
# The charts come from the istio.io/istio Go module (checked against the Go checksum database)
# and Helm 3 from its module, both via cluster/istio-build.sh into ~/.cache/mesh-playground/
# (seconds for the charts, ~3 min once for Helm); never committed. Prints "(changed)" or
# "(unchanged)" (molecule's prepare step reads it). CRDs applied by an older version of this
# script (without Helm) are adopted (--take-ownership).
# Cluster: ISTIO_CRDS_KUBECONFIG (default: the kubeconfig of this checkout's cluster, .cluster/ or
# .cluster-$CLUSTER_NAME/; deliberately not $KUBECONFIG, so a bare run never reaches another
# cluster).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RELEASE=istio-base
NAMESPACE=istio-system
# What roles/mesh_policies needs; the chart holds more (security, telemetry, extensions).
NEEDED_CRDS="virtualservices destinationrules serviceentries gateways"
# The base chart's values, as roles/istio_mesh sets them (istio_mesh_base_values): no
# default-revision validator (it would point at an istiod that may not exist).
BASE_VALUES=(--set-string "defaultRevision=" --set-string "global.istioNamespace=$NAMESPACE")

fetch() {
	"$CLUSTER_DIR/istio-build.sh" charts helm >&2
	ISTIO_HOME=$("$CLUSTER_DIR/istio-build.sh" path istio)
	HELM=$("$CLUSTER_DIR/istio-build.sh" path helm)/bin/helm
	CHART_VERSION=$("$CLUSTER_DIR/istio-build.sh" path chart-version)
	CRD_FILE=$ISTIO_HOME/charts/base/files/crd-all.gen.yaml
	local crd
	for crd in $NEEDED_CRDS; do
		grep -q "^  name: $crd.networking.istio.io$" "$CRD_FILE" ||
			die "Istio $ISTIO_VERSION's base chart lacks the CRD $crd.networking.istio.io ($CRD_FILE)"
	done
}

apply() {
	local kubeconfig=${ISTIO_CRDS_KUBECONFIG:-$KUBECONFIG_FILE} deployed reuse=()
	[ -x "$KUBECTL" ] || die "no kubectl at $KUBECTL: start the local cluster first (make cluster-up)"
	[ -f "$kubeconfig" ] || die "no kubeconfig at $kubeconfig: start the local cluster first (make cluster-up) or set ISTIO_CRDS_KUBECONFIG"
	local k=("$KUBECTL" --kubeconfig "$kubeconfig") h=("$HELM" --kubeconfig "$kubeconfig" --namespace "$NAMESPACE")
	"${k[@]}" get --raw /readyz >/dev/null 2>&1 ||
		die "the cluster of $kubeconfig does not answer /readyz: start it (make cluster-up) and retry"
	# The chart's version names the Istio build (cluster/istio-build.sh sets it): same = nothing to do.
	deployed=$("${h[@]}" list --filter "^$RELEASE\$" --deployed --output json 2>/dev/null |
		sed -n 's/.*"chart":"\([^"]*\)".*/\1/p')
	if [ "$deployed" = "base-$CHART_VERSION" ]; then
		info "Istio CRDs $CHART_VERSION already installed (release $RELEASE, unchanged)"
		return
	fi
	# An upgrade keeps the values the istio_mesh role may have given the release.
	[ -z "$deployed" ] || reuse=(--reset-then-reuse-values)
	info "installing Istio CRDs $CHART_VERSION (Helm release $NAMESPACE/$RELEASE${deployed:+, was $deployed})"
	"${h[@]}" upgrade --install "$RELEASE" "$ISTIO_HOME/charts/base" --create-namespace \
		--take-ownership "${reuse[@]}" "${BASE_VALUES[@]}" --wait --timeout 120s >/dev/null ||
		die "helm upgrade --install $RELEASE failed; see: ${h[*]} status $RELEASE"
	"${k[@]}" wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=istio >/dev/null 2>&1 ||
		"${k[@]}" wait --for=condition=Established --timeout=60s -f "$CRD_FILE" >/dev/null ||
		die "Istio's CRDs did not become Established within 60 s; see: ${k[*]} get crd | grep istio.io"
	info "Istio CRDs $CHART_VERSION installed (changed)"
}

case "${1:-apply}" in
fetch)
	fetch
	echo "$CRD_FILE"
	;;
apply)
	fetch
	apply
	;;
*) die "usage: $0 [apply|fetch]" ;;
esac
