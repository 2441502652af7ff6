# Node mode "kwok" (the default): simulated nodes, no containers.
#
# KWOK plays the kubelet for every Node annotated kwok.x-k8s.io/node=fake: it marks the Node
# Ready, renews its Lease, gives its Pods an IP and moves them to Running/Ready. How things move
# is described by upstream's Stage objects (copied from the kwok module by build.sh).
#
# The interface of a node mode (sourced by cluster.sh after components.sh):
#   NODE_COMPONENTS   components started after the control plane (see components.sh)
#   node_build        builds what the mode needs (reusing caches)
#   node_prepare      certificates/config before its components start
#   node_register     after they run: create/refresh the Node objects
#   node_names        the Nodes that must become Ready
#   node_unregister   (optional) remove the mode's Nodes when another mode takes over
# shellcheck shell=bash disable=SC2034 # CMD and the *_COMPONENTS lists are read by cluster.sh

NODE_COMPONENTS=(kwok-controller)
KWOK_PORT=${CLUSTER_KWOK_PORT:-$((10247 + PORT_OFFSET))}
KWOK_NODE_COUNT=${CLUSTER_KWOK_NODES:-1}

node_build() { "$CLUSTER_DIR/build.sh" kwok; }

node_prepare() {
	# KWOK stands in for every kubelet and writes Pods of all namespaces: it runs as an admin.
	pki_issue kwok-controller "/O=system:masters/CN=kwok-controller" client
	pki_kubeconfig "$CONF_DIR/kwok.kubeconfig" kwok-controller kwok-controller
}

cmd_kwok_controller() {
	CMD=("$KWOK_HOME/bin/kwok"
		--kubeconfig="$CONF_DIR/kwok.kubeconfig"
		--config="$KWOK_HOME/stages.yaml"
		--manage-all-nodes=false
		--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
		--node-ip="$BIND_ADDRESS"
		--cidr="$POD_CIDR"
		--node-lease-duration-seconds=40
		--server-address="$BIND_ADDRESS:$KWOK_PORT")
}
ports_kwok_controller() { echo "$KWOK_PORT"; }
ready_kwok_controller() { curl --silent --fail --max-time 3 "http://$BIND_ADDRESS:$KWOK_PORT/healthz"; }

node_names() {
	local i
	for ((i = 0; i < KWOK_NODE_COUNT; i++)); do echo "kwok-node-$i"; done
}

# No taint: these are the only nodes, so every workload (our Deployments included) lands here.
node_register() {
	local name
	for name in $(node_names); do
		cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    node.kubernetes.io/instance-type: kwok
    type: kwok
status:
  allocatable: {cpu: "16", memory: 64Gi, pods: "110"}
  capacity: {cpu: "16", memory: 64Gi, pods: "110"}
EOF
	done | kubectl_admin apply --server-side --field-manager=mesh-playground-cluster -f - >/dev/null
}

# Their Pods go with them (the pod garbage collector deletes Pods bound to a missing Node).
node_unregister() {
	kubectl_admin delete nodes --selector type=kwok --ignore-not-found --wait=false >/dev/null
}
