#!/usr/bin/env bash
# Builds the app images from the project's one Containerfile (apps/Containerfile, --build-arg
# APP=<app>, build context apps/) on the local base image. The tag is a content hash of the app,
# the shared code, the Containerfile and the base, so an image is rebuilt only when one of them
# changes.
# Usage: apps.sh [APP...]   (default: every app of APPS, images/lib.sh) Prints one image
# reference per app.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root
# The directories of apps/, for the usage message.
app_dirs() {
	local dir
	for dir in "$REPO_ROOT"/apps/*/; do
		dir=${dir%/}
		printf '%s ' "${dir##*/}"
	done
}
[[ $# -gt 0 ]] || set -- "${APPS[@]}"

# The app's pinned requirements as wheels, downloaded on the host (its pip configuration, proxy
# and CA apply) into a cache keyed by the requirements file. Prints the directory.
wheelhouse() {
	local requirements=$REPO_ROOT/apps/$1/requirements.txt dir pip
	dir=$IMAGE_CACHE/wheels/$(content_hash "apps/$1/requirements.txt")
	if [[ ! -e $dir/.complete ]]; then
		pip=$REPO_ROOT/.venv/bin/pip
		[[ -x $pip ]] || pip="python3 -m pip"
		info "downloading the wheels of apps/$1/requirements.txt"
		rm -rf "$dir" && mkdir -p "$dir"
		$pip download --quiet --disable-pip-version-check --only-binary=:all: --dest "$dir" -r "$requirements" >&2 ||
			die "pip could not download the wheels of $requirements (is PyPI reachable?)"
		touch "$dir/.complete"
	fi
	echo "$dir"
}

containerfile=$REPO_ROOT/apps/Containerfile
base=$("$REPO_ROOT/images/base.sh")
for app in "$@"; do
	[[ -f $REPO_ROOT/apps/$app/$app.py && -f $REPO_ROOT/apps/$app/requirements.txt ]] ||
		die "no app $app: expected apps/$app/$app.py and apps/$app/requirements.txt (apps: $(app_dirs))"
	ref=$IMAGE_PREFIX/$app:$(content_hash "apps/$app" apps/common apps/Containerfile "$base")
	if ! image_exists "$ref"; then
		info "building $ref from apps/Containerfile (APP=$app) on $base"
		start=$SECONDS
		wheels=$(wheelhouse "$app")
		# The build itself is offline: pip installs from the wheelhouse, the container has no network.
		bah bud --quiet --layers --network none --pull-never --build-arg "BASE_IMAGE=$base" --build-arg "APP=$app" \
			--volume "$wheels:/wheels:ro" --build-arg "PIP_INSTALL_OPTIONS=--no-index --find-links=/wheels" \
			--file "$containerfile" --tag "$ref" "$REPO_ROOT/apps" >/dev/null
		info "built $ref in $((SECONDS - start))s"
	fi
	echo "$ref"
done
