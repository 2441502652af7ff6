"""The webserver of "Exploring Istio by example", as a WSGI app (standard library only).

Every answer has the seed's body, byte for byte:
    <content> requested from <path> on <hostname> with code <status>
Beyond the seed, for exploring a mesh: /healthz and /readyz (probes), /status/<code> and a
bounded /delay/<seconds> (fault demos), and the version it runs as in the X-App-Version header.
Configuration (environment, read once at start): see ../../docs/apps.md.
"""

import math
import os
import random
import re
import socket
import threading
import time
from http import HTTPStatus
from urllib.parse import urlsplit


def _env_float(name, default, low, high):
    raw = os.environ.get(name, "")
    if not raw:
        return default
    value = float(raw) if re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,9})?", raw) else math.nan
    if not low <= value <= high:  # also refuses nan
        raise SystemExit(f"{name}={raw!r}: expected a decimal number from {low:g} to {high:g}")
    return value


def _env_text(*names, default, limit=4096):
    """The first set of `names`: UTF-8 text (it goes into a text/plain; charset=utf-8 body)."""
    for name in names:
        raw = os.environ.get(name)
        if not raw:
            continue
        try:
            size = len(raw.encode())  # undecodable bytes come as surrogates: refused here
        except UnicodeEncodeError:
            size = -1
        if not 0 < size <= limit or any(c < " " and c not in "\t\n" for c in raw):
            raise SystemExit(
                f"{name}={raw!r}: expected UTF-8 text of at most {limit} bytes, "
                "without control characters"
            )
        return raw
    return default


# SERVERCONTNET is the seed's own (misspelt) name: both are accepted, the correct one wins.
CONTENT = _env_text("SERVERCONTENT", "SERVERCONTNET", default="Hello world")
HOSTNAME = socket.gethostname()
FAIL_RATE = _env_float("FAIL_RATE", 1 / 3, 0.0, 1.0)
DELAY_MAX_SECONDS = _env_float("DELAY_MAX_SECONDS", 30.0, 0.0, 3600.0)
# Sent as a header: a Kubernetes-label-like token only, never anything a header could not carry.
APP_VERSION = os.environ.get("APP_VERSION", "")
if APP_VERSION and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,62}", APP_VERSION):
    raise SystemExit(
        f"APP_VERSION={APP_VERSION!r}: expected a version like v1 or 1.2.3 (letters, digits, "
        "'.', '_', '+', '-'; at most 63 characters)"
    )
_FAIL_SEED = os.environ.get("FAIL_SEED", "")
if _FAIL_SEED and not re.fullmatch(r"-?[0-9]{1,18}", _FAIL_SEED):
    raise SystemExit(f"FAIL_SEED={_FAIL_SEED!r}: expected a whole number, e.g. 42")

# With FAIL_SEED, every worker process draws the same reproducible sequence (one worker gives
# one sequence for a whole run). Without it, failures are truly random like the seed's, and
# independent per worker: the app is imported before gunicorn forks, so a seeded-at-import
# generator would be copied into every worker; SystemRandom has no state to copy.
if _FAIL_SEED:
    _rng = random.Random(int(_FAIL_SEED))  # noqa: S311 (a demo fault, not a secret)
else:
    _rng = random.SystemRandom()
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
    try:
        return urlsplit(raw).path or "/"  # absolute-form target, e.g. "http://host/x"
    except ValueError:  # e.g. "http://[::1/x": no 500 for a malformed target
        return environ.get("PATH_INFO") or "/"


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
