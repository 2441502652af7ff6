#!/usr/bin/env bash
# The real node as one supervised component (started by cluster.sh as "real-node"; see node.sh).
#
# Starts, in order, the bridge and firewall rules, containerd, CoreDNS, kubelet, kube-proxy and
# kube-router (NetworkPolicy) as its children (each with its own log in .cluster/logs/), then
# waits. On SIGTERM, or when a child dies, it takes the node apart in the order that leaves
# nothing behind: kubelet first (so nothing restarts pods), then every pod (tasks, containers,
# network namespaces, mounts), kube-router, kube-proxy and their iptables rules and ipsets,
# CoreDNS, containerd, the bridge, the sysctls.
#
#   supervise.sh                 run the node (the control plane must be up)
#   supervise.sh cleanup         take apart what a killed supervisor left behind
set -euo pipefail
# shellcheck source=cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=cluster/node-real/env.sh
. "$CLUSTER_DIR/node-real/env.sh"

MODE=${1:-run}
CHILD_PIDS=$NODE_RUN/pids

# ---------------------------------------------------------------- children
child_pid() { cat "$CHILD_PIDS/$1" 2>/dev/null || true; }
# What wait_until (cluster/lib.sh) checks here: our children, not the cluster's components.
process_alive() { pid_alive "$(child_pid "$1")"; }

spawn() { # name cmd...
	local name=$1
	shift
	mkdir -p "$CHILD_PIDS" "$LOG_DIR"
	printf '\n===== %s starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$(log_file "$name")"
	"$@" >>"$(log_file "$name")" 2>&1 </dev/null &
	echo $! >"$CHILD_PIDS/$name"
	info "$name: started (pid $!, log $(log_file "$name"))"
}

stop_child() { # name grace_seconds
	local pid
	pid=$(child_pid "$1")
	if pid_alive "$pid"; then
		info "stopping $1 (pid $pid)"
		stop_pid "$pid" "$2"
	fi
	wait "$pid" 2>/dev/null || true
	rm -f "$CHILD_PIDS/$1"
}

