#!/usr/bin/env bash
# Pushes the app images to a registry, and runs one on this machine to push to (docs/own-cluster.md,
# "A registry of your own").
#   registry.sh push REGISTRY   push the app images of the last `make images` (.cluster/images.yml)
#                               to REGISTRY/<app>:<tag> (REGISTRY is host[:port][/path], e.g.
#                               registry.example.com/team; log in first with `buildah login HOST`),
#                               then print them, by tag and digest, as the inventory takes them
#   registry.sh start           the local registry: Debian's docker-registry (the CNCF distribution
#                               registry) on 127.0.0.1:$REGISTRY_PORT (default 5443), TLS from a CA
#                               of its own, htpasswd (bcrypt) auth with generated credentials; its
#                               CA installed for the real node's containerd (REGISTRY_HOSTS_DIR)
#   registry.sh stop            stop it (its images, CA and credentials are kept)
#   registry.sh clean           stop it and remove its state and the node's trust of its CA
#   registry.sh address         print host:port of the local registry
# The local registry's state is git-ignored, under .cluster/registry/: the CA and server
# certificate (pki/), the credentials (credentials: user name, then password; mode 0600), its
# htpasswd, config, log and images (data/). Pushing to it needs no login: push uses those.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cluster/node-real/env.sh
. "$CLUSTER_DIR/node-real/env.sh"
# shellcheck source=cluster/pki.sh
. "$CLUSTER_DIR/pki.sh"

REGISTRY_DIR=$REPO_ROOT/.cluster/registry
REGISTRY_PORT=${REGISTRY_PORT:-5443}
LOCAL_REGISTRY=127.0.0.1:$REGISTRY_PORT
CREDENTIALS=$REGISTRY_DIR/credentials
VARS_FILE=$REPO_ROOT/.cluster/images.yml
# The registry is no part of the cluster: its own process marker, pid file and log (lib.sh's
# start_process, component_pid), so `make cluster-down` leaves it running.
PROCESS_MARKER="MESH_PLAYGROUND_REGISTRY_DIR=$REGISTRY_DIR"
RUN_DIR=$REGISTRY_DIR
LOG_DIR=$REGISTRY_DIR
PKI_DIR=$REGISTRY_DIR/pki

usage() { die "usage: registry.sh push REGISTRY | start | stop | clean | address"; }

# ---------------------------------------------------------------- the local registry
registry_pki() {
	mkdir -p "$PKI_DIR"
	if [[ ! -s $PKI_DIR/ca.crt ]]; then
		pki_new_key "$PKI_DIR/ca.key"
		openssl req -x509 -new -key "$PKI_DIR/ca.key" -days 3650 -subj "/CN=mesh-playground-registry-ca" \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
			-out "$PKI_DIR/ca.crt" 2>/dev/null || die "openssl could not make the registry's CA"
	fi
	pki_issue registry /CN=127.0.0.1 server IP:127.0.0.1,DNS:localhost
}

registry_credentials() {
	if [[ ! -s $CREDENTIALS ]]; then
		(umask 077 && printf 'mesh-playground\n%s\n' "$(openssl rand -hex 16)" >"$CREDENTIALS.tmp")
		mv "$CREDENTIALS.tmp" "$CREDENTIALS"
	fi
	local user password
	{
		read -r user
		read -r password
	} <"$CREDENTIALS"
	# bcrypt, the only hash the registry accepts; the password on stdin, never in a command line.
	(umask 077 && htpasswd -B -i -c "$REGISTRY_DIR/htpasswd" "$user" <<<"$password" 2>/dev/null) ||
		die "htpasswd could not write $REGISTRY_DIR/htpasswd"
}

# containerd reads <host:port>/hosts.toml of its registry.config_path at each pull.
trust_for_node() {
	local dir=$REGISTRY_HOSTS_DIR/$LOCAL_REGISTRY
	mkdir -p "$dir"
	cp "$PKI_DIR/ca.crt" "$dir/ca.crt"
	cat >"$dir/hosts.toml" <<-TOML
		# Written by images/registry.sh start: the local registry, trusted through its own CA.
		server = "https://$LOCAL_REGISTRY"
		[host."https://$LOCAL_REGISTRY"]
		  capabilities = ["pull", "resolve"]
		  ca = "$dir/ca.crt"
	TOML
	if ! grep -qs "config_path = \"$REGISTRY_HOSTS_DIR\"" "$NODE_DIR/containerd.toml"; then
		info "the real node's containerd does not read $REGISTRY_HOSTS_DIR yet: it pulls from $LOCAL_REGISTRY after its next start (make cluster-down, then make cluster-up CLUSTER_NODE_MODE=real)"
	fi
}

