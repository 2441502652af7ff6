# The cluster's PKI and kubeconfigs, made with openssl (sourced after lib.sh).
# One CA signs everything; ECDSA P-256 keys. Files already present are kept, so restarts reuse
# them; `make cluster-clean` starts over. A node mode can issue its own certificates with
# pki_issue (e.g. a kubelet client certificate: CN=system:node:<name>, O=system:nodes).
# shellcheck shell=bash

PKI_DAYS=825

pki_new_key() { # file
	(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

pki_ensure_ca() {
	[ -s "$PKI_DIR/ca.crt" ] && return
	mkdir -p "$PKI_DIR"
	pki_new_key "$PKI_DIR/ca.key"
	openssl req -x509 -new -key "$PKI_DIR/ca.key" -days 3650 -subj "/CN=mesh-playground-ca" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$PKI_DIR/ca.crt" 2>/dev/null
}

# Issues $PKI_DIR/<name>.{crt,key} unless it exists with the same subject and SANs.
pki_issue() { # name subject(/O=../CN=..) usage(client|server|both) [sans, e.g. IP:127.0.0.1,DNS:localhost]
	local name=$1 subject=$2 usage=$3 sans=${4:-} eku ext want
	case $usage in
	client) eku=clientAuth ;;
	server) eku=serverAuth ;;
	both) eku=serverAuth,clientAuth ;;
	*) die "pki_issue: bad usage '$usage'" ;;
	esac
	want="$subject|$eku|$sans"
	if [ -s "$PKI_DIR/$name.crt" ] && [ "$(cat "$PKI_DIR/$name.spec" 2>/dev/null)" = "$want" ]; then
		return
	fi
	pki_ensure_ca
	ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$eku"
	[ -z "$sans" ] || ext+=$'\n'"subjectAltName=$sans"
	pki_new_key "$PKI_DIR/$name.key"
	openssl req -new -key "$PKI_DIR/$name.key" -subj "$subject" 2>/dev/null |
		openssl x509 -req -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" -CAcreateserial \
			-days "$PKI_DAYS" -extfile <(printf '%s\n' "$ext") -out "$PKI_DIR/$name.crt" 2>/dev/null ||
		die "openssl could not issue the $name certificate"
	echo "$want" >"$PKI_DIR/$name.spec"
}

# A kubeconfig with the client certificate embedded (so it can be copied elsewhere).
pki_kubeconfig() { # file cert-name user-name
	local file=$1 cert=$2 user=$3
	(
		umask 077
		cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CONTEXT_NAME
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 "$PKI_DIR/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI_DIR/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI_DIR/$cert.key")
contexts:
- name: $CONTEXT_NAME
  context:
    cluster: $CONTEXT_NAME
    user: $user
current-context: $CONTEXT_NAME
EOF
	)
}

pki_ensure_control_plane() {
	local apiserver_sans="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
	apiserver_sans+=",DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_APISERVER_IP"
	[ "$APISERVER_ADVERTISE_ADDRESS" = 127.0.0.1 ] || apiserver_sans+=",IP:$APISERVER_ADVERTISE_ADDRESS"
	[ -z "${CLUSTER_APISERVER_EXTRA_SANS:-}" ] || apiserver_sans+=",$CLUSTER_APISERVER_EXTRA_SANS"

	mkdir -p "$PKI_DIR" "$CONF_DIR"
	pki_ensure_ca
	pki_issue etcd-server "/CN=etcd" both "DNS:localhost,IP:127.0.0.1"
	pki_issue apiserver-etcd-client "/CN=kube-apiserver-etcd-client" client
	pki_issue apiserver "/CN=kube-apiserver" server "$apiserver_sans"
	# For the apiserver's calls to kubelets (logs, exec) once there is a real node.
	pki_issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
	pki_issue admin "/O=system:masters/CN=mesh-playground-admin" client
	pki_issue controller-manager "/CN=system:kube-controller-manager" client
	pki_issue scheduler "/CN=system:kube-scheduler" client
	# Service account tokens: the apiserver signs with the private key, everyone verifies with
	# the public one; the controller-manager signs the legacy token Secrets with it too.
	if [ ! -s "$PKI_DIR/sa.key" ]; then
		pki_new_key "$PKI_DIR/sa.key"
		openssl pkey -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
	fi

	pki_kubeconfig "$KUBECONFIG_FILE" admin mesh-playground-admin
	pki_kubeconfig "$CONF_DIR/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
	pki_kubeconfig "$CONF_DIR/scheduler.kubeconfig" scheduler system:kube-scheduler
}
