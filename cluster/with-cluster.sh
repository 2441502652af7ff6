#!/usr/bin/env bash
# Starts the local cluster, runs the given command with KUBECONFIG pointing at it, and always
# stops the cluster again (also when the command fails or is interrupted).
# Exits with the command's exit code (1 if the command passed but stopping the cluster failed).
#
#   cluster/with-cluster.sh make test-cluster test-molecule
set -euo pipefail
# shellcheck source=cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -gt 0 ] || {
	echo "usage: $0 COMMAND [ARGS...]" >&2
	exit 2
}

rc=1
started=true
if "$CLUSTER_DIR/cluster.sh" status >/dev/null 2>&1; then
	started=false
	info "cluster '$CLUSTER_NAME' already runs: it is left running afterwards"
fi
# shellcheck disable=SC2317 # run by the traps below
finish() {
	trap - EXIT INT TERM
	[ "$started" = true ] || exit "$rc"
	if ! "$CLUSTER_DIR/cluster.sh" down; then
		echo "ERROR: stopping the cluster failed (see above)" >&2
		[ "$rc" -ne 0 ] || rc=1
	fi
	exit "$rc"
}
trap finish EXIT
trap 'rc=130; finish' INT TERM

"$CLUSTER_DIR/cluster.sh" up || {
	rc=$?
	exit "$rc"
}
export KUBECONFIG=$KUBECONFIG_FILE
rc=0
"$@" || rc=$?
exit "$rc"
