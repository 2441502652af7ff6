#!/usr/bin/env bash
# Builds the pod sandbox ("pause") image: our own static C binary in a FROM-scratch image.
# Cached: rebuilt only when the source or this script changes. Prints the image reference.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root

tag=$(content_hash images/pause images/pause.sh)
ref=$IMAGE_PREFIX/pause:$tag
if image_exists "$ref"; then
	echo "$ref"
	exit 0
fi
command -v gcc >/dev/null || die "gcc is needed to build the pause binary: apt-get install gcc libc6-dev"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -Os -static -s -Wall -Werror -o "$work/pause" "$REPO_ROOT/images/pause/pause.c"

ctr=$(bah from scratch)
bah copy --chmod 0755 "$ctr" "$work/pause" /pause >/dev/null
bah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
bah commit --quiet --rm "$ctr" "$ref" >/dev/null
echo "$ref"
