#!/usr/bin/env bash
# Builds the app images from the project's own Containerfiles (apps/<app>/Containerfile, build
# context apps/) on the local base image. The tag is a content hash of the app, the shared
# code and the base, so an image is rebuilt only when one of them changes.
# Usage: apps.sh APP...   Prints one image reference per app.
source "$(dirname "$0")/lib.sh"
require_root
[[ $# -gt 0 ]] || die "usage: apps.sh APP... (apps: $(cd "$REPO_ROOT/apps" && ls -d */ | tr -d / | tr '\n' ' '))"

base=$("$REPO_ROOT/images/base.sh")
for app in "$@"; do
  containerfile=$REPO_ROOT/apps/$app/Containerfile
  [[ -f $containerfile ]] || die "no $containerfile: each app brings its own Containerfile (ARG BASE_IMAGE)"
  ref=$IMAGE_PREFIX/$app:$(content_hash "apps/$app" apps/common "$base")
  if ! image_exists "$ref"; then
    log "building $ref from apps/$app/Containerfile on $base"
    start=$SECONDS
    # Host network for the build only: RUN steps reach PyPI without a build bridge and NAT
    # rules. The host's CA bundle is mounted for the build (never stored in a layer), so a
    # machine behind a TLS-inspecting proxy builds too.
    bah bud --quiet --layers --network host --pull-never --build-arg "BASE_IMAGE=$base" \
      --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
      --file "$containerfile" --tag "$ref" "$REPO_ROOT/apps" >/dev/null
    log "built $ref in $((SECONDS - start))s"
  fi
  echo "$ref"
done
