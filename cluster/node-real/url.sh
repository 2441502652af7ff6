#!/usr/bin/env bash
# `make url`: where the apps answer from this machine. With the mesh, the ingress gateway
# (its Gateway and VirtualService route to the proxy); without it, the proxy's own Service. Both
# are NodePorts, which kube-proxy serves on 127.0.0.1 of the real node (LoadBalancers stay
# pending without a cloud).
#   url.sh                 print the URL (the gateway's when it routes to the proxy)
#   url.sh --proxy         print the proxy Service's URL
#   url.sh --answer        also wait (up to 60 s) for one real answer through it and print it
#   url.sh --observe       where the live view, Zipkin and Prometheus answer (docs/observe.md)
#   url.sh --prometheus    Prometheus' URL alone (make stat)
set -euo pipefail
# shellcheck source=cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
NAMESPACE=${PLAYGROUND_NAMESPACE:-mesh-playground}
GATEWAY_NAMESPACE=istio-ingress
GATEWAY_SERVICE=istio-ingressgateway
OBSERVABILITY_NAMESPACE=${PLAYGROUND_OBSERVABILITY_NAMESPACE:-mesh-observability}

if ! { [ -x "$KUBECTL" ] && kubectl_admin get --raw /readyz >/dev/null 2>&1; }; then
	die "the local cluster is not running: make cluster-up CLUSTER_NODE_MODE=real (then make deploy)"
fi
mode=$(cat "$RUN_DIR/node-mode" 2>/dev/null || echo unknown)
[ "$mode" = real ] ||
	die "the cluster runs in '$mode' node mode, where pods are simulated and nothing answers: CLUSTER_NODE_MODE=real make cluster-up joins the real node, then make deploy"

node_port() { # namespace service port-name
	kubectl_admin --namespace "$1" get service "$2" \
		-o "jsonpath={.spec.ports[?(@.name==\"$3\")].nodePort}" 2>/dev/null || true
}

# What answers from the observability stack (those that are deployed).
if [[ ${1:-} == --observe || ${1:-} == --prometheus ]]; then
	prometheus=$(node_port "$OBSERVABILITY_NAMESPACE" prometheus http-web)
	if [ "$1" = --prometheus ]; then
		[ -n "$prometheus" ] || die "no Prometheus NodePort in namespace $OBSERVABILITY_NAMESPACE: make deploy (with the mesh) deploys it"
		echo "http://127.0.0.1:$prometheus"
		exit 0
	fi
	view=$(node_port "$NAMESPACE" view http-web)
	zipkin=$(node_port "$OBSERVABILITY_NAMESPACE" zipkin http-query)
	[ -n "$view$zipkin$prometheus" ] || die "nothing to observe is deployed: make deploy with the mesh on (playground_observability)"
	[ -z "$view" ] || echo "live view   http://127.0.0.1:$view/"
	[ -z "$zipkin" ] || echo "Zipkin      http://127.0.0.1:$zipkin/zipkin/"
	[ -z "$prometheus" ] || echo "Prometheus  http://127.0.0.1:$prometheus/api/v1/query?query=istio_requests_total"
	[ -z "$prometheus" ] || echo "make stat   per workload and version: rps, success rate, p50/p99 (last minute)"
	exit 0
fi

port='' via=''
if [ "${1:-}" != --proxy ] &&
	kubectl_admin --namespace "$NAMESPACE" get gateways.networking.istio.io >/dev/null 2>&1 &&
	[ -n "$(kubectl_admin --namespace "$NAMESPACE" get gateways.networking.istio.io -o name 2>/dev/null)" ]; then
	port=$(node_port "$GATEWAY_NAMESPACE" "$GATEWAY_SERVICE" http2)
	via="the ingress gateway"
fi
if [ -z "$port" ]; then
	port=$(node_port "$NAMESPACE" proxy http-web)
	via="the proxy Service"
fi
[ -n "$port" ] || die "no proxy Service with a NodePort in namespace $NAMESPACE: deploy the apps first (make deploy)"
url=http://127.0.0.1:$port/
echo "$url"

# One answer of the proxy's, in $answer.
proxy_answers() {
	answer=$(curl --silent --fail --max-time 5 "$url") && [[ $answer == "Proxying value: "* ]]
}

if [ "${*: -1}" = --answer ]; then
	answer=
	wait_until "" 60 "an answer from the proxy through $via at $url (make cluster-status shows what runs)" proxy_answers
	echo "$answer (through $via)"
fi
