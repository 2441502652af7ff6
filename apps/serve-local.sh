#!/usr/bin/env bash
# `make serve`: the webserver on 127.0.0.1:3031 and the proxy on 127.0.0.1:3030 in front of it,
# served by gunicorn from the local venv, until Ctrl-C (both stop gracefully).
# Any app setting can be given in the environment (see the README's configuration table), e.g.
#   SERVERCONTENT="WebServer V1" APP_VERSION=v1 make serve
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"
apps=$REPO_ROOT/apps
WEB_PORT=${WEB_PORT:-3031}
PROXY_PORT=${PROXY_PORT:-3030}

pids=()
stop() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait
}
trap stop INT TERM EXIT

(cd "$apps/webserver" && PORT=$WEB_PORT exec python3 ../common/serve.py) &
pids+=($!)
(cd "$apps/proxy" && PORT=$PROXY_PORT PROXYURL=${PROXYURL:-http://127.0.0.1:$WEB_PORT} exec python3 ../common/serve.py) &
pids+=($!)

# What wait_until (cluster/lib.sh) checks while it waits: both apps still run (their logs go to
# this terminal).
process_alive() {
	local pid
	for pid in "${pids[@]}"; do pid_alive "$pid" || return 1; done
}
both_ready() {
	curl -fsS "http://127.0.0.1:$PROXY_PORT/readyz" && curl -fsS "http://127.0.0.1:$WEB_PORT/readyz"
}
wait_until "an app" 30 "both apps answering /readyz" both_ready
echo ">> serving: proxy http://127.0.0.1:$PROXY_PORT/ -> webserver http://127.0.0.1:$WEB_PORT/ (Ctrl-C stops)"
echo ">> try: curl http://127.0.0.1:$PROXY_PORT/   curl http://127.0.0.1:$PROXY_PORT/failsometimes"
wait -n
