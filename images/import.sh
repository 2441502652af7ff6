#!/usr/bin/env bash
# Imports images from the buildah store into the node's containerd (namespace k8s.io), unless
# containerd already has them. Usage: import.sh CONTAINERD_SOCKET IMAGE_REF...
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root
socket=${1:?usage: import.sh CONTAINERD_SOCKET IMAGE_REF...}
shift
ctr_k8s() { ctr --address "$socket" --namespace k8s.io "$@"; }
if ! [[ -S $socket ]] || ! ctr_k8s version >/dev/null 2>&1; then
	die "containerd is not answering on $socket (is the real node up? make cluster-up with CLUSTER_NODE_MODE=real)"
fi

for ref in "$@"; do
	if ctr_k8s images check "name==$ref" 2>/dev/null | grep -q complete; then
		continue
	fi
	archive=$IMAGE_CACHE/archives/${ref//[\/:]/_}.tar
	if [[ ! -s $archive ]]; then
		mkdir -p "$(dirname "$archive")"
		bah push --quiet "$ref" "docker-archive:$archive.tmp:$ref" >/dev/null
		mv "$archive.tmp" "$archive"
	fi
	info "importing $ref into containerd"
	ctr_k8s images import --snapshotter overlayfs "$archive" >/dev/null
	# kubelet must never try to pull (nothing can be pulled here); verify the name landed.
	ctr_k8s images check "name==$ref" | grep -q complete || die "import of $ref into containerd did not produce $ref"
done
