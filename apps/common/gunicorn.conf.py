"""gunicorn's settings for every app: the app of the current directory (serve.py passes this file).

`cd apps/<app> && python3 ../common/serve.py` serves <app>.py's `application`. Every setting
comes from the environment (docs/apps.md). Choices:
- gthread workers (worker.py): the proxy waits on its upstream and /delay sleeps; a sync worker
  would block on either, and sync workers close every connection, so a proxy in front of them
  would pay a new TCP connection per request.
- keep-alive longer than Envoy's default idle timeout (1 h): the side that closes an idle
  connection first must be the mesh, or a request racing the close gets a 503.
- graceful shutdown: SIGTERM stops accepting, in-flight requests finish (GUNICORN_GRACEFUL_TIMEOUT).
- read-only root filesystem: worker heartbeat files in /dev/shm, or the first writable one of
  GUNICORN_WORKER_TMP_DIR, /dev/shm, $TMPDIR, /tmp (none: the start stops and says so); no
  control socket file.
"""

import ipaddress
import re
import socket
import tempfile
from pathlib import Path

from settings import SettingError, env, env_choice, env_int
from worker import GuardedThreadWorker, JsonAccessLogger


def bind_address(raw):
    """BIND_ADDRESS as gunicorn's "host" part: an IP address of this machine (IPv6 bracketed)."""
    host = raw.removeprefix("[").removesuffix("]")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        if not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", host):
            raise SettingError(
                "BIND_ADDRESS",
                raw,
                "expected an IP address of this host (e.g. 0.0.0.0, 127.0.0.1, ::) or a host name",
            ) from None
        family = socket.AF_UNSPEC
    try:  # can it be bound at all? (port 0: says nothing about PORT being free)
        info = socket.getaddrinfo(host, 0, family, socket.SOCK_STREAM)[0]
        with socket.socket(info[0], socket.SOCK_STREAM) as probe:
            probe.bind(info[4])
    except OSError as error:
        raise SettingError(
            "BIND_ADDRESS",
            raw,
            f"cannot listen on it ({error.strerror or error}); expected an address of this "
            "host, e.g. 0.0.0.0 or 127.0.0.1",
        ) from None
    return f"[{host}]" if family == socket.AF_INET6 else host


def worker_tmp_directory():
    """Where gunicorn's workers keep their heartbeat files: a directory we can create files in."""
    chosen = env("GUNICORN_WORKER_TMP_DIR")
    problems = []
    candidates = [chosen] if chosen else ["/dev/shm"]  # noqa: S108
    if not chosen:
        try:
            candidates.append(tempfile.gettempdir())  # $TMPDIR, /tmp, ..., the first writable
        except OSError as error:  # none is
            problems.append(str(error))
    for directory in candidates:
        try:
            with tempfile.TemporaryFile(dir=directory):
                return directory
        except OSError as error:
            problems.append(f"{directory}: {error.strerror or error}")
    what = f"GUNICORN_WORKER_TMP_DIR={chosen!r}" if chosen else "no writable directory"
    raise SystemExit(
        f"{what}: gunicorn needs a writable directory for its worker heartbeat files "
        f"({'; '.join(problems)}); mount a writable emptyDir (e.g. medium: Memory at /dev/shm) "
        "or set GUNICORN_WORKER_TMP_DIR to a writable directory"
    )


APP = Path.cwd().name
wsgi_app = f"{APP}:application"
bind = f"{bind_address(env('BIND_ADDRESS', '127.0.0.1'))}:{env_int('PORT', 3030, 1, 65535)}"
# workers: WEB_CONCURRENCY, read by serve.py (before gunicorn is imported) and passed as --workers
worker_class = GuardedThreadWorker
# The proxy's threads spend most of their time waiting for the upstream: one per concurrent
# client connection keeps requests from queueing behind them (the GIL is free while they wait).
threads = env_int("GUNICORN_THREADS", 32 if APP == "proxy" else 8, 1, 1024)
keepalive = env_int("GUNICORN_KEEPALIVE", 3700, 1, 86400)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, 0, 3600)
# Import the app in the master: a bad setting fails the start once, with its message.
preload_app = True
worker_tmp_dir = worker_tmp_directory()
control_socket_disable = True
# Nobody may set the URL scheme or SCRIPT_NAME/PATH_INFO through X-Forwarded-* style headers
# (gunicorn trusts 127.0.0.1 by default; the apps build no URLs from them).
forwarded_allow_ips = ""
logger_class = JsonAccessLogger
accesslog = "-" if env_choice("ACCESS_LOG", ("on", "off"), "on") == "on" else None
errorlog = "-"