# ---------------------------------------------------------------- host network
# The bridge exists before anything starts, so kubelet and CoreDNS can bind its address.
network_up() {
	mkdir -p "$NODE_DIR" "$CNI_CONF_DIR" "$CNI_BIN_DIR"
	# Only our own conflist: a chained plugin (Istio CNI) adds itself again when its DaemonSet runs.
	rm -f "$CNI_CONF_DIR"/*
	local plugin
	for plugin in "$CNI_SYSTEM_BIN_DIR"/*; do
		[ -x "$plugin" ] || continue
		ln -sfn "$plugin" "$CNI_BIN_DIR/$(basename "$plugin")"
	done
	[ -e "$CNI_BIN_DIR/bridge" ] || die "no CNI bridge plugin in $CNI_SYSTEM_BIN_DIR (Debian package containernetworking-plugins)"
	ip link show "$NODE_BRIDGE" >/dev/null 2>&1 || ip link add "$NODE_BRIDGE" type bridge
	ip addr replace "$NODE_IP/${NODE_POD_CIDR#*/}" dev "$NODE_BRIDGE"
	ip link set "$NODE_BRIDGE" up
	# Routing between pods and Service addresses (kube-proxy DNATs in iptables), and bridged
	# traffic seen by iptables. `down` restores the previous values.
	[ -e "$NODE_DIR/sysctl.saved" ] ||
		sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.ipv4.conf.all.route_localnet >"$NODE_DIR/sysctl.saved"
	sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
	# Pods talk to each other over the bridge, and to nothing beyond it (forwarding)...
	iptables -N "$FIREWALL_CHAIN" 2>/dev/null || iptables -F "$FIREWALL_CHAIN"
	iptables -A "$FIREWALL_CHAIN" -i "$NODE_BRIDGE" -o "$NODE_BRIDGE" -j RETURN
	iptables -A "$FIREWALL_CHAIN" -i "$NODE_BRIDGE" -j DROP
	iptables -C FORWARD -j "$FIREWALL_CHAIN" 2>/dev/null || iptables -I FORWARD -j "$FIREWALL_CHAIN"
	# ...and of the host they reach cluster DNS only; answers to the host's own connections
	# (probes, requests to Services) pass as established.
	iptables -N "$FIREWALL_CHAIN-IN" 2>/dev/null || iptables -F "$FIREWALL_CHAIN-IN"
	iptables -A "$FIREWALL_CHAIN-IN" -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
	iptables -A "$FIREWALL_CHAIN-IN" -d "$CLUSTER_DNS_IP" -p udp --dport 53 -j RETURN
	iptables -A "$FIREWALL_CHAIN-IN" -d "$CLUSTER_DNS_IP" -p tcp --dport 53 -j RETURN
	# ...and the API server through the `kubernetes` Service (below), for in-cluster controllers
	# such as istiod and the Istio CNI agent.
	iptables -A "$FIREWALL_CHAIN-IN" -d "$BIND_ADDRESS" -p tcp --dport "$APISERVER_PORT" -m conntrack --ctstate DNAT -j RETURN
	iptables -A "$FIREWALL_CHAIN-IN" -j DROP
	iptables -C INPUT -i "$NODE_BRIDGE" -j "$FIREWALL_CHAIN-IN" 2>/dev/null ||
		iptables -I INPUT -i "$NODE_BRIDGE" -j "$FIREWALL_CHAIN-IN"
	# The `kubernetes` Service: the API server listens on loopback only and is advertised there,
	# so the Service has no endpoints (an EndpointSlice may not hold a loopback address) and
	# kube-proxy has no rule for it. Its ClusterIP is sent to the loopback listener instead, from
	# pods (route_localnet on the bridge, as kube-proxy does for NodePorts on 127.0.0.1) and from
	# the host (CNI plugins such as istio-cni use the ClusterIP from a kubeconfig).
	iptables -t nat -N "$FIREWALL_CHAIN-API" 2>/dev/null || iptables -t nat -F "$FIREWALL_CHAIN-API"
	iptables -t nat -A "$FIREWALL_CHAIN-API" -d "$SERVICE_APISERVER_IP" -p tcp --dport 443 \
		-j DNAT --to-destination "$BIND_ADDRESS:$APISERVER_PORT"
	iptables -t nat -C PREROUTING -i "$NODE_BRIDGE" -j "$FIREWALL_CHAIN-API" 2>/dev/null ||
		iptables -t nat -I PREROUTING -i "$NODE_BRIDGE" -j "$FIREWALL_CHAIN-API"
	iptables -t nat -C OUTPUT -j "$FIREWALL_CHAIN-API" 2>/dev/null || iptables -t nat -I OUTPUT -j "$FIREWALL_CHAIN-API"
	sysctl -qw "net.ipv4.conf.$NODE_BRIDGE.route_localnet=1"

	cat >"$CNI_CONF_DIR/10-mesh-playground.conflist" <<-JSON
		{
		  "cniVersion": "1.0.0",
		  "name": "mesh-playground",
		  "plugins": [
		    {
		      "type": "bridge",
		      "bridge": "$NODE_BRIDGE",
		      "isGateway": true,
		      "ipMasq": false,
		      "hairpinMode": true,
		      "ipam": {
		        "type": "host-local",
		        "dataDir": "$NODE_RUN/cni-ipam",
		        "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_IP"}]],
		        "routes": [{"dst": "0.0.0.0/0"}]
		      }
		    },
		    {"type": "portmap", "capabilities": {"portMappings": true}}
		  ]
		}
	JSON
}

