#!/usr/bin/env bash
# Builds the observability stack's images locally from what cluster/istio-build.sh caches (built
# or fetched first if missing):
#   prometheus  /usr/local/bin/prometheus (from its Go module) on the Debian base
#   zipkin      /opt/zipkin/zipkin-server.jar (Maven Central) on the base with Java 17 (base.sh jre)
# Both run as a numeric non-root user; the Deployments (roles/mesh_observability) give the
# arguments. Tags are content hashes of this script, the base and the cached build. Prints one
# reference per line: prometheus, then zipkin.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root

"$REPO_ROOT/cluster/istio-build.sh" prometheus zipkin >&2
prometheus_home=$("$REPO_ROOT/cluster/istio-build.sh" path prometheus)
zipkin_home=$("$REPO_ROOT/cluster/istio-build.sh" path zipkin)

build_one() { # image base entrypoint-json src:dest
	local image=$1 base=$2 entrypoint=$3 src=${4%%:*} dest=${4#*:} ref ctr
	ref=$IMAGE_PREFIX/$image:$(content_hash images/observability.sh "$base" "$(sha256sum "$src")")
	if ! image_exists "$ref"; then
		info "building $ref"
		ctr=$(bah from --quiet --pull-never "$base")
		bah copy --quiet --chmod 0755 "$ctr" "$src" "$dest" >/dev/null
		# The base's CMD (python3) must not become the entrypoint's first argument.
		bah config --cmd '[]' "$ctr"
		bah config --user 10001:10001 --workingdir /tmp --entrypoint "$entrypoint" \
			--label org.opencontainers.image.description="mesh-playground $image, built locally" "$ctr"
		bah commit --quiet --rm "$ctr" "$ref" >/dev/null
	fi
	echo "$ref"
}

build_one prometheus "$("$REPO_ROOT/images/base.sh")" '["/usr/local/bin/prometheus"]' \
	"$prometheus_home/bin/prometheus:/usr/local/bin/prometheus"
build_one zipkin "$("$REPO_ROOT/images/base.sh" jre)" '["java", "-jar", "/opt/zipkin/zipkin-server.jar"]' \
	"$zipkin_home/zipkin-server.jar:/opt/zipkin/zipkin-server.jar"
