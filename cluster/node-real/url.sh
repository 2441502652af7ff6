#!/usr/bin/env bash
# `make url`: the URL at which the proxy Service answers from this machine. The Service is a
# LoadBalancer, which stays pending without a cloud; its NodePort, which kube-proxy serves on
# 127.0.0.1 of the real node, is the way in.
#   url.sh            print the URL
#   url.sh --answer   also wait (up to 60 s) for one real answer through it and print it
set -euo pipefail
# shellcheck source=cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
NAMESPACE=${PLAYGROUND_NAMESPACE:-mesh-playground}

if ! { [ -x "$KUBECTL" ] && kubectl_admin get --raw /readyz >/dev/null 2>&1; }; then
	die "the local cluster is not running: make cluster-up CLUSTER_NODE_MODE=real (then make deploy)"
fi
mode=$(cat "$RUN_DIR/node-mode" 2>/dev/null || echo unknown)
[ "$mode" = real ] ||
	die "the cluster runs in '$mode' node mode, where pods are simulated and nothing answers: CLUSTER_NODE_MODE=real make cluster-up joins the real node, then make deploy"
port=$(kubectl_admin --namespace "$NAMESPACE" get service proxy -o 'jsonpath={.spec.ports[0].nodePort}' 2>/dev/null) || true
[ -n "$port" ] || die "no proxy Service with a NodePort in namespace $NAMESPACE: deploy the apps first (make deploy)"
url=http://127.0.0.1:$port/
echo "$url"

# One answer of the proxy's, in $answer.
proxy_answers() {
	answer=$(curl --silent --fail --max-time 5 "$url") && [[ $answer == "Proxying value: "* ]]
}

if [ "${1:-}" = --answer ]; then
	answer=
	wait_until "" 60 "an answer from the proxy at $url (make cluster-status shows what runs)" proxy_answers
	echo "$answer"
fi
