#!/usr/bin/env bash
# The local Kubernetes cluster of this checkout (state in .cluster/, binaries in ~/.cache).
#
#   cluster/cluster.sh [--name NAME] up       build if needed, start everything, wait until nodes are Ready
#   cluster/cluster.sh [--name NAME] down     stop every process it started (none is left behind)
#   cluster/cluster.sh [--name NAME] status   what runs; for a dead component, where its log is (exit 3 if not all up)
#   cluster/cluster.sh [--name NAME] clean    down, then delete its state dir (PKI, etcd data, logs)
#   cluster/cluster.sh [--name NAME] restart COMPONENT...   stop and start those (e.g. kube-apiserver etcd)
#
# CLUSTER_NODE_MODE=kwok|real picks the nodes (cluster/node-<mode>/node.sh); default kwok.
# --name NAME (or CLUSTER_NAME=NAME) is another cluster beside the default one: state in
# .cluster-NAME/, context mesh-playground-NAME, ports + CLUSTER_PORT_OFFSET (10000 by default),
# KWOK nodes only; each command acts on that instance alone (see cluster/lib.sh).
set -euo pipefail
case ${1:-} in
--name=*)
	CLUSTER_NAME=${1#--name=}
	shift
	;;
--name)
	[ $# -ge 2 ] || set -- --name "" help
	CLUSTER_NAME=$2
	shift 2
	;;
esac
export CLUSTER_NAME # istio-crds.sh and the node modes act on the same instance
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$CLUSTER_DIR/pki.sh"
. "$CLUSTER_DIR/components.sh"

# The node modes there are: cluster/node-<mode>/.
node_modes() {
	local dir
	for dir in "$CLUSTER_DIR"/node-*/; do
		dir=${dir%/}
		printf '%s ' "${dir##*/node-}"
	done
}

NODE_MODE_FILE=$CLUSTER_DIR/node-$CLUSTER_NODE_MODE/node.sh
[ -f "$NODE_MODE_FILE" ] ||
	die "CLUSTER_NODE_MODE=$CLUSTER_NODE_MODE is unknown: $NODE_MODE_FILE does not exist (modes: $(node_modes))"
# shellcheck source=cluster/node-kwok/node.sh
. "$NODE_MODE_FILE"
COMPONENTS=("${CONTROL_PLANE_COMPONENTS[@]}" "${NODE_COMPONENTS[@]}")
START_TIMEOUT=${CLUSTER_START_TIMEOUT:-120}

# component_fn cmd kube-apiserver -> cmd_kube_apiserver
component_fn() { echo "${1}_${2//-/_}"; }

start_component() {
	local name=$1 pid port started=$SECONDS ready
	ready=$(component_fn ready "$name")
	pid=$(component_pid "$name")
	if [ -n "$pid" ]; then
		wait_until "$name" "$START_TIMEOUT" "readiness" "$ready"
		info "$name: already running (pid $pid)"
		return
	fi
	for port in $("$(component_fn ports "$name")"); do require_free_port "$port" "$name"; done
	CMD=()
	"$(component_fn cmd "$name")"
	[ -x "${CMD[0]}" ] || die "$name: ${CMD[0]} is missing; run cluster/build.sh"
	start_process "$name" "${CMD[@]}"
	wait_until "$name" "$START_TIMEOUT" "readiness" "$ready"
	info "$name: ready in $((SECONDS - started))s (pid $(component_pid "$name"), log $(log_file "$name"))"
}

node_is_ready() {
	[ "$(kubectl_admin get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# Up in another node mode than the running one: the control plane stays, the old mode's node
# components stop and its Nodes are removed (its optional node_unregister), then the new mode
# starts as usual. E.g. `make test` joins the real node to the kwok-mode cluster for e2e tests.
switch_node_mode() {
	local old_mode=$RUNNING_NODE_MODE file name old=()
	info "switching the node mode from $old_mode to $CLUSTER_NODE_MODE (control plane stays)"
	for file in "$RUN_DIR"/*.pid; do
		[ -e "$file" ] || continue
		name=$(basename "$file" .pid)
		[[ " ${CONTROL_PLANE_COMPONENTS[*]} " == *" $name "* ]] || old+=("$name")
	done
	[ ${#old[@]} -eq 0 ] || stop_wave 60 "${old[@]}"
	rm -f "$RUN_DIR/node-mode"
}

# The Nodes of every other mode go (their optional node_unregister), whether the cluster was
# switched while running or stopped in one mode and started in another: Pods bound to a Node
# that nothing serves any more would never terminate (and hold their namespace's deletion).
unregister_other_modes() {
	local file mode
	for file in "$CLUSTER_DIR"/node-*/node.sh; do
		mode=$(basename "$(dirname "$file")")
		mode=${mode#node-}
		[ "$mode" != "$CLUSTER_NODE_MODE" ] || continue
		# In a subshell: the other mode's functions must not replace this mode's.
		(
			# shellcheck source=/dev/null
			. "$file"
			if declare -F node_unregister >/dev/null; then node_unregister; fi
		)
	done
}

cmd_up() {
	local started=$SECONDS name
	if [ -n "$RUNNING_PORT_OFFSET" ] && [ "$RUNNING_PORT_OFFSET" != "$PORT_OFFSET" ]; then
		die "cluster '$CLUSTER_NAME' runs with port offset $RUNNING_PORT_OFFSET, not CLUSTER_PORT_OFFSET=$PORT_OFFSET: take it down first"
	fi
	if [ -n "$RUNNING_NODE_MODE" ] && [ "$RUNNING_NODE_MODE" != "$CLUSTER_NODE_MODE" ]; then
		switch_node_mode
	fi
	"$CLUSTER_DIR/build.sh" kubernetes etcd
	node_build
	mkdir -p "$STATE_DIR/bin" "$DATA_DIR" "$LOG_DIR" "$RUN_DIR"
	ln -sfn "$K8S_HOME/bin/kubectl" "$KUBECTL"
	pki_ensure_control_plane
	node_prepare
	for name in "${COMPONENTS[@]}"; do start_component "$name"; done
	echo "$CLUSTER_NODE_MODE" >"$RUN_DIR/node-mode"
	echo "$PORT_OFFSET" >"$RUN_DIR/port-offset"

	unregister_other_modes
	node_register
	for name in $(node_names); do
		wait_until "${NODE_COMPONENTS[-1]}" "$START_TIMEOUT" "node $name Ready" node_is_ready "$name"
	done
	# Pods can only be created once a namespace has its default ServiceAccount.
	wait_until kube-controller-manager "$START_TIMEOUT" "the default ServiceAccount" \
		kubectl_admin get serviceaccount default --namespace default
	# The API validates mesh policies (roles/mesh_policies) against Istio's own schemas.
	ISTIO_CRDS_KUBECONFIG=$KUBECONFIG_FILE KUBECTL=$KUBECTL "$CLUSTER_DIR/istio-crds.sh"
	info "cluster up in $((SECONDS - started))s: $CLUSTER_NODE_MODE mode, nodes $(node_names | tr '\n' ' ')"
	cat <<EOF
kubeconfig: $KUBECONFIG_FILE (context $CONTEXT_NAME)
kubectl:    $KUBECTL
  e.g.  export KUBECONFIG=$KUBECONFIG_FILE; $KUBECTL get nodes
EOF
}

# Components with a pid file, in three waves: everything but the apiserver and etcd (node
# components, scheduler, controller-manager: in parallel), then the apiserver, then etcd.
stop_waves() {
	local file name rest=()
	for file in "$RUN_DIR"/*.pid; do
		[ -e "$file" ] || continue
		name=$(basename "$file" .pid)
		case $name in kube-apiserver | etcd) ;; *) rest+=("$name") ;; esac
	done
	echo "${rest[*]}"
	[ ! -e "$(pid_file kube-apiserver)" ] || echo kube-apiserver
	[ ! -e "$(pid_file etcd)" ] || echo etcd
}

# TERM to every component of a wave at once; KILL what has not exited after $1 seconds.
stop_wave() { # grace_seconds names...
	local grace=$1 name pid pids=()
	shift
	for name in "$@"; do
		pid=$(component_pid "$name")
		if [ -n "$pid" ]; then
			info "stopping $name (pid $pid)"
			pids+=("$pid")
		fi
	done
	for pid in "${pids[@]}"; do stop_pid "$pid" "$grace" & done
	wait
	for name in "$@"; do rm -f "$(pid_file "$name")"; done
}

cmd_down() {
	local started=$SECONDS wave pid left
	while read -r wave; do
		# shellcheck disable=SC2086 # a wave is a list of names
		[ -z "$wave" ] || stop_wave 60 $wave
	done < <(stop_waves)
	# Anything else that carries our marker (a child, or a component whose pid file was lost).
	for pid in $(marked_pids); do
		warn "stopping leftover process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)"
		stop_pid "$pid" 10
	done
	left=$(marked_pids)
	[ -z "$left" ] || die "processes still running after cluster-down: $left"
	rm -f "$RUN_DIR/node-mode" "$RUN_DIR/port-offset"
	info "cluster stopped in $((SECONDS - started))s (state kept in $STATE_DIR; 'make cluster-clean$MAKE_ARGS' deletes it)"
}

cmd_status() {
	local name pid all_up=true
	for name in "${COMPONENTS[@]}"; do
		pid=$(component_pid "$name")
		if [ -n "$pid" ] && "$(component_fn ready "$name")" >/dev/null 2>&1; then
			printf '  %-24s running (pid %s)\n' "$name" "$pid"
		elif [ -n "$pid" ]; then
			printf '  %-24s running (pid %s) but not ready; log: %s\n' "$name" "$pid" "$(log_file "$name")"
			all_up=false
		elif [ -e "$(pid_file "$name")" ]; then
			printf '  %-24s DEAD (exited); log: %s\n' "$name" "$(log_file "$name")"
			tail -n 5 "$(log_file "$name")" 2>/dev/null | sed 's/^/      | /'
			all_up=false
		else
			printf '  %-24s stopped\n' "$name"
			all_up=false
		fi
	done
	if ready_kube_apiserver 2>/dev/null; then
		echo "nodes ($CLUSTER_NODE_MODE mode):"
		kubectl_admin get nodes 2>&1 | sed 's/^/  /'
		echo "kubeconfig: $KUBECONFIG_FILE"
	fi
	$all_up || return 3
}

# The named components stopped and started again, the others left running: e.g. the API server
# and etcd, as a control-plane upgrade or crash does it under running workloads (bench/faults.py).
cmd_restart() {
	local name
	[ $# -gt 0 ] || die "usage: $0 restart COMPONENT... (of: ${COMPONENTS[*]})"
	for name in "$@"; do
		[[ " ${COMPONENTS[*]} " == *" $name "* ]] || die "unknown component '$name' (of: ${COMPONENTS[*]})"
		[ -n "$(component_pid "$name")" ] || die "$name is not running: start the cluster with up"
	done
	stop_wave 60 "$@"
	for name in "${COMPONENTS[@]}"; do
		[[ " $* " != *" $name "* ]] || start_component "$name"
	done
}

cmd_clean() {
	cmd_down
	rm -rf "$STATE_DIR"
	info "deleted $STATE_DIR"
}

case ${1:-} in
up | down | clean)
	lock_state
	"cmd_$1"
	;;
restart)
	lock_state
	shift
	cmd_restart "$@"
	;;
status) cmd_status ;;
*)
	echo "usage: $0 [--name NAME] up|down|status|clean|restart COMPONENT..." >&2
	exit 2
	;;
esac
