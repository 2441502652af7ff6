#!/usr/bin/env bash
# Builds the local cluster's programs from the Go module proxy (versions: cluster/versions.env)
# into ~/.cache/mesh-playground/<component>/<version>/bin and reuses them when present.
#
#   cluster/build.sh [kubernetes|etcd|kwok|coredns|kube-router]...  (default: the first three;
#                                   coredns and kube-router are the real node's, cluster/node-real/)
#
# Each build leaves build-info.env next to its bin/: how long it took and how many packages had
# to be compiled (a cold build compiles nearly all of them; with a warm ~/.cache/go-build only
# the link step remains). bench/cluster.py reports these numbers.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# kubelet and kube-proxy are for the real node mode (cluster/node-real/); built in the same run
# because they share almost all packages with the rest.
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
# Measured with an empty Go build cache on the shared 2-core machine (33 min wall at low
# priority beside other builds, 14 CPU-minutes); shown before a build.
K8S_COLD_BUILD_NOTE="a cold build (empty Go build cache) takes up to ~35 min on 2 cores and ~4 GB of caches"

have_build() { # home binaries...
	local home=$1 cmd
	shift
	[ -f "$home/build-info.env" ] || return 1
	for cmd in "$@"; do [ -x "$home/bin/$cmd" ] || return 1; done
}

fmt_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# Reads `go build -v` output: counts compiled packages, passes errors through, and reports
# progress every 30 s (also while the linker is silent). Writes the count to $1.
build_progress() { # count_file label total
	local count_file=$1 label=$2 total=$3 compiled=0 started=$SECONDS last=$SECONDS line status
	while true; do
		status=0
		IFS= read -r -t 30 line || status=$?
		if [ "$status" -eq 0 ]; then
			case $line in
			*' '* | *:*) printf '%s\n' "$line" >&2 ;; # compiler output, errors
			*) compiled=$((compiled + 1)) ;;
			esac
		elif [ "$status" -le 128 ]; then
			break # end of output
		fi
		if [ $((SECONDS - last)) -ge 30 ]; then
			last=$SECONDS
			info "$label: $compiled of at most $total packages compiled, $(fmt_duration $((SECONDS - started))) elapsed"
		fi
	done
	echo "$compiled" >"$count_file"
}

# go build with progress; binaries go to a fresh directory that replaces bin/ only on success.
go_build() { # home label build-flags-and-packages...
	local home=$1 label=$2 total
	shift 2
	total=$(go list -deps "$@" 2>/dev/null | wc -l) || total="?"
	rm -rf "$home/bin.new" && mkdir -p "$home/bin.new"
	go build -v -o "$home/bin.new/" "$@" 2>&1 | build_progress "$home/.compiled" "$label" "$total"
	rm -rf "${home:?}/bin" && mv "$home/bin.new" "$home/bin"
	echo "$total" >"$home/.total"
}

write_build_info() { # home version seconds
	cat >"$1/build-info.env" <<EOF
VERSION=$2
BUILD_SECONDS=$3
PACKAGES_COMPILED=$(cat "$1/.compiled")
PACKAGES_TOTAL=$(cat "$1/.total")
GO_VERSION=$(go env GOVERSION)
BUILT_AT=$(date -u +%FT%TZ)
LOAD_AVERAGE=$(cut -d' ' -f1 /proc/loadavg)
EOF
	# A cold build (nearly every package compiled) is kept apart: it is the number to quote.
	if [ $(($(cat "$1/.compiled") * 10)) -ge $(($(cat "$1/.total") * 8)) ]; then
		cp "$1/build-info.env" "$1/cold-build-info.env"
	fi
	rm -f "$1/.compiled" "$1/.total"
}

