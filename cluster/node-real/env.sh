# Settings of the real node (sourced after cluster/lib.sh). One node, one bridge, host processes:
# containerd (Debian), kubelet and kube-proxy (built at KUBERNETES_VERSION), CoreDNS and
# kube-router's NetworkPolicy controller (Go modules).
# shellcheck shell=bash disable=SC2034

NODE_NAME=${CLUSTER_REAL_NODE_NAME:-mesh-playground-node}
NODE_DIR=$STATE_DIR/node-real     # generated configs (git-ignored .cluster/)
NODE_RUN=/run/mesh-playground     # sockets, runtime state (tmpfs)
NODE_LIB=/var/lib/mesh-playground # containerd images/snapshots, kubelet root: kept across up/down
CONTAINERD_SOCKET=$NODE_RUN/containerd/containerd.sock
CONTAINERD_ROOT=$NODE_LIB/containerd
# containerd's registry hosts directory (its CRI registry.config_path), opt-in per registry: a
# <host[:port]>/hosts.toml there (e.g. with the CA of a registry of your own, as images/registry.sh
# writes for the local one) is read at each pull, no restart needed. One per machine like the
# node, so any checkout's registry reaches it.
REGISTRY_HOSTS_DIR=$NODE_LIB/certs.d
KUBELET_ROOT=$NODE_LIB/kubelet
CNI_CONF_DIR=$NODE_DIR/cni
# The node's own CNI plugin directory: Debian's plugins (CNI_SYSTEM_BIN_DIR) linked in, and what
# a CNI DaemonSet installs (Istio's istio-cni) lands here, never in a system directory. Removed
# with the node.
CNI_SYSTEM_BIN_DIR=/usr/lib/cni
CNI_BIN_DIR=$NODE_RUN/cni/bin
# Host directories Istio's CNI chart (roles/istio_mesh) mounts and containerd creates for it:
# its log/event sockets. Removed when the node goes down.
ISTIO_CNI_HOST_DIRS=(/var/run/istio-cni)

# This node's slice of POD_CIDR, on a bridge we create; its gateway address is the node's
# address (kubelet, CoreDNS) so pods and the host talk only over this bridge.
NODE_BRIDGE=mpbr0
NODE_POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1
CLUSTER_DNS_IP=$NODE_IP
CLUSTER_DOMAIN=cluster.local
FIREWALL_CHAIN=MESH-PLAYGROUND-NODE

COREDNS_READY_PORT=${CLUSTER_COREDNS_READY_PORT:-18181}
KUBELET_HEALTHZ_PORT=${CLUSTER_KUBELET_HEALTHZ_PORT:-10248}
KUBE_PROXY_HEALTHZ_PORT=${CLUSTER_KUBE_PROXY_HEALTHZ_PORT:-10256}
KUBE_PROXY_METRICS_PORT=${CLUSTER_KUBE_PROXY_METRICS_PORT:-10249}
KUBE_ROUTER_HEALTH_PORT=${CLUSTER_KUBE_ROUTER_HEALTH_PORT:-20244}

ctr_k8s() { ctr --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }
