# The control plane, one component at a time (sourced after lib.sh and pki.sh).
#
# A component <name> is three functions, <name> with dashes as underscores:
#   cmd_<name>     fills the array CMD with the program and its arguments
#   ports_<name>   prints the TCP ports it listens on (checked before start)
#   ready_<name>   succeeds once it serves (polled with a deadline)
# Node modes (cluster/node-<mode>/node.sh) define their components the same way.
# shellcheck shell=bash disable=SC2034 # CMD and the *_COMPONENTS lists are read by cluster.sh

CONTROL_PLANE_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)

# curl against our own TLS endpoints, authenticating as the cluster admin.
curl_admin() {
	curl --silent --fail --max-time 3 --cacert "$PKI_DIR/ca.crt" \
		--cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key" "$@"
}

# ---------------------------------------------------------------- etcd
cmd_etcd() {
	CMD=("$ETCD_HOME/bin/etcd"
		--name=mesh-playground
		--data-dir="$DATA_DIR/etcd"
		--listen-client-urls="https://$BIND_ADDRESS:$ETCD_CLIENT_PORT"
		--advertise-client-urls="https://$BIND_ADDRESS:$ETCD_CLIENT_PORT"
		--listen-peer-urls="http://$BIND_ADDRESS:$ETCD_PEER_PORT"
		--initial-advertise-peer-urls="http://$BIND_ADDRESS:$ETCD_PEER_PORT"
		--initial-cluster="mesh-playground=http://$BIND_ADDRESS:$ETCD_PEER_PORT"
		--cert-file="$PKI_DIR/etcd-server.crt"
		--key-file="$PKI_DIR/etcd-server.key"
		--trusted-ca-file="$PKI_DIR/ca.crt"
		--client-cert-auth=true
		--log-level=warn)
}
ports_etcd() { echo "$ETCD_CLIENT_PORT $ETCD_PEER_PORT"; }
ready_etcd() {
	curl --silent --fail --max-time 3 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/apiserver-etcd-client.crt" \
		--key "$PKI_DIR/apiserver-etcd-client.key" "https://$BIND_ADDRESS:$ETCD_CLIENT_PORT/health" |
		grep -q '"health":"true"'
}

# ---------------------------------------------------------------- kube-apiserver
cmd_kube_apiserver() {
	# shellcheck disable=SC2054 # the commas are inside flag values
	CMD=("$K8S_HOME/bin/kube-apiserver"
		--bind-address="$BIND_ADDRESS"
		--secure-port="$APISERVER_PORT"
		--advertise-address="$APISERVER_ADVERTISE_ADDRESS"
		--etcd-servers="https://$BIND_ADDRESS:$ETCD_CLIENT_PORT"
		--etcd-cafile="$PKI_DIR/ca.crt"
		--etcd-certfile="$PKI_DIR/apiserver-etcd-client.crt"
		--etcd-keyfile="$PKI_DIR/apiserver-etcd-client.key"
		--tls-cert-file="$PKI_DIR/apiserver.crt"
		--tls-private-key-file="$PKI_DIR/apiserver.key"
		--client-ca-file="$PKI_DIR/ca.crt"
		--kubelet-client-certificate="$PKI_DIR/apiserver-kubelet-client.crt"
		--kubelet-client-key="$PKI_DIR/apiserver-kubelet-client.key"
		# The real node's name does not resolve on the host: logs/exec reach it by its InternalIP.
		--kubelet-preferred-address-types=InternalIP,Hostname
		--authorization-mode=Node,RBAC
		# The default admission plugins (PodSecurity, ServiceAccount, LimitRanger, ResourceQuota,
		# webhooks, ...) are on; NodeRestriction is the one the defaults leave out.
		--enable-admission-plugins=NodeRestriction
		--enable-bootstrap-token-auth=true
		--service-account-issuer=https://kubernetes.default.svc.cluster.local
		--service-account-key-file="$PKI_DIR/sa.pub"
		--service-account-signing-key-file="$PKI_DIR/sa.key"
		--service-cluster-ip-range="$SERVICE_CIDR"
		--allow-privileged=false
		--profiling=false)
	# An EndpointSlice may not point at a loopback address: with the apiserver advertised on
	# 127.0.0.1 the `kubernetes` Service keeps no endpoints instead of failing to write them.
	if [ "$APISERVER_ADVERTISE_ADDRESS" = 127.0.0.1 ]; then CMD+=(--endpoint-reconciler-type=none); fi
}
ports_kube_apiserver() { echo "$APISERVER_PORT"; }
ready_kube_apiserver() { curl_admin "$APISERVER_URL/readyz" | grep -qx ok; }

# ---------------------------------------------------------------- kube-controller-manager
# What kube-controller-manager and kube-scheduler share: where they serve, one kubeconfig for the
# API and for checking their own callers, a single instance (no election), no profiling endpoints.
# usage: control_plane_flags <kubeconfig> <secure port>  (sets FLAGS)
control_plane_flags() {
	FLAGS=(--bind-address="$BIND_ADDRESS" --secure-port="$2"
		--kubeconfig="$1" --authentication-kubeconfig="$1" --authorization-kubeconfig="$1"
		--leader-elect=false --profiling=false)
}

cmd_kube_controller_manager() {
	control_plane_flags "$CONF_DIR/controller-manager.kubeconfig" "$CONTROLLER_MANAGER_PORT"
	CMD=("$K8S_HOME/bin/kube-controller-manager" "${FLAGS[@]}"
		--cluster-name="$CONTEXT_NAME"
		# Each controller acts as its own ServiceAccount (least privilege via RBAC).
		--use-service-account-credentials=true
		--service-account-private-key-file="$PKI_DIR/sa.key"
		--root-ca-file="$PKI_DIR/ca.crt"
		# Signs kubelet CSRs (real node mode) with the cluster CA; bootstrap tokens work too.
		--cluster-signing-cert-file="$PKI_DIR/ca.crt"
		--cluster-signing-key-file="$PKI_DIR/ca.key"
		--controllers='*,bootstrapsigner,tokencleaner'
		--service-cluster-ip-range="$SERVICE_CIDR")
}
ports_kube_controller_manager() { echo "$CONTROLLER_MANAGER_PORT"; }
ready_kube_controller_manager() {
	# Serves a self-signed certificate of its own; /healthz is open to anonymous callers.
	curl --silent --fail --max-time 3 --insecure \
		"https://$BIND_ADDRESS:$CONTROLLER_MANAGER_PORT/healthz" | grep -qx ok
}

# ---------------------------------------------------------------- kube-scheduler
cmd_kube_scheduler() {
	control_plane_flags "$CONF_DIR/scheduler.kubeconfig" "$SCHEDULER_PORT"
	CMD=("$K8S_HOME/bin/kube-scheduler" "${FLAGS[@]}")
}
ports_kube_scheduler() { echo "$SCHEDULER_PORT"; }
ready_kube_scheduler() {
	curl --silent --fail --max-time 3 --insecure "https://$BIND_ADDRESS:$SCHEDULER_PORT/healthz" | grep -qx ok
}