# kubelet's and kube-proxy's KUBE-* chains and the jumps into them, in every table, both IP
# families (kube-proxy --cleanup leaves kubelet's canaries and firewall chain). This node is
# the only user of them on this machine.
kube_iptables_down() {
	local cmd table rule chain
	for cmd in iptables ip6tables; do
		command -v "$cmd" >/dev/null || continue
		for table in filter nat mangle raw; do
			"$cmd-save" -t "$table" 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' |
				while read -r rule; do
					eval "$cmd -t $table -D ${rule#-A }" 2>/dev/null || true
				done
			for chain in $("$cmd-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
				"$cmd" -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in $("$cmd-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
				"$cmd" -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
}

network_down() {
	if iptables -C FORWARD -j "$FIREWALL_CHAIN" 2>/dev/null; then iptables -D FORWARD -j "$FIREWALL_CHAIN"; fi
	if iptables -C INPUT -i "$NODE_BRIDGE" -j "$FIREWALL_CHAIN-IN" 2>/dev/null; then
		iptables -D INPUT -i "$NODE_BRIDGE" -j "$FIREWALL_CHAIN-IN"
	fi
	if iptables -F "$FIREWALL_CHAIN" 2>/dev/null; then iptables -X "$FIREWALL_CHAIN"; fi
	if iptables -F "$FIREWALL_CHAIN-IN" 2>/dev/null; then iptables -X "$FIREWALL_CHAIN-IN"; fi
	if iptables -t nat -C PREROUTING -i "$NODE_BRIDGE" -j "$FIREWALL_CHAIN-API" 2>/dev/null; then
		iptables -t nat -D PREROUTING -i "$NODE_BRIDGE" -j "$FIREWALL_CHAIN-API"
	fi
	if iptables -t nat -C OUTPUT -j "$FIREWALL_CHAIN-API" 2>/dev/null; then iptables -t nat -D OUTPUT -j "$FIREWALL_CHAIN-API"; fi
	if iptables -t nat -F "$FIREWALL_CHAIN-API" 2>/dev/null; then iptables -t nat -X "$FIREWALL_CHAIN-API"; fi
	if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then ip link del "$NODE_BRIDGE"; fi
	rm -rf "$NODE_RUN/cni-ipam"
	# What a chained CNI plugin (Istio's istio-cni, roles/istio_mesh) added to the node: its
	# binary and kubeconfig in our CNI dirs, its host socket directory. The iptables rules it
	# wrote lived in the pods' network namespaces and went with them.
	rm -rf "$NODE_RUN/cni" "$CNI_CONF_DIR"
	local dir
	for dir in "${ISTIO_CNI_HOST_DIRS[@]}"; do rm -rf "$dir"; done
	if [ -e "$NODE_DIR/sysctl.saved" ]; then
		# route_localnet: kube-proxy turns it on for NodePorts on 127.0.0.1.
		local forward bridge_nf localnet
		{ read -r forward && read -r bridge_nf && read -r localnet; } <"$NODE_DIR/sysctl.saved"
		sysctl -qw net.ipv4.ip_forward="$forward" net.bridge.bridge-nf-call-iptables="$bridge_nf" \
			net.ipv4.conf.all.route_localnet="$localnet"
		rm -f "$NODE_DIR/sysctl.saved"
	fi
}

# ---------------------------------------------------------------- containerd
containerd_up() {
	local sandbox_image
	sandbox_image=$("$REPO_ROOT/images/pause.sh")
	mkdir -p "$CONTAINERD_ROOT" "$NODE_RUN/containerd" "$REGISTRY_HOSTS_DIR"
	cat >"$NODE_DIR/containerd.toml" <<-TOML
		# Generated by cluster/node-real/supervise.sh: a containerd of our own, not the system's.
		version = 2
		root = "$CONTAINERD_ROOT"
		state = "$NODE_RUN/containerd/state"
		disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
		  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
		[grpc]
		  address = "$CONTAINERD_SOCKET"
		[ttrpc]
		  address = "$CONTAINERD_SOCKET.ttrpc"
		[debug]
		  address = ""
		[metrics]
		  address = ""
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$CONTAINERD_ROOT/opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "$sandbox_image"
		  enable_selinux = false
		  # This machine withholds CAP_SYS_RESOURCE even from root: runc cannot lower a
		  # process's oom_score_adj, so keep pods' scores no lower than containerd's own.
		  restrict_oom_score_adj = true
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        SystemdCgroup = false
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "$CNI_BIN_DIR"
		    conf_dir = "$CNI_CONF_DIR"
		    max_conf_num = 1
		  # Registries' hosts.toml files (REGISTRY_HOSTS_DIR, docs/own-cluster.md): empty unless
		  # a registry is added, e.g. its CA by images/registry.sh start.
		  [plugins."io.containerd.grpc.v1.cri".registry]
		    config_path = "$REGISTRY_HOSTS_DIR"
	TOML
	spawn containerd containerd --config "$NODE_DIR/containerd.toml"
	wait_until containerd 30 "containerd API" ctr --address "$CONTAINERD_SOCKET" version
	"$REPO_ROOT/images/import.sh" "$CONTAINERD_SOCKET" "$sandbox_image"
}

# Every pod goes: tasks killed, containers (with their snapshots) deleted, then the network
# namespaces and mounts the CRI plugin would have released, had kubelet asked it to.
pods_down() {
	[ -S "$CONTAINERD_SOCKET" ] && ctr_k8s version >/dev/null 2>&1 || return 0
	local ids id ns netns=() deadline
	ids=$(ctr_k8s containers list --quiet)
	[ -n "$ids" ] || return 0
	info "removing $(wc -w <<<"$ids") pod containers"
	for id in $ids; do
		mapfile -t -O "${#netns[@]}" netns < <(ctr_k8s containers info "$id" 2>/dev/null |
			sed -n 's|.*"path": "\(/[a-z/]*run/netns/cni-[^"]*\)".*|\1|p')
		ctr_k8s tasks kill --signal SIGTERM "$id" >/dev/null 2>&1 || true
	done
	# Up to 10 s for the apps' graceful stop; then whatever still runs is killed.
	deadline=$((SECONDS + 10))
	while [ "$SECONDS" -lt "$deadline" ] &&
		ctr_k8s tasks list 2>/dev/null | awk 'NR > 1 && $3 != "STOPPED"' | grep -q .; do
		sleep 0.2
	done
	for id in $(ctr_k8s tasks list --quiet 2>/dev/null); do
		ctr_k8s tasks delete --force "$id" >/dev/null 2>&1 || true
	done
	for id in $ids; do ctr_k8s containers delete "$id" >/dev/null 2>&1 || true; done
	for ns in "${netns[@]}"; do
		umount "$ns" 2>/dev/null || true
		rm -f "$ns"
	done
}

# Mounts left under our directories (pod volumes, sandbox /dev/shm) by a node taken down hard.
mounts_down() {
	local target
	findmnt -rn -o TARGET | grep -E "^($NODE_RUN|$NODE_LIB)/" | sort -r | while read -r target; do
		umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
	done
}

# ---------------------------------------------------------------- API access of host processes
# The ClusterRole mesh-playground:NAME with the rules on stdin (YAML list), bound to the user of
# the same name: the CN of the client certificate node.sh issues for that process.
grant_read() { # name
	local rules
	rules=$(sed 's/^/  /')
	kubectl_admin apply --server-side --field-manager=mesh-playground-node -f - >/dev/null <<-YAML
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRole
		metadata: {name: "mesh-playground:$1"}
		rules:
		$rules
		---
		apiVersion: rbac.authorization.k8s.io/v1
		kind: ClusterRoleBinding
		metadata: {name: "mesh-playground:$1"}
		roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "mesh-playground:$1"}
		subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "mesh-playground:$1"}]
	YAML
}

