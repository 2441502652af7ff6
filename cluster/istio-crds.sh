#!/usr/bin/env bash
# Istio's CustomResourceDefinitions, at the version pinned in cluster/versions.env, for the local
# cluster: the API server then validates every mesh policy (roles/mesh_policies) against Istio's
# own schemas. No Istio control plane or data plane is installed, only the CRDs.
#
#   cluster/istio-crds.sh          fetch (if not cached) and apply to the cluster, wait Established
#   cluster/istio-crds.sh fetch    only fetch; prints the path of the cached CRD file
#
# The CRDs ship in the istio.io/api Go module (kubernetes/customresourcedefinitions.gen.yaml),
# fetched through the Go module proxy and checked against the Go checksum database; the file is
# cached under ~/.cache/mesh-playground/istio-crds/<version>/, never committed.
# Cluster: ISTIO_CRDS_KUBECONFIG (default: this checkout's .cluster/kubeconfig; deliberately not
# $KUBECONFIG, so a bare run never reaches another cluster) and KUBECTL (default:
# .cluster/bin/kubectl, else kubectl on PATH).
set -euo pipefail

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$CLUSTER_DIR")
# shellcheck source=cluster/versions.env
. "$CLUSTER_DIR/versions.env"

CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/mesh-playground/istio-crds/$ISTIO_API_VERSION
CRD_FILE=$CACHE_DIR/customresourcedefinitions.gen.yaml
# What roles/mesh_policies needs; the file holds more (security, telemetry, extensions).
NEEDED_CRDS="virtualservices destinationrules serviceentries gateways"
FIELD_MANAGER=mesh-playground-istio-crds

info() { printf '>> %s\n' "$*" >&2; }
die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

fetch() {
	if [ -s "$CRD_FILE" ]; then
		return
	fi
	command -v go >/dev/null ||
		die "Go is needed once to fetch Istio's CRDs (module istio.io/api@$ISTIO_API_VERSION); install Go 1.26+ or put the file at $CRD_FILE"
	info "fetching istio.io/api@$ISTIO_API_VERSION from the Go module proxy ($(go env GOPROXY))"
	local json dir tmp
	# Run outside any module (/), so no go.mod is read or changed.
	json=$(cd / && go mod download -json "istio.io/api@$ISTIO_API_VERSION") ||
		die "go mod download istio.io/api@$ISTIO_API_VERSION failed: ${json:-no output} (is ISTIO_API_VERSION in cluster/versions.env a published tag? is the module proxy reachable?)"
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
	[ -f "$dir/kubernetes/customresourcedefinitions.gen.yaml" ] ||
		die "istio.io/api@$ISTIO_API_VERSION has no kubernetes/customresourcedefinitions.gen.yaml (looked in '$dir')"
	mkdir -p "$CACHE_DIR"
	tmp=$(mktemp "$CACHE_DIR/.crds.XXXXXX")
	cp "$dir/kubernetes/customresourcedefinitions.gen.yaml" "$tmp"
	chmod 0644 "$tmp"
	local crd
	for crd in $NEEDED_CRDS; do
		grep -q "^  name: $crd.networking.istio.io$" "$tmp" ||
			die "istio.io/api@$ISTIO_API_VERSION lacks the CRD $crd.networking.istio.io"
	done
	mv "$tmp" "$CRD_FILE"
	info "cached $CRD_FILE"
}

apply() {
	local kubeconfig=${ISTIO_CRDS_KUBECONFIG:-$REPO_DIR/.cluster/kubeconfig}
	local kubectl=${KUBECTL:-$REPO_DIR/.cluster/bin/kubectl}
	[ -x "$kubectl" ] || kubectl=$(command -v kubectl) ||
		die "no kubectl: start the local cluster first (make cluster-up) or set KUBECTL"
	[ -f "$kubeconfig" ] || die "no kubeconfig at $kubeconfig: start the local cluster first (make cluster-up) or set ISTIO_CRDS_KUBECONFIG"
	local k=("$kubectl" --kubeconfig "$kubeconfig")
	"${k[@]}" get --raw /readyz >/dev/null 2>&1 ||
		die "the cluster of $kubeconfig does not answer /readyz: start it (make cluster-up) and retry"
	# kubectl diff exits 0 when the cluster already has exactly these CRDs, 1 when it differs.
	local rc=0
	"${k[@]}" diff --server-side --field-manager="$FIELD_MANAGER" -f "$CRD_FILE" >/dev/null 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		info "Istio CRDs $ISTIO_API_VERSION already installed (unchanged)"
		return
	fi
	[ "$rc" -eq 1 ] || die "kubectl diff of Istio's CRDs failed (exit $rc); run: ${k[*]} diff --server-side -f $CRD_FILE"
	info "applying Istio CRDs $ISTIO_API_VERSION (server-side apply, field manager $FIELD_MANAGER)"
	# Server-side: the CRDs are too big for client-side apply's last-applied annotation.
	"${k[@]}" apply --server-side --field-manager="$FIELD_MANAGER" --force-conflicts -f "$CRD_FILE" >/dev/null
	"${k[@]}" wait --for=condition=Established --timeout=60s -f "$CRD_FILE" >/dev/null ||
		die "Istio's CRDs did not become Established within 60 s; see: ${k[*]} get crd -l release=istio"
	info "Istio CRDs $ISTIO_API_VERSION installed (changed)"
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