build_kubernetes() {
	local home=$K8S_HOME src=$K8S_HOME/src started=$SECONDS modfile minor module ldflags pkgs=() cmd
	if have_build "$home" "${K8S_COMMANDS[@]}"; then
		info "Kubernetes $KUBERNETES_VERSION: reusing $home/bin"
		return
	fi
	require_go
	info "building Kubernetes $KUBERNETES_VERSION (${K8S_COMMANDS[*]}) into $home/bin"
	info "  $K8S_COLD_BUILD_NOTE; with a warm Go cache it is a few minutes of linking"
	rm -rf "$src" && mkdir -p "$src"
	cd "$src"
	# k8s.io/kubernetes cannot be `go install`ed: its go.mod points the k8s.io/* staging modules at
	# ./staging/. A wrapper module requires it and replaces each of them (read from that go.mod)
	# by its published v0.<minor> release.
	printf 'module localbuild\n\ngo %s\n' "$GO_MIN_VERSION" >go.mod
	go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
	GOFLAGS=-mod=mod go mod download k8s.io/kubernetes
	modfile=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod
	minor=${KUBERNETES_VERSION#v1.}
	while read -r module; do
		go mod edit -replace="$module=$module@v0.$minor"
	done < <(awk '/=> .\/staging/ {print $1}' "$modfile")
	for cmd in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
	{
		printf '//go:build tools\n\n// Package tools pins the commands we build.\npackage tools\n\nimport (\n'
		printf '\t_ "%s"\n' "${pkgs[@]}"
		printf ')\n'
	} >tools.go
	info "resolving modules (downloads on first run)"
	GOFLAGS=-mod=mod go mod tidy -e 2>&1 | grep -v '^go: downloading' | tail -5 || true
	# Without these, `kubectl version` and every --version say v0.0.0-master.
	ldflags=""
	for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
		ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
		ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%FT%TZ)"
	done
	go_build "$home" "Kubernetes" -tags tools -ldflags "$ldflags" "${pkgs[@]}"
	write_build_info "$home" "$KUBERNETES_VERSION" $((SECONDS - started))
	info "Kubernetes $KUBERNETES_VERSION built in $(fmt_duration $((SECONDS - started)))"
}

# A main of our own (main.go, written by the caller in the current directory) built against the
# published requirements of module@version into HOME/bin/BINARY; RAISE (module@version ...)
# replaces the versions it pins of those modules.
build_main() { # home binary module@version ldflags started [raise]
	local home=$1 binary=$2 module=$3 ldflags=$4 started=$5 raise=${6:-}
	printf 'module localbuild/%s\n\ngo %s\n' "$binary" "$GO_MIN_VERSION" >go.mod
	go mod edit -require="$module"
	GOFLAGS=-mod=mod go mod tidy 2>&1 | grep -v '^go: downloading' | tail -5 || true
	if [ -n "$raise" ]; then
		# shellcheck disable=SC2086 # a list of module@version
		GOFLAGS=-mod=mod go get $raise 2>&1 | grep -v '^go: \(downloading\|upgraded\)' | tail -5 || true
	fi
	mkdir -p "$home"
	go_build "$home" "$binary" -ldflags "$ldflags" .
	write_build_info "$home" "${module#*@}" $((SECONDS - started))
	info "$binary ${module#*@} built in $(fmt_duration $((SECONDS - started)))"
}

build_etcd() {
	local home=$ETCD_HOME src=$ETCD_HOME/src started=$SECONDS
	if have_build "$home" etcd; then
		info "etcd $ETCD_VERSION: reusing $home/bin"
		return
	fi
	require_go
	info "building etcd $ETCD_VERSION into $home/bin (a few minutes when cold)"
	rm -rf "$src" && mkdir -p "$src"
	cd "$src"
	# `go install go.etcd.io/etcd/server/v3` is refused (replace directives), so: a tiny main.
	cat >main.go <<'EOF'
// Command etcd is the upstream etcd server, built from its published module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
	build_main "$home" etcd "go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
		"-X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION" "$started"
}

# The plugins the real node's Corefile uses (cluster/node-real/supervise.sh), in CoreDNS's own
# plugin.cfg order, plus log and health for debugging: a main of our own imports only these
# (CoreDNS's documented way to choose plugins at compile time), half of the packages of the
# stock build, which brings every cloud provider's SDK.
COREDNS_PLUGINS=(bind ready health errors log cache template kubernetes)