registry_start() {
	[[ $(id -u) == 0 ]] || die "the local registry trusts its CA for the real node's containerd, which needs root"
	"$REPO_ROOT/cluster/node-real/install-packages.sh" docker-registry apache2-utils
	mkdir -p "$REGISTRY_DIR/data"
	registry_pki
	registry_credentials
	if [[ -n $(component_pid registry) ]]; then
		info "the local registry already runs at $LOCAL_REGISTRY"
	else
		require_free_port "$REGISTRY_PORT" "the local registry (REGISTRY_PORT)"
		cat >"$REGISTRY_DIR/config.yml" <<-YAML
			# Written by images/registry.sh start.
			version: 0.1
			log: {level: info, fields: {service: registry}}
			storage:
			  filesystem: {rootdirectory: $REGISTRY_DIR/data}
			  delete: {enabled: true}
			http:
			  addr: $LOCAL_REGISTRY
			  tls: {certificate: $PKI_DIR/registry.crt, key: $PKI_DIR/registry.key}
			  headers: {X-Content-Type-Options: [nosniff]}
			auth:
			  htpasswd: {realm: mesh-playground, path: $REGISTRY_DIR/htpasswd}
		YAML
		start_process registry docker-registry serve "$REGISTRY_DIR/config.yml"
		# Any answer of /v2/ (401 without credentials) means it serves.
		wait_until registry 30 "the registry's API" curl -s --cacert "$PKI_DIR/ca.crt" -o /dev/null "https://$LOCAL_REGISTRY/v2/"
	fi
	trust_for_node
	info "the local registry runs at $LOCAL_REGISTRY (TLS, CA $PKI_DIR/ca.crt; user and password in $CREDENTIALS)"
	info "push the app images to it: make images-push REGISTRY=$LOCAL_REGISTRY/mesh-playground"
}

registry_stop() {
	local pid
	pid=$(component_pid registry)
	if [[ -n $pid ]]; then
		info "stopping the local registry (pid $pid)"
		stop_pid "$pid" 10
	fi
	rm -f "$(pid_file registry)"
}

# ---------------------------------------------------------------- push
# The app images of the last `make images`: "app ref" lines from .cluster/images.yml.
built_apps() {
	[[ -s $VARS_FILE ]] || die "no $VARS_FILE: build the images first (make images)"
	sed -n '/^app_workloads_images:/,/^[^ ]/s/^  \([a-z0-9-]*\): "\{0,1\}\([^"]*\)"\{0,1\}$/\1 \2/p' "$VARS_FILE"
}

registry_push() {
	local registry=${1:-} host app ref target digest_file
	[[ $registry =~ ^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$ ]] ||
		die "REGISTRY='$registry': use host[:port][/path] in lower case, e.g. registry.example.com/team or $LOCAL_REGISTRY/mesh-playground"
	[[ $(id -u) == 0 ]] || die "the images are in root's buildah store (make images): push as root"
	host=${registry%%/*}
	local args=()
	if [[ $host == "$LOCAL_REGISTRY" || $host == "localhost:$REGISTRY_PORT" ]]; then
		[[ -s $CREDENTIALS ]] || die "the local registry has no credentials yet: make registry-up"
		local user password
		{
			read -r user
			read -r password
		} <"$CREDENTIALS"
		# A directory holding the CA only (buildah takes every *.crt of it).
		mkdir -p "$REGISTRY_DIR/ca"
		cp "$PKI_DIR/ca.crt" "$REGISTRY_DIR/ca/ca.crt"
		args=(--cert-dir "$REGISTRY_DIR/ca" --creds "$user:$password")
	fi
	digest_file=$(mktemp)
	trap 'rm -f "$digest_file"' RETURN
	echo "# make images-push REGISTRY=$registry: the app images by tag and digest, for an inventory"
	echo "app_workloads_images:"
	while read -r app ref; do
		image_exists "$ref" || die "$ref (from $VARS_FILE) is not in the buildah store: make images"
		target=$registry/$app:${ref##*:}
		info "pushing $ref to $target"
		bah push --quiet "${args[@]}" --digestfile "$digest_file" "$ref" "docker://$target" >&2 ||
			die "pushing $ref to $target failed (buildah says why above; a registry that wants a login: buildah login $host)"
		echo "  $app: \"$target@$(cat "$digest_file")\""
	done < <(built_apps)
}

case ${1:-} in
push) registry_push "${2:-}" ;;
start) registry_start ;;
stop) registry_stop ;;
clean)
	registry_stop
	rm -rf "$REGISTRY_DIR" "${REGISTRY_HOSTS_DIR:?}/$LOCAL_REGISTRY"
	info "removed the local registry's state and the node's trust of $LOCAL_REGISTRY"
	;;
address) echo "$LOCAL_REGISTRY" ;;
*) usage ;;
esac
