#!/usr/bin/env bash
# Builds the local base image (Debian bookworm minbase + Python 3 from Debian's packages), a
# stand-in for python:3.11-slim: `python`, `pip` usable without a venv, CA certificates.
# `base.sh jre` builds the same with Debian's Java 17 runtime added (the Zipkin server's).
# Cached: rebuilt only when this script changes. Prints the image reference.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root

PACKAGES=python3,python3-pip,python-is-python3,ca-certificates
case ${1:-base} in
base) name=base ;;
jre) name=jre PACKAGES+=,openjdk-17-jre-headless ;;
*) die "usage: base.sh [jre]" ;;
esac
tag=$(content_hash images/base.sh "$DEBIAN_SUITE" "$PACKAGES")
ref=$IMAGE_PREFIX/$name:$tag
if image_exists "$ref"; then
	echo "$ref"
	exit 0
fi

rootfs=$IMAGE_CACHE/base-rootfs.$$
trap 'rm -rf "$rootfs"' EXIT
info "debootstrap $DEBIAN_SUITE (minbase + $PACKAGES) from $DEBIAN_MIRROR, a few minutes"
debootstrap --variant=minbase --include="$PACKAGES" "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" |
	grep -E '^I: (Retrieving|Extracting|Installing core|Configuring|Base system)' | grep -vE 'Retrieving (Release|InRelease)' |
	awk 'NR % 20 == 1 || /Base system/' >&2
# Like the official Python images: pip installs into the system interpreter of the container.
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
# Trim what a runtime image does not need.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
	"$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/* "$rootfs"/tmp/*

info "committing $ref"
ctr=$(bah from scratch)
mnt=$(bah mount "$ctr")
tar -C "$rootfs" -c . | tar -C "$mnt" -x
bah umount "$ctr" >/dev/null
bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--env LANG=C.UTF-8 --env PYTHONUNBUFFERED=1 --cmd python3 \
	--label org.opencontainers.image.description="mesh-playground $name: Debian $DEBIAN_SUITE minbase + ${PACKAGES//,/ }" "$ctr"
bah commit --quiet --rm "$ctr" "$ref" >/dev/null
echo "$ref"
