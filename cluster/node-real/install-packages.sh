#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are not installed yet (the real node and
# the image builds use Debian's containerd, runc, CNI plugins, iptables, buildah, debootstrap).
# Usage: install-packages.sh PACKAGE...
set -euo pipefail
# shellcheck source=cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
missing=()
for pkg in "$@"; do
	dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	die "these Debian packages are needed: ${missing[*]}; as root: apt-get install ${missing[*]}"
fi
info "installing Debian packages: ${missing[*]}"
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
# A fresh machine may have no package lists yet: update once, then retry.
install 2>/dev/null || { apt-get update -qq && install; } ||
	die "apt-get could not install ${missing[*]} (see above)"
