#!/usr/bin/env bash
# Istio's CustomResourceDefinitions for a local cluster of this checkout, from Istio's own `base`
# Helm chart at ISTIO_VERSION (cluster/versions.env), so the CRDs always match the Istio binaries
# and the API server validates every mesh policy (roles/mesh_policies) against Istio's own schemas.
# Only the CRDs (and the base chart's ServiceAccount): no control plane, no webhook.
#
#   cluster/istio-crds.sh    fetch the charts / build Helm (if not cached), then install or
#                            upgrade the release and wait until every CRD is Established
#
# The install is the istio_mesh role's own (entry point crds, through playbooks/istio_crds.yml with
# inventory/local): the release's name, chart and values are defined there alone, and CRDs applied
# by an older version of this script (without Helm) are adopted. The charts come from the
# istio.io/istio Go module (checked against the Go checksum database) and Helm 3 from its module,
# both via cluster/istio-build.sh into ~/.cache/mesh-playground/ (seconds for the charts, ~3 min
# once for Helm); never committed. Needs the virtualenv (make venv). Prints "(changed)" or
# "(unchanged)"; the playbook's output goes to
# <state dir>/logs/istio-crds.log.
# Cluster: ISTIO_CRDS_KUBECONFIG (default: the kubeconfig of this checkout's cluster, .cluster/ or
# .cluster-$CLUSTER_NAME/; deliberately not $KUBECONFIG, so a bare run never reaches another
# cluster). The target role's guard (inventory/local) then checks that its context leads to the CA
# in pki/ca.crt beside it: a cluster cluster/cluster.sh made.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ANSIBLE_PLAYBOOK=$REPO_ROOT/.venv/bin/ansible-playbook

kubeconfig=${ISTIO_CRDS_KUBECONFIG:-$KUBECONFIG_FILE}
[ $# -eq 0 ] || die "usage: $0 (no arguments; ISTIO_CRDS_KUBECONFIG picks the cluster)"
[ -x "$KUBECTL" ] || die "no kubectl at $KUBECTL: start the local cluster first (make cluster-up)"
[ -f "$kubeconfig" ] || die "no kubeconfig at $kubeconfig: start the local cluster first (make cluster-up) or set ISTIO_CRDS_KUBECONFIG"
[ -x "$ANSIBLE_PLAYBOOK" ] || die "no $ANSIBLE_PLAYBOOK: create the virtualenv first (make venv)"
# This instance's own context; any other kubeconfig's current one.
context=$CONTEXT_NAME
[ "$kubeconfig" -ef "$KUBECONFIG_FILE" ] || context=
"$KUBECTL" --kubeconfig "$kubeconfig" ${context:+--context "$context"} get --raw /readyz >/dev/null 2>&1 ||
	die "the cluster of $kubeconfig does not answer /readyz: start it (make cluster-up) and retry"

"$CLUSTER_DIR/istio-build.sh" charts helm >&2
chart_version=$("$CLUSTER_DIR/istio-build.sh" path chart-version)
settings=$(printf '{"playground_kubeconfig": "%s", "playground_context": "%s", "istio_mesh_charts_dir": "%s", "istio_mesh_helm_binary": "%s"}' \
	"$kubeconfig" "$context" "$("$CLUSTER_DIR/istio-build.sh" path istio)/charts" \
	"$("$CLUSTER_DIR/istio-build.sh" path helm)/bin/helm")

mkdir -p "$LOG_DIR"
log=$LOG_DIR/istio-crds.log
info "Istio CRDs $chart_version: playbooks/istio_crds.yml on $kubeconfig${context:+ (context $context)}"
# The repository's own Ansible settings and inventory, also when run from inside Molecule.
if ! (cd "$REPO_ROOT" && ANSIBLE_CONFIG=$REPO_ROOT/ansible.cfg ANSIBLE_NOCOLOR=1 \
	ANSIBLE_FORCE_COLOR=0 ANSIBLE_STDOUT_CALLBACK=ansible.builtin.default "$ANSIBLE_PLAYBOOK" \
	-i inventory/local playbooks/istio_crds.yml -e "$settings") >"$log" 2>&1; then
	tail -n 25 "$log" >&2
	die "installing Istio's CRDs failed (output above, all of it in $log)"
fi
changed=$(sed -n 's/.* changed=\([0-9][0-9]*\) .*/\1/p' "$log" | head -n 1)
case $changed in
0) info "Istio CRDs $chart_version already installed (unchanged)" ;;
'') die "no play recap in $log: did playbooks/istio_crds.yml run on a host?" ;;
*) info "Istio CRDs $chart_version installed (changed)" ;;
esac
