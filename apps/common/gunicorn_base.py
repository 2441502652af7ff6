"""Gunicorn settings shared by both apps (each app's gunicorn.conf.py imports them).

Every setting comes from the environment (see the README's configuration table). Choices:
- gthread workers: the proxy waits on its upstream and /delay sleeps; a sync worker would block
  on either, and sync workers close every connection, so a proxy in front of them would pay a
  new TCP connection per request.
- keep-alive longer than Envoy's default idle timeout (1 h): the side that closes an idle
  connection first must be the mesh, or a request racing the close gets a 503.
- graceful shutdown: SIGTERM stops accepting, in-flight requests finish (GUNICORN_GRACEFUL_TIMEOUT).
- read-only root filesystem: worker heartbeat files in /dev/shm, no control socket file.
- access log: one JSON object per line, built with json.dumps (a JSON access_log_format
  string would only escape '"', not backslashes or control characters).
"""

import json
import os
import sys
import time

import gunicorn.util
from gunicorn.glogging import Logger


def env_int(name, default, low=1, high=1_000_000):
    """An integer setting from the environment, refused with a clear message when invalid."""
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise SystemExit(f"{name}={raw!r}: expected an integer from {low} to {high}")
    return value


class JsonAccessLogger(Logger):
    """Gunicorn's logger, with access log lines as JSON objects (one per line).

    To stdout (the default) a line is one os.write: no logging-module work per request, and
    lines from threads and workers never mix: a pipe write of up to 4 KiB is atomic, and the
    free-text fields are cut so that a line stays below that even if every character had to
    be escaped (json.dumps writes non-ASCII as \\uXXXX; gunicorn refuses control characters).
    """

    def setup(self, cfg):
        super().setup(cfg)
        plain_stdout = cfg.accesslog == "-" and not (
            cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json or cfg.syslog
        )
        self._access_fd = sys.stdout.fileno() if plain_stdout else None

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        status = resp.status
        request_id = environ.get("HTTP_X_REQUEST_ID")
        user_agent = environ.get("HTTP_USER_AGENT")
        line = json.dumps(
            {
                "time": _utc_now(),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "method": environ.get("REQUEST_METHOD"),
                "target": environ.get("RAW_URI", "")[:400],
                "status": int(status[:3]) if isinstance(status, str) else status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "x_request_id": request_id[:100] if request_id else request_id,
                "user_agent": user_agent[:100] if user_agent else user_agent,
            }
        )
        if self._access_fd is None:
            # A message without arguments is never %-formatted by logging: the JSON stays intact.
            self.access_log.info(line)
        else:
            os.write(self._access_fd, line.encode() + b"\n")


def write_plain_error(sock, status_int, reason, mesg):
    """gunicorn's own answers (a malformed request, an app crash) as text/plain + nosniff.

    gunicorn writes them as text/html through gunicorn.util.write_error; replacing that one
    function (below) keeps the apps' rule for every response, whoever writes it.
    """
    body = (f"{reason}: {mesg}" if mesg else reason).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = write_plain_error

_second = (0, "")  # (a second since the epoch, its ISO 8601 form): formatted once a second


def _utc_now():
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-25T15:16:27.042Z."""
    global _second
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second[1]}.{int((now - second) * 1000):03d}Z"


bind = f"{os.environ.get('BIND_ADDRESS', '127.0.0.1')}:{env_int('PORT', 3030, 1, 65535)}"
worker_class = "gthread"
workers = env_int("WEB_CONCURRENCY", 2)
threads = env_int("GUNICORN_THREADS", 8)
keepalive = env_int("GUNICORN_KEEPALIVE", 3700)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Import the app in the master: a bad setting fails the start once, with its message.
preload_app = True
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
control_socket_disable = True
# Nobody may set the URL scheme or SCRIPT_NAME/PATH_INFO through X-Forwarded-* style headers
# (gunicorn trusts 127.0.0.1 by default; the apps build no URLs from them).
forwarded_allow_ips = ""
logger_class = JsonAccessLogger
accesslog = None if os.environ.get("ACCESS_LOG", "on") == "off" else "-"
errorlog = "-"