build_coredns() {
	local home=$COREDNS_HOME src=$COREDNS_HOME/src started=$SECONDS plugin
	if have_build "$home" coredns; then
		info "CoreDNS $COREDNS_VERSION: reusing $home/bin"
		return
	fi
	require_go
	info "building CoreDNS $COREDNS_VERSION (plugins ${COREDNS_PLUGINS[*]}) into $home/bin (~2 min cold on 2 cores)"
	rm -rf "$src" && mkdir -p "$src"
	cd "$src"
	{
		printf '// Command coredns is upstream CoreDNS with the plugins of cluster/build.sh only.\npackage main\n\n'
		printf 'import (\n\t"github.com/coredns/coredns/core/dnsserver"\n\t"github.com/coredns/coredns/coremain"\n\n'
		for plugin in "${COREDNS_PLUGINS[@]}"; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$plugin"; done
		printf ')\n\nfunc init() {\n\tdnsserver.Directives = []string{\n'
		for plugin in "${COREDNS_PLUGINS[@]}"; do printf '\t\t"%s",\n' "$plugin"; done
		printf '\t}\n}\n\nfunc main() { coremain.Run() }\n'
	} >main.go
	build_main "$home" coredns "github.com/coredns/coredns@$COREDNS_VERSION" "-s -w" "$started"
}

# kube-router's NetworkPolicy controller alone: a main of our own (cluster/node-real/netpol/,
# the controller's package as k3s embeds it) built against kube-router's published requirements,
# with KUBE_ROUTER_RAISE's versions instead of the older ones it pins.
build_kube_router() {
	local home=$KUBE_ROUTER_HOME src=$KUBE_ROUTER_HOME/src started=$SECONDS
	if have_build "$home" kube-router; then
		info "kube-router $KUBE_ROUTER_VERSION: reusing $home/bin"
		return
	fi
	require_go
	info "building kube-router $KUBE_ROUTER_VERSION's NetworkPolicy controller into $home/bin (~2 min cold on 2 cores)"
	rm -rf "$src" && mkdir -p "$src"
	cp "$CLUSTER_DIR/node-real/netpol/main.go" "$src/"
	cd "$src"
	build_main "$home" kube-router "github.com/cloudnativelabs/kube-router/v2@$KUBE_ROUTER_VERSION" \
		"-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
		"$started" "$KUBE_ROUTER_RAISE"
}

build_kwok() {
	local home=$KWOK_HOME src started=$SECONDS kustomization resource dir
	if have_build "$home" kwok && [ -s "$home/stages.yaml" ]; then
		info "KWOK $KWOK_VERSION: reusing $home/bin"
		return
	fi
	require_go
	info "building KWOK $KWOK_VERSION into $home/bin (a few minutes when cold)"
	mkdir -p "$home"
	GOFLAGS=-mod=mod go mod download "sigs.k8s.io/kwok@$KWOK_VERSION"
	src=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION
	# The module's own go.mod, so its pinned dependencies and no replace surprises.
	cd "$src"
	go_build "$home" "KWOK" ./cmd/kwok # its version string is already in the source
	# KWOK 0.8 has no built-in behaviour: Stage objects say how fake nodes and pods move on.
	# Take upstream's "fast" set (node-initialize, node-heartbeat-with-lease, pod-ready,
	# pod-complete, pod-delete) from the module, following its kustomization files.
	kustomization=$src/kustomize/stage/fast/kustomization.yaml
	: >"$home/stages.yaml.new"
	while read -r dir; do
		while read -r resource; do
			{
				echo "---"
				cat "$src/kustomize/stage/fast/$dir/$resource"
			} >>"$home/stages.yaml.new"
		done < <(sed -n 's/^- //p' "$src/kustomize/stage/fast/$dir/kustomization.yaml")
	done < <(sed -n 's/^- //p' "$kustomization")
	grep -q '^kind: Stage' "$home/stages.yaml.new" || die "no KWOK Stage objects found under $src/kustomize/stage/fast"
	mv "$home/stages.yaml.new" "$home/stages.yaml"
	write_build_info "$home" "$KWOK_VERSION" $((SECONDS - started))
	info "KWOK $KWOK_VERSION built in $(fmt_duration $((SECONDS - started)))"
}

main() {
	local what
	[ $# -gt 0 ] || set -- kubernetes etcd kwok
	for what in "$@"; do
		case $what in
		kubernetes | etcd | kwok | coredns) ("build_$what") ;;
		kube-router) (build_kube_router) ;;
		*) die "unknown component '$what' (expected: kubernetes, etcd, kwok, coredns, kube-router)" ;;
		esac
	done
}

main "$@"
