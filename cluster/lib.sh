# The one library of the project's shell scripts (sourced, never run). Every script sources it,
# directly or through the settings of its directory (images/lib.sh), and sets -euo pipefail
# itself. What it gives:
#   paths      REPO_ROOT, CLUSTER_DIR, CACHE_DIR: the cache root,
#              ${XDG_CACHE_HOME:-~/.cache}/mesh-playground, computed here and nowhere else
#   messages   info, warn, die (on stderr)
#   waiting    wait_until: the one poller (a deadline; gives up at once when the process it
#              waits on dies)
#   processes  start_process, stop_pid, pid_alive, the process marker of the cluster instance
#   the local cluster instance: CLUSTER_NAME, its state dir, ports, kubeconfig and context
# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this file

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$CLUSTER_DIR")
# shellcheck source=cluster/versions.env
. "$CLUSTER_DIR/versions.env"

# ---------------------------------------------------------------- messages
info() { printf '>> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------- caches
# Build outputs, downloads and images live outside the repo, one directory per component and
# version (Kubernetes, etcd, KWOK, CoreDNS, kube-router, Istio's CRDs, images/), shared by every checkout.
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/mesh-playground
K8S_HOME=$CACHE_DIR/k8s/$KUBERNETES_VERSION
ETCD_HOME=$CACHE_DIR/etcd/$ETCD_VERSION
KWOK_HOME=$CACHE_DIR/kwok/$KWOK_VERSION
COREDNS_HOME=$CACHE_DIR/coredns/$COREDNS_VERSION
# Keyed by the raised dependencies and our main too: another of either is another build.
KUBE_ROUTER_HOME=$CACHE_DIR/kube-router/$KUBE_ROUTER_VERSION-$({
	printf '%s\n' "$KUBE_ROUTER_RAISE"
	cat "$CLUSTER_DIR/node-real/netpol/main.go"
} | sha256sum | cut -c1-8)

# ---------------------------------------------------------------- the cluster instance
# A checkout runs its default cluster and, beside it, named ones (CLUSTER_NAME=second, or
# cluster/cluster.sh --name second). A named instance has its own state dir .cluster-<name>/
# (PKI, etcd data, logs, kubeconfig), kubeconfig context mesh-playground-<name>, process marker
# and ports: each port below plus CLUSTER_PORT_OFFSET (default: 0 for the default instance,
# 10000 for a named one, e.g. its API server on 16443). A named instance has KWOK nodes only:
# the real node (bridge, /run/mesh-playground, its ports) exists once per machine.
CLUSTER_NAME=${CLUSTER_NAME:-default}
[[ $CLUSTER_NAME =~ ^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$ ]] ||
	die "CLUSTER_NAME='$CLUSTER_NAME' is not a valid instance name (lower-case letters, digits and dashes, at most 32)"
if [ "$CLUSTER_NAME" = default ]; then
	STATE_DIR=$REPO_ROOT/.cluster
	CONTEXT_NAME=mesh-playground
	DEFAULT_PORT_OFFSET=0
else
	STATE_DIR=$REPO_ROOT/.cluster-$CLUSTER_NAME
	CONTEXT_NAME=mesh-playground-$CLUSTER_NAME
	DEFAULT_PORT_OFFSET=10000
fi
# How messages name this instance in a make command line.
MAKE_ARGS=${CLUSTER_NAME/#default/}
MAKE_ARGS=${MAKE_ARGS:+ CLUSTER_NAME=$MAKE_ARGS}

# Runtime state of this instance (git-ignored).
PKI_DIR=$STATE_DIR/pki
CONF_DIR=$STATE_DIR/config
DATA_DIR=$STATE_DIR/data
LOG_DIR=$STATE_DIR/logs
RUN_DIR=$STATE_DIR/run
KUBECONFIG_FILE=$STATE_DIR/kubeconfig
KUBECTL=$STATE_DIR/bin/kubectl

# Node mode: kwok = simulated nodes (no containers); real = kubelet + containerd (cluster/node-real/).
# Unset: the mode of the running cluster, else kwok.
RUNNING_NODE_MODE=$(cat "$RUN_DIR/node-mode" 2>/dev/null || true)
CLUSTER_NODE_MODE=${CLUSTER_NODE_MODE:-${RUNNING_NODE_MODE:-kwok}}
if [ "$CLUSTER_NAME" != default ] && [ "$CLUSTER_NODE_MODE" != kwok ]; then
	die "CLUSTER_NAME=$CLUSTER_NAME: a named cluster has KWOK nodes only (CLUSTER_NODE_MODE=kwok), not '$CLUSTER_NODE_MODE'.
       There is one real node per machine (bridge mpbr0, /run/mesh-playground, /var/lib/mesh-playground):
       it belongs to the default cluster (make cluster-up CLUSTER_NODE_MODE=real without CLUSTER_NAME)."
fi

# Everything listens on loopback only. Ports: the running instance keeps the offset it was
# started with (cluster.sh refuses another one until it is down).
BIND_ADDRESS=127.0.0.1
RUNNING_PORT_OFFSET=$(cat "$RUN_DIR/port-offset" 2>/dev/null || true)
PORT_OFFSET=${CLUSTER_PORT_OFFSET:-${RUNNING_PORT_OFFSET:-$DEFAULT_PORT_OFFSET}}
# At most 22000: every port stays below the kernel's ephemeral range (32768 and up).
if ! [[ $PORT_OFFSET =~ ^[0-9]+$ ]] || [ "$PORT_OFFSET" -gt 22000 ]; then
	die "CLUSTER_PORT_OFFSET='$PORT_OFFSET' must be a number from 0 to 22000"
fi
ETCD_CLIENT_PORT=${CLUSTER_ETCD_CLIENT_PORT:-$((2379 + PORT_OFFSET))}
ETCD_PEER_PORT=${CLUSTER_ETCD_PEER_PORT:-$((2380 + PORT_OFFSET))}
APISERVER_PORT=${CLUSTER_APISERVER_PORT:-$((6443 + PORT_OFFSET))}
CONTROLLER_MANAGER_PORT=${CLUSTER_CONTROLLER_MANAGER_PORT:-$((10257 + PORT_OFFSET))}
SCHEDULER_PORT=${CLUSTER_SCHEDULER_PORT:-$((10259 + PORT_OFFSET))}
APISERVER_URL=https://$BIND_ADDRESS:$APISERVER_PORT
SERVICE_CIDR=10.96.0.0/16
SERVICE_APISERVER_IP=10.96.0.1
POD_CIDR=10.244.0.0/16
# The apiserver's own address in the `kubernetes` Service; a real node mode may replace it with
# an address pods can reach (it must then also be in CLUSTER_APISERVER_EXTRA_SANS).
APISERVER_ADVERTISE_ADDRESS=${CLUSTER_APISERVER_ADVERTISE_ADDRESS:-$BIND_ADDRESS}

# Every process we start carries this variable, one per instance; it is how `down` finds strays
# (never by name), and why `down` of one instance leaves every other one running.
PROCESS_MARKER="MESH_PLAYGROUND_CLUSTER_DIR=$STATE_DIR"

# ---------------------------------------------------------------- Go toolchain (only to build)
require_go() {
	command -v go >/dev/null ||
		die "Go is not installed (or not on PATH); building the local cluster needs Go $GO_MIN_VERSION or newer: https://go.dev/dl/"
	local found
	found=$(go env GOVERSION 2>/dev/null) || die "'go env GOVERSION' failed; is the Go installation at $(command -v go) broken?"
	found=${found#go}
	if ! printf '%s\n%s\n' "$GO_MIN_VERSION" "$found" | sort -C -V; then
		die "Go $found is too old; the local cluster needs Go $GO_MIN_VERSION or newer (https://go.dev/dl/), found $(command -v go)"
	fi
}

# ---------------------------------------------------------------- ports
# Prints who listens on TCP port $1 on any local address (empty if nobody).
port_listener() {
	ss -Hltnp "sport = :$1" 2>/dev/null
}

require_free_port() { # port component
	local who
	who=$(port_listener "$1")
	[ -z "$who" ] ||
		die "port $1 needed by $2 is already in use: ${who//$'\n'/; }
       Stop that process (or another local cluster: its 'make cluster-down', with CLUSTER_NAME=<name> for a named one), then retry."
}

# ---------------------------------------------------------------- processes
pid_file() { echo "$RUN_DIR/$1.pid"; }
log_file() { echo "$LOG_DIR/$1.log"; }

# True if $1 is a live process that we started (carries our marker).
is_our_pid() {
	[ -n "$1" ] && [ -r "/proc/$1/environ" ] && grep -qzxF "$PROCESS_MARKER" "/proc/$1/environ" 2>/dev/null
}

# Pid of a running component, or nothing.
component_pid() {
	local pid
	pid=$(cat "$(pid_file "$1")" 2>/dev/null) || return 0
	if is_our_pid "$pid"; then echo "$pid"; fi
}

# All live processes carrying our marker (components and anything they spawned).
marked_pids() {
	local environ pid
	for environ in /proc/[0-9]*/environ; do
		pid=${environ#/proc/}
		pid=${pid%/environ}
		[ "$pid" != "$$" ] || continue
		if grep -qzxF "$PROCESS_MARKER" "$environ" 2>/dev/null; then echo "$pid"; fi
	done
}

# The last lines a component wrote since it was last started.
log_tail() { # component [lines]
	local log
	log=$(log_file "$1")
	printf -- '----- last lines of %s -----\n' "$log" >&2
	awk '/^===== .* starting /{n=0; delete buf; next} {buf[n++]=$0} END {for (i = 0; i < n; i++) print buf[i]}' \
		"$log" 2>/dev/null | tail -n "${2:-25}" >&2 || true
	printf -- '-----\n' >&2
}

# Running and not a zombie (kill -0 also sees a child that exited and is not reaped yet).
pid_alive() {
	[ -n "$1" ] && [ -e "/proc/$1" ] && case $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) in
	'' | Z) false ;;
	*) true ;;
	esac
}

# Starts "$@" as component $name in its own session, detached from the caller's terminal.
start_process() { # name cmd...
	local name=$1 log
	shift
	log=$(log_file "$name")
	mkdir -p "$LOG_DIR" "$RUN_DIR"
	printf '\n===== %s starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$log"
	# fd 9 is the lock of cluster.sh (see lock_state): a component must not keep holding it.
	env "$PROCESS_MARKER" setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
	local pid=$! deadline=$((SECONDS + 10))
	echo "$pid" >"$(pid_file "$name")"
	# Until the child has exec'd, its /proc environ is still ours, without the marker: wait
	# for it (or for its end: a zombie or a vanished pid), so it is not taken for dead.
	while ! is_our_pid "$pid" && pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
		sleep 0.02
	done
}

# One up/down/clean at a time per instance (others, e.g. a parallel `make test-molecule`, wait).
lock_state() {
	mkdir -p "$STATE_DIR"
	exec 9>"$STATE_DIR/lock"
	if ! flock --nonblock 9; then
		info "waiting for another cluster.sh on $STATE_DIR to finish"
		flock 9
	fi
}

# Sends TERM, waits up to $2 seconds, then KILL.
stop_pid() { # pid grace_seconds
	local pid=$1 deadline=$((SECONDS + $2))
	kill -TERM "$pid" 2>/dev/null || return 0
	while pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
	if pid_alive "$pid"; then
		warn "pid $pid did not stop within $2s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		while pid_alive "$pid"; do sleep 0.1; done
	fi
}

# ---------------------------------------------------------------- waiting
# Whether the process wait_until waits on still runs: here a component of the cluster (its
# pid file); a script whose processes are kept elsewhere redefines it (supervise.sh: its children).
process_alive() { [ -n "$(component_pid "$1")" ]; }

# The one poller: runs "$@" (output discarded) every 0.2 s until it succeeds. Fails after
# timeout_seconds, or as soon as process $name is not alive any more, with the last lines of its
# log (when it has one in $LOG_DIR). An empty name waits on no process.
wait_until() { # name timeout_seconds what cmd...
	local name=$1 timeout=$2 what=$3 deadline
	shift 3
	deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if [ -n "$name" ] && ! process_alive "$name"; then
			wait_failed "$name" "$name exited while starting"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			wait_failed "$name" "${name:+$name: }$what not reached within ${timeout}s"
		fi
		sleep 0.2
	done
}

wait_failed() { # name message
	if [ -n "$1" ] && [ -e "$(log_file "$1")" ]; then
		log_tail "$1" 40
		die "$2 (see its log above: $(log_file "$1"))"
	fi
	die "$2"
}

# ---------------------------------------------------------------- the cluster's API
kubectl_admin() {
	"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --context "$CONTEXT_NAME" "$@"
}