# ---------------------------------------------------------------- CoreDNS (host process)
# Pods get the bridge address as their nameserver; CoreDNS answers for cluster.local from the
# API and for nothing else (no forwarding: pods have no business outside this machine).
coredns_up() {
	grant_read coredns <<-YAML
		- apiGroups: [""]
		  resources: [services, namespaces]
		  verbs: [list, watch]
		- apiGroups: [discovery.k8s.io]
		  resources: [endpointslices]
		  verbs: [list, watch]
	YAML
	cat >"$NODE_DIR/Corefile" <<-COREFILE
		$CLUSTER_DOMAIN:53 in-addr.arpa:53 ip6.arpa:53 {
		    bind $CLUSTER_DNS_IP
		    errors
		    ready 127.0.0.1:$COREDNS_READY_PORT
		    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
		        kubeconfig $CONF_DIR/real-node-coredns.kubeconfig $CONTEXT_NAME
		    }
		    cache 5
		}
		.:53 {
		    bind $CLUSTER_DNS_IP
		    errors
		    # Refuse names outside the cluster instead of forwarding them off this machine.
		    template ANY ANY { rcode REFUSED }
		}
	COREFILE
	spawn coredns "$COREDNS_HOME/bin/coredns" -conf "$NODE_DIR/Corefile"
	wait_until coredns 60 "CoreDNS ready (API synced)" curl -sf "http://127.0.0.1:$COREDNS_READY_PORT/ready"
}

