#!/usr/bin/env bash
# `make serve`: the webserver on 127.0.0.1:3031 and the proxy on 127.0.0.1:3030 in front of it,
# served by gunicorn from the local venv, until Ctrl-C (both stop gracefully).
# Any app setting can be given in the environment (see the README's configuration table), e.g.
#   SERVERCONTENT="WebServer V1" APP_VERSION=v1 make serve
set -euo pipefail
apps=$(cd "$(dirname "$0")" && pwd)
WEB_PORT=${WEB_PORT:-3031}
PROXY_PORT=${PROXY_PORT:-3030}

pids=()
stop() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait
}
trap stop INT TERM EXIT

(cd "$apps/webserver" && PORT=$WEB_PORT exec gunicorn) &
pids+=($!)
(cd "$apps/proxy" && PORT=$PROXY_PORT PROXYURL=${PROXYURL:-http://127.0.0.1:$WEB_PORT} exec gunicorn) &
pids+=($!)

for _ in $(seq 100); do
	if curl -fsS "http://127.0.0.1:$PROXY_PORT/readyz" >/dev/null 2>&1 &&
		curl -fsS "http://127.0.0.1:$WEB_PORT/readyz" >/dev/null 2>&1; then
		echo ">> serving: proxy http://127.0.0.1:$PROXY_PORT/ -> webserver http://127.0.0.1:$WEB_PORT/ (Ctrl-C stops)"
		echo ">> try: curl http://127.0.0.1:$PROXY_PORT/   curl http://127.0.0.1:$PROXY_PORT/failsometimes"
		break
	fi
	for pid in "${pids[@]}"; do
		kill -0 "$pid" 2>/dev/null || {
			echo "error: an app did not start (see its log above)" >&2
			exit 1
		}
	done
	sleep 0.1
done
wait -n
