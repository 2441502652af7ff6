# Settings and helpers of the image scripts (sourced, not run), on top of cluster/lib.sh, the
# one library (paths, the cache root, messages).
# shellcheck shell=bash disable=SC2034
# Images are built rootful with buildah into a private store under the cache, exported as
# docker-archive tarballs and imported into the node's containerd. Nothing is pulled.
. "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"

IMAGE_CACHE=$CACHE_DIR/images
IMAGE_PREFIX=localhost/mesh-playground
# The apps with an image of their own (apps/<app>/), in the order images/build.sh lists them.
APPS=(webserver proxy view)
DEBIAN_SUITE=bookworm
# The mirror apt already uses on this machine (deb.debian.org when none is configured).
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

mkdir -p "$IMAGE_CACHE"

# buildah with its store kept under the cache (survives cluster-down, never in the repo).
bah() {
	buildah --root "$IMAGE_CACHE/buildah-storage" --runroot /run/mesh-playground/buildah \
		--storage-driver overlay "$@"
}

image_exists() { bah inspect --type image "$1" >/dev/null 2>&1; }

# Short content hash of files (paths relative to REPO_ROOT) and extra strings.
content_hash() {
	(cd "$REPO_ROOT" && for f in "$@"; do
		if [[ -e $f ]]; then
			find "$f" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
		else
			printf '%s\n' "$f"
		fi
	done) | sha256sum | cut -c1-12
}

require_root() {
	[[ $(id -u) == 0 ]] || die "building images needs root (rootful buildah, debootstrap)"
	"$REPO_ROOT/cluster/node-real/install-packages.sh" buildah debootstrap gcc libc6-dev containerd
}