# ---------------------------------------------------------------- kubelet
kubelet_up() {
	local args=(--config "$NODE_DIR/kubelet.yaml" --kubeconfig "$CONF_DIR/real-node-kubelet.kubeconfig"
		--root-dir "$KUBELET_ROOT" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
		--node-labels "mesh-playground.io/node-mode=real")
	cat >"$NODE_DIR/kubelet.yaml" <<-YAML
		# Generated by cluster/node-real/supervise.sh.
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		# This machine has cgroup v1, which kubelet 1.35 refuses unless told otherwise.
		failCgroupV1: false
		cgroupDriver: cgroupfs
		containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
		# API (logs, exec) on the node's bridge address with a CA-signed certificate, callers
		# authenticated by the cluster CA and authorized by the apiserver; health on loopback;
		# no unauthenticated read-only port.
		address: $NODE_IP
		port: 10250
		readOnlyPort: 0
		tlsCertFile: $PKI_DIR/real-node-kubelet-serving.crt
		tlsPrivateKeyFile: $PKI_DIR/real-node-kubelet-serving.key
		healthzBindAddress: 127.0.0.1
		healthzPort: $KUBELET_HEALTHZ_PORT
		authentication:
		  anonymous: {enabled: false}
		  webhook: {enabled: true}
		  x509: {clientCAFile: $PKI_DIR/ca.crt}
		authorization: {mode: Webhook}
		clusterDNS: [$CLUSTER_DNS_IP]
		clusterDomain: $CLUSTER_DOMAIN
		# Pods resolve through cluster DNS only; nothing of the host's resolver leaks in.
		resolvConf: ""
		podCIDR: $NODE_POD_CIDR
		maxPods: 60
		# Small disks and a shared VM: evict only when really short, and keep our images (they
		# cannot be pulled back).
		evictionHard: {memory.available: 100Mi, nodefs.available: 2%, nodefs.inodesFree: 2%, imagefs.available: 2%}
		imageGCHighThresholdPercent: 99
		imageGCLowThresholdPercent: 98
		serializeImagePulls: false
		# The images built here are imported, never pulled: no registry has them. Kubelet
		# re-checks pull credentials for an image it once pulled with a Secret (1.35:
		# KubeletEnsureSecretPulledImages), and the same image pushed to a registry and pulled
		# from it (make images-push, tests/e2e/test_registry.py) makes the local name need a pull
		# that cannot succeed. Ours are never re-checked; every other image always is.
		imagePullCredentialsVerificationPolicy: NeverVerifyAllowlistedImages
		preloadedImagesVerificationAllowlist: ["localhost/mesh-playground/*"]
		failSwapOn: false
		nodeStatusReportFrequency: 10s
		shutdownGracePeriod: 0s
	YAML
	mkdir -p "$KUBELET_ROOT"
	spawn kubelet "$K8S_HOME/bin/kubelet" "${args[@]}"
	wait_until kubelet 60 "kubelet healthz" curl -sf "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
}

# ---------------------------------------------------------------- kube-proxy
kube_proxy_up() {
	cat >"$NODE_DIR/kube-proxy.yaml" <<-YAML
		# Generated by cluster/node-real/supervise.sh.
		apiVersion: kubeproxy.config.k8s.io/v1alpha1
		kind: KubeProxyConfiguration
		mode: iptables
		clientConnection: {kubeconfig: $CONF_DIR/real-node-kube-proxy.kubeconfig}
		hostnameOverride: $NODE_NAME
		clusterCIDR: $POD_CIDR
		bindAddress: 127.0.0.1
		healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
		metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
		# NodePorts answer on loopback (the URL make url prints) and the bridge address only.
		nodePortAddresses: [127.0.0.0/8, $NODE_IP/32]
		iptables: {localhostNodePorts: true, syncPeriod: 30s, minSyncPeriod: 0s}
		# Leave the machine's conntrack table size alone.
		conntrack: {maxPerCore: 0}
	YAML
	spawn kube-proxy "$K8S_HOME/bin/kube-proxy" --config "$NODE_DIR/kube-proxy.yaml"
	wait_until kube-proxy 60 "kube-proxy healthz" curl -s "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
}

