# Node mode "real": one real node on this machine, pods are real containers.
#
# The node is one component, "real-node": cluster/node-real/supervise.sh starts and supervises
# containerd (Debian's), CoreDNS and kube-router's NetworkPolicy controller (built from their Go
# modules), kubelet and kube-proxy (built with the control plane at KUBERNETES_VERSION), each
# with its own log in .cluster/logs/, and on SIGTERM (cluster down) removes every pod, rule,
# ipset, mount and the bridge before it exits. Pods
# live on the bridge $NODE_BRIDGE ($NODE_POD_CIDR); nothing is pulled: the sandbox image and
# the app images are built locally (images/) and imported into this node's containerd.
#
# Implements the node-mode interface of cluster/cluster.sh (see cluster/node-kwok/node.sh).
# shellcheck shell=bash disable=SC2034 # CMD and the *_COMPONENTS lists are read by cluster.sh
# shellcheck source=cluster/node-real/env.sh
. "$CLUSTER_DIR/node-real/env.sh"

NODE_COMPONENTS=(real-node)
# Debian packages the node and its image builds need (installed on first use when missing).
NODE_DEBIAN_PACKAGES=(containerd runc containernetworking-plugins iptables ipset conntrack buildah debootstrap gcc libc6-dev curl)

node_build() {
	[ "$(id -u)" = 0 ] || die "CLUSTER_NODE_MODE=real needs root (containerd, network namespaces, iptables); or use CLUSTER_NODE_MODE=kwok"
	"$CLUSTER_DIR/node-real/install-packages.sh" "${NODE_DEBIAN_PACKAGES[@]}"
	"$CLUSTER_DIR/build.sh" coredns kube-router
	"$REPO_ROOT/images/pause.sh" >/dev/null
}

node_prepare() {
	mkdir -p "$NODE_DIR"
	# kubelet: its own identity (Node authorizer + NodeRestriction), and a serving certificate
	# for the apiserver's calls (logs, exec) on the node address.
	pki_issue real-node-kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" client
	pki_issue real-node-kubelet-serving "/CN=$NODE_NAME" server "DNS:$NODE_NAME,IP:$NODE_IP"
	pki_kubeconfig "$CONF_DIR/real-node-kubelet.kubeconfig" real-node-kubelet "system:node:$NODE_NAME"
	# kube-proxy: the user the default system:node-proxier binding names.
	pki_issue real-node-kube-proxy "/CN=system:kube-proxy" client
	pki_kubeconfig "$CONF_DIR/real-node-kube-proxy.kubeconfig" real-node-kube-proxy system:kube-proxy
	# CoreDNS: read-only on Services/EndpointSlices/Namespaces (ClusterRole made by supervise.sh).
	pki_issue real-node-coredns "/CN=mesh-playground:coredns" client
	pki_kubeconfig "$CONF_DIR/real-node-coredns.kubeconfig" real-node-coredns mesh-playground:coredns
	# kube-router: read-only on what NetworkPolicies select (ClusterRole made by supervise.sh).
	pki_issue real-node-kube-router "/CN=mesh-playground:kube-router" client
	pki_kubeconfig "$CONF_DIR/real-node-kube-router.kubeconfig" real-node-kube-router mesh-playground:kube-router
	# A supervisor that was killed (not stopped) leaves pods, mounts and rules: clear them first.
	if [ -d "$NODE_RUN/pids" ] && [ -z "$(component_pid real-node)" ]; then
		warn "the real node was not taken down cleanly last time; cleaning up"
		"$CLUSTER_DIR/node-real/supervise.sh" cleanup
	fi
}

cmd_real_node() { CMD=("$CLUSTER_DIR/node-real/supervise.sh"); }
ports_real_node() { echo "10250 $KUBELET_HEALTHZ_PORT $KUBE_PROXY_HEALTHZ_PORT $KUBE_PROXY_METRICS_PORT $COREDNS_READY_PORT $KUBE_ROUTER_HEALTH_PORT"; }
ready_real_node() {
	[ -S "$CONTAINERD_SOCKET" ] && ctr --address "$CONTAINERD_SOCKET" version >/dev/null 2>&1 &&
		curl --silent --fail --max-time 3 "http://127.0.0.1:$COREDNS_READY_PORT/ready" >/dev/null &&
		curl --silent --fail --max-time 3 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" >/dev/null &&
		curl --silent --fail --max-time 3 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" >/dev/null &&
		curl --silent --fail --max-time 3 "http://127.0.0.1:$KUBE_ROUTER_HEALTH_PORT/healthz" >/dev/null
}

node_names() { echo "$NODE_NAME"; }

# kubelet registers its Node itself (and supervise.sh deletes it when the node goes down).
node_register() { :; }

# Another mode takes over after this node was killed rather than stopped: its Node goes too.
node_unregister() {
	kubectl_admin delete node "$NODE_NAME" --ignore-not-found --wait=false >/dev/null
}
