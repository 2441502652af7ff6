"""The webserver of "Exploring Istio by example", as a WSGI app (standard library only).

Every answer has the seed's body, byte for byte:
    <content> requested from <path> on <hostname> with code <status>
Beyond the seed, for exploring a mesh: /healthz and /readyz (probes), /status/<code> and a
bounded /delay/<seconds> (fault demos), a pod made slow on purpose (RESPONSE_DELAY_SECONDS, for
load balancing demos), and the version it runs as in the X-App-Version header.
Configuration (environment, read once at start): see ../../docs/apps.md.
"""

import math
import random
import socket
import threading
import time
from http import HTTPStatus
from urllib.parse import urlsplit

from settings import env_float, env_match, env_text

# SERVERCONTNET is the seed's own (misspelt) name: both are accepted, the correct one wins.
CONTENT = env_text("SERVERCONTENT", "SERVERCONTNET", default="Hello world")
HOSTNAME = socket.gethostname()
FAIL_RATE = env_float("FAIL_RATE", 1 / 3, 0.0, 1.0)
DELAY_MAX_SECONDS = env_float("DELAY_MAX_SECONDS", 30.0, 0.0, 3600.0)
# Every answer but the probes' waits this long first: one slow pod among fast ones.
RESPONSE_DELAY_SECONDS = env_float("RESPONSE_DELAY_SECONDS", 0.0, 0.0, 60.0)
# Sent as a header: a Kubernetes-label-like token only, never anything a header could not carry.
APP_VERSION = env_match(
    "APP_VERSION",
    r"[A-Za-z0-9][A-Za-z0-9._+-]{0,62}",
    "a version like v1 or 1.2.3 (letters, digits, '.', '_', '+', '-'; at most 63 characters)",
)
FAIL_SEED = env_match("FAIL_SEED", r"-?[0-9]{1,18}", "a whole number, e.g. 42")


def application(environ, start_response):
    path = request_path(environ)
    if path == "/healthz" or path == "/readyz":
        return _respond(start_response, 200, "ok")
    if RESPONSE_DELAY_SECONDS:
        time.sleep(RESPONSE_DELAY_SECONDS)  # the slow pod being demonstrated
    code = 200
    if path == "/failsometimes":
        if _fails():
            code = 500
    elif path.startswith("/status/"):
        value = path[len("/status/") :]
        if not (value.isascii() and value.isdigit() and 200 <= int(value) <= 599):
            return _respond(start_response, 400, "status code must be 200-599, e.g. /status/503")
        code = int(value)
        if code in _NO_BODY:
            return _respond(start_response, 400, f"status {code} cannot carry the body")
    elif path.startswith("/delay/"):
        value = path[len("/delay/") :]
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not 0.0 <= seconds <= DELAY_MAX_SECONDS:
            return _respond(
                start_response,
                400,
                f"delay must be 0-{DELAY_MAX_SECONDS:g} seconds (DELAY_MAX_SECONDS), "
                "e.g. /delay/1.5",
            )
        time.sleep(seconds)  # the fault being demonstrated, not synchronisation
    body = f"{CONTENT} requested from {path} on {HOSTNAME} with code {code}"  # the seed's
    return _respond(start_response, code, body)


def request_path(environ):
    """The path as the seed reports it: Node's url.parse(request.url).pathname.

    That is the raw (still percent-encoded) path of the request target without its query,
    whereas WSGI's PATH_INFO is decoded; gunicorn keeps the raw target in RAW_URI.
    """
    raw = environ.get("RAW_URI") or environ.get("PATH_INFO") or "/"
    if raw.startswith("/"):
        return raw.partition("?")[0].partition("#")[0]
    try:
        return urlsplit(raw).path or "/"  # absolute-form target, e.g. "http://host/x"
    except ValueError:  # e.g. "http://[::1/x": no 500 for a malformed target
        return environ.get("PATH_INFO") or "/"


_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}
# Codes /status/<code> may answer: the seed's body must be allowed, so no 1xx, 204, 205, 304.
_NO_BODY = {204, 205, 304}
_HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]
if APP_VERSION:
    _HEADERS.append(("X-App-Version", APP_VERSION))


def _respond(start_response, code, text):
    body = text.encode()
    status = _STATUS_LINES.get(code) or f"{code} Unassigned"
    start_response(status, [*_HEADERS, ("Content-Length", str(len(body)))])
    return [body]


# With FAIL_SEED, every worker process draws the same reproducible sequence (one worker gives
# one sequence for a whole run). Without it, failures are truly random like the seed's, and
# independent per worker: the app is imported before gunicorn forks, so a seeded-at-import
# generator would be copied into every worker; SystemRandom has no state to copy.
_rng = random.Random(int(FAIL_SEED)) if FAIL_SEED else random.SystemRandom()  # noqa: S311
_rng_lock = threading.Lock()


def _fails():
    if FAIL_RATE <= 0.0:
        return False
    with _rng_lock:
        return _rng.random() < FAIL_RATE