# ---------------------------------------------------------------- NetworkPolicy
# kube-router's policy controller alone (built from cluster/node-real/netpol/: no routing, no
# service proxy): it turns NetworkPolicies into iptables chains (KUBE-ROUTER-*, KUBE-POD-FW-*,
# KUBE-NWPLCY-*) and ipsets, on this node.
network_policy_up() {
	grant_read kube-router <<-YAML
		- apiGroups: [""]
		  resources: [namespaces, pods, services, endpoints, nodes]
		  verbs: [get, list, watch]
		- apiGroups: [networking.k8s.io]
		  resources: [networkpolicies]
		  verbs: [get, list, watch]
		- apiGroups: [discovery.k8s.io]
		  resources: [endpointslices]
		  verbs: [get, list, watch]
	YAML
	spawn kube-router "$KUBE_ROUTER_HOME/bin/kube-router" \
		--kubeconfig="$CONF_DIR/real-node-kube-router.kubeconfig" --hostname-override="$NODE_NAME" \
		--service-cluster-ip-range="$SERVICE_CIDR" --health-port="$KUBE_ROUTER_HEALTH_PORT" --metrics-port=0
	wait_until kube-router 60 "kube-router healthz" curl -sf "http://127.0.0.1:$KUBE_ROUTER_HEALTH_PORT/healthz"
}

# Its ipsets, once no rule uses them (kube_iptables_down removed its chains: they are KUBE-*).
# Its --cleanup-config panics on a kernel without IPVS.
network_policy_sets_down() {
	command -v ipset >/dev/null || return 0
	local set
	for set in $(ipset list -name 2>/dev/null | grep -E '^(KUBE-(SRC|DST)-|kube-router-)'); do
		ipset destroy "$set" 2>/dev/null || warn "could not destroy ipset $set"
	done
}

# ---------------------------------------------------------------- up / down
down() {
	trap - TERM INT
	set +e # take apart as much as possible
	local started=$SECONDS
	stop_child kubelet 20
	# The node leaves the cluster: its pods are recreated elsewhere or when it comes back,
	# and a later kwok-mode cluster does not schedule onto a node that is gone.
	if [ "$MODE" != cleanup ]; then
		kubectl_admin delete node "$NODE_NAME" --ignore-not-found --wait=false --request-timeout=5s >/dev/null 2>&1 ||
			warn "could not delete Node $NODE_NAME (is the apiserver down?)"
	fi
	pods_down
	stop_child kube-router 10
	stop_child kube-proxy 10
	kube_iptables_down
	network_policy_sets_down
	stop_child coredns 10
	stop_child containerd 20
	mounts_down
	network_down
	rm -rf "$CHILD_PIDS"
	info "real node taken down in $((SECONDS - started))s"
}

up() {
	[ "$(id -u)" = 0 ] || die "the real node needs root (containerd, network namespaces, iptables)"
	local started=$SECONDS child
	network_up
	containerd_up
	coredns_up
	kubelet_up
	kube_proxy_up
	network_policy_up
	info "real node up in $((SECONDS - started))s"
	# Stay in the foreground; a child that dies takes the node down (status shows it dead).
	while true; do
		wait -n || true
		for child in containerd coredns kubelet kube-proxy kube-router; do
			if [ -e "$CHILD_PIDS/$child" ] && ! process_alive "$child"; then
				log_tail "$child" 20
				warn "$child exited; taking the real node down"
				exit 1
			fi
		done
	done
}

case $MODE in
run)
	# TERM interrupts `wait -n` at once (and a short command otherwise); a failed start too
	# takes down what it had started.
	trap 'down; exit 0' TERM INT
	on_exit() {
		local status=$?
		[ "$status" = 0 ] || down
		exit "$status"
	}
	trap on_exit EXIT
	up
	;;
cleanup) down ;;
*)
	echo "usage: $0 [run|cleanup]" >&2
	exit 2
	;;
esac
