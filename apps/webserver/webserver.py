"""The webserver of "Exploring Istio by example", as a WSGI app (standard library only).

Every answer has the seed's body, byte for byte:
    <content> requested from <path> on <hostname> with code <status>
Beyond the seed, for exploring a mesh: /healthz and /readyz (probes), /status/<code> and a
bounded /delay/<seconds> (fault demos), and the version it runs as in the X-App-Version header.
Configuration (environment, read once at start): see the README's configuration table.
"""

import math
import os
import random
import socket
import threading
import time
from http import HTTPStatus
from urllib.parse import urlsplit


def _env_float(name, default, low, high):
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan
        raise SystemExit(f"{name}={raw!r}: expected a number from {low} to {high}")
    return value


def _env_int(name):
    raw = os.environ.get(name, "")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: expected an integer") from None


# SERVERCONTNET is the seed's own (misspelt) name: both are accepted, the correct one wins.
CONTENT = os.environ.get("SERVERCONTENT") or os.environ.get("SERVERCONTNET") or "Hello world"
HOSTNAME = socket.gethostname()
FAIL_RATE = _env_float("FAIL_RATE", 1 / 3, 0.0, 1.0)
DELAY_MAX_SECONDS = _env_float("DELAY_MAX_SECONDS", 30.0, 0.0, 3600.0)
APP_VERSION = os.environ.get("APP_VERSION", "")

# With FAIL_SEED, each worker process draws the same reproducible sequence (one worker gives
# one sequence for a whole run); without it, failures are truly random like the seed's.
_fail_seed = _env_int("FAIL_SEED")
_rng = random.Random(_fail_seed)  # noqa: S311 (a demo fault, not a secret)
_rng_lock = threading.Lock()

_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}
# Codes /status/<code> may answer: the seed's body must be allowed, so no 1xx, 204, 205, 304.
_NO_BODY = {204, 205, 304}

_BASE_HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("X-Content-Type-Options", "nosniff"),
]
if APP_VERSION:
    _BASE_HEADERS.append(("X-App-Version", APP_VERSION))


def _respond(start_response, code, text):
    body = text.encode()
    status = _STATUS_LINES.get(code) or f"{code} Unassigned"
    start_response(status, [*_BASE_HEADERS, ("Content-Length", str(len(body)))])
    return [body]


def request_path(environ):
    """The path as the seed reports it: Node's url.parse(request.url).pathname.

    That is the raw (still percent-encoded) path of the request target without its query,
    whereas WSGI's PATH_INFO is decoded; gunicorn keeps the raw target in RAW_URI.
    """
    raw = environ.get("RAW_URI") or environ.get("PATH_INFO") or "/"
    if raw.startswith("/"):
        return raw.partition("?")[0].partition("#")[0]
    return urlsplit(raw).path or "/"  # absolute-form target, e.g. "http://host/x"


def _seed_body(path, code):
    return f"{CONTENT} requested from {path} on {HOSTNAME} with code {code}"


def _fails():
    if FAIL_RATE <= 0.0:
        return False
    with _rng_lock:
        return _rng.random() < FAIL_RATE


def application(environ, start_response):
    path = request_path(environ)
    if path == "/healthz" or path == "/readyz":
        return _respond(start_response, 200, "ok")
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
    return _respond(start_response, code, _seed_body(path, code))
