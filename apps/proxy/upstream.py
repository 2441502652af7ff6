"""The proxy's upstream: PROXYURL, the URLs it allows, and one exchange with it (requests).

- `upstream_url(path)`: PROXYURL for "/", else PROXYURL + the path, which must stay under
  PROXYURL's scheme, host, port and base path (whole segments); else Refused(400, reason).
- `call(url, headers)`: (200, the body as text) or (502/504, what went wrong). Redirects are
  followed only within PROXYURL's origin and base path or to PROXY_REDIRECT_HOSTS; the whole
  exchange has a deadline (PROXY_DEADLINE), the body a cap on wire and decoded bytes
  (PROXY_MAX_BODY_BYTES); the environment's proxy settings and netrc are never read, no cookie
  is kept. Only public APIs of requests and urllib3 are used (tests/apps/test_hardening.py).
Rules and limits: ../../docs/apps.md; settings (read once at start): PROXY_*.
"""

import http.client
import ipaddress
import os
import re
import socket
import threading
import time
import zlib
from urllib.parse import quote, unquote, urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from settings import SettingError, env, env_float, env_int, env_list
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Refused(Exception):
    """The request cannot be proxied; args: (HTTP status, reason for the client)."""


def call(url, headers):
    """(200, the upstream body as text) or (502 or 504, the error), for the client."""
    try:
        return 200, fetch(url, headers).decode("utf-8", "replace")
    except Refused as refused:
        return refused.args
    except (requests.Timeout, urllib3.exceptions.TimeoutError):
        return (
            504,
            (
                f"Error: upstream timed out (PROXY_CONNECT_TIMEOUT={CONNECT_TIMEOUT:g}s, "
                f"PROXY_READ_TIMEOUT={READ_TIMEOUT:g}s)"
            ),
        )
    except requests.ConnectionError as error:
        return 502, f"Error: cannot connect to the upstream: {_reason(error)}"
    except (
        requests.RequestException,
        urllib3.exceptions.HTTPError,
        http.client.HTTPException,
        OSError,
    ) as error:
        return 502, f"Error: upstream failed: {_reason(error)}"


def _reason(error):
    """The innermost cause of a requests/urllib3 error, short enough for a response body."""
    while error.__context__ is not None and error.__context__ is not error:
        error = error.__context__
    return f"{type(error).__name__}: {error}"[:300]


# ---------------------------------------------------------------- PROXYURL and the URLs it allows
# Characters a path segment may carry unencoded (RFC 3986 pchar); everything else is re-quoted.
_PATH_SAFE = "/!$&'()*+,;=:@"
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\\?#]")
_UNSAFE_REASONS = {"\\": "a backslash", "?": "an encoded '?'", "#": "an encoded '#'"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_])?\.?")


def _host(host):
    """A host as compared everywhere: lower case, no trailing dot, IP addresses in one form."""
    host = host.lower().removesuffix(".")
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


def _valid_host(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST_NAME.fullmatch(host))


def _origin(parts):
    """(scheme, host, port) of a urlsplit() result, normalised, the default port filled in."""
    scheme = parts.scheme
    return (scheme, _host(parts.hostname or ""), parts.port or _DEFAULT_PORTS.get(scheme))


def _parse_proxyurl(raw):
    expected = (
        "expected http(s)://host[:port][/base/path] (ASCII, without credentials, query, "
        "fragment, dot segments or backslashes)"
    )
    if not re.fullmatch(r"[!-~]+", raw) or re.search(r"[?#\\]|%(?![0-9A-Fa-f]{2})", raw):
        raise SettingError("PROXYURL", raw, expected)
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as error:
        raise SettingError("PROXYURL", raw, f"{expected}: {error}") from None
    segments = unquote(parts.path).split("/")
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or not _valid_host(parts.hostname)
        or "@" in parts.netloc
        or "." in segments
        or ".." in segments
    ):
        raise SettingError("PROXYURL", raw, expected)
    return parts


def _redirect_host(entry):
    """(host, port or None) of a PROXY_REDIRECT_HOSTS entry: None stands for the default port
    of the redirect's scheme."""
    try:
        parts = urlsplit("//" + entry)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = None
    if not host or parts.path or "@" in entry or not _valid_host(host):
        raise ValueError(
            "is not a host (comma-separated host[:port], no scheme or path, IPv6 in brackets, "
            "e.g. webserverv1,webserverv2:8080,[::1])"
        )
    return _host(host), port


PROXYURL = env("PROXYURL", "http://webserver")
_BASE = _parse_proxyurl(PROXYURL)
_BASE_ORIGIN = _origin(_BASE)
_BASE_PATH = _BASE.path
_BASE_PREFIX = _BASE_PATH if _BASE_PATH.endswith("/") else _BASE_PATH + "/"
# PROXYURL's "scheme://host[:port]" as written (urlsplit lower-cases the scheme, not the host)
_ORIGIN_URL = PROXYURL[: len(_BASE.scheme) + 3 + len(_BASE.netloc)]
REDIRECT_HOSTS = frozenset(env_list("PROXY_REDIRECT_HOSTS", _redirect_host))
MAX_REDIRECTS = env_int("PROXY_MAX_REDIRECTS", 5, 0, 20)
# Seconds an upstream connection is reused. kube-proxy balances connections, not requests: with
# the default 0 every request opens a new one, so answers alternate between the Service's pods
# as in the seed. Behind a mesh sidecar (which balances per request) reuse is safe and faster.
UPSTREAM_KEEPALIVE = env_float("PROXY_UPSTREAM_KEEPALIVE", 0.0, 0.0, 3600.0)
CONNECT_TIMEOUT = env_float("PROXY_CONNECT_TIMEOUT", 3.0, 0.001, 300.0)
READ_TIMEOUT = env_float("PROXY_READ_TIMEOUT", 15.0, 0.001, 3600.0)
# The whole upstream exchange (connect, head, body, redirects included) ends by this deadline.
DEADLINE = env_float("PROXY_DEADLINE", 20.0, 0.01, 3600.0)
# Applies to the bytes on the wire and, for a gzip/deflate body, to the decoded bytes too.
MAX_BODY_BYTES = env_int("PROXY_MAX_BODY_BYTES", 1 << 20, 1, 1 << 30)


def _under_base(path):
    """Whether `path` is PROXYURL's base path or below it, in whole segments."""
    return path == _BASE_PATH or path.startswith(_BASE_PREFIX)


def _has_dot_segment(path):
    # "..;x" counts too: some servers (Tomcat, Spring) read it as ".." plus a path parameter.
    return any(segment.partition(";")[0] in (".", "..") for segment in path.split("/"))


def upstream_url(path):
    """PROXYURL for "/", else PROXYURL + the re-quoted path, or Refused(400, reason).

    `path` is WSGI's PATH_INFO, already percent-decoded: whatever the client encoded is
    visible here, so this is where traversal and smuggled query strings are caught.
    """
    if path == "/" or not path:
        return PROXYURL
    if not path.startswith("/"):
        raise Refused(400, "path refused: it does not start with '/'")
    unsafe = _UNSAFE_CHARS.search(path)
    if unsafe:
        char = unsafe.group()
        what = _UNSAFE_REASONS.get(char) or f"a control character (0x{ord(char):02x})"
        raise Refused(400, f"path refused: it contains {what}")
    if "." in path and _has_dot_segment(path):
        raise Refused(400, "path refused: it contains a '.' or '..' segment")
    url = PROXYURL + quote(path.encode("latin-1"), safe=_PATH_SAFE)  # PEP 3333: latin-1
    # Defence in depth: whatever the path was, the result must stay under PROXYURL.
    try:
        parts = urlsplit(url)
        origin = _origin(parts)
    except ValueError:
        origin = None
    if origin != _BASE_ORIGIN or not _under_base(parts.path) or parts.query or parts.fragment:
        raise Refused(400, "path refused: it would leave PROXYURL")
    return url


def _redirect_target(url, location):
    """The absolute URL a redirect points to, or Refused(502) when the policy forbids it."""
    try:
        target = urljoin(url, location)  # resolves relative references like a browser does
        parts = urlsplit(target)
        origin = _origin(parts)
    except ValueError:  # e.g. a malformed IPv6 host or port
        raise Refused(502, f"Error: invalid redirect location {location[:200]!r}") from None
    scheme, host, port = origin
    if origin == _BASE_ORIGIN:
        path = unquote(parts.path)
        if _under_base(path) and not _has_dot_segment(path):
            return target
        raise Refused(
            502, f"Error: redirect to {parts.path[:200]!r} refused: it leaves PROXYURL's base path"
        )
    if scheme in _DEFAULT_PORTS and (
        (host, port) in REDIRECT_HOSTS
        or (port == _DEFAULT_PORTS[scheme] and (host, None) in REDIRECT_HOSTS)
    ):
        return target
    shown = f"{host}:{port}" if host else location[:200]
    raise Refused(
        502,
        f"Error: redirect to {shown!r} refused: only PROXYURL's origin and PROXY_REDIRECT_HOSTS "
        "are followed",
    )


# ---------------------------------------------------------------- the total deadline
class _Exchange:
    """This thread's upstream exchange, as the deadline watchdog sees it."""

    __slots__ = ("conn", "deadline", "expired", "lock", "sock")

    def __init__(self):
        self.lock = threading.Lock()
        self.deadline = float("inf")
        self.conn = None  # the connection sending the request (its socket: once connected)
        self.sock = None  # its socket, kept: http.client drops conn.sock once a response
        self.expired = False  # that closes the connection has begun, while reading from it

    def expire(self):
        """Past the deadline: shut the connection down, which ends any read blocked on it."""
        with self.lock:
            self.expired = True
            sock = self.sock or (self.conn.sock if self.conn is not None else None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed meanwhile


_exchanges = {}  # thread id -> _Exchange, of every thread of this process that proxies
_watchdog_lock = threading.Lock()
_watchdog_pid = None  # the process whose watchdog runs (threads do not survive gunicorn's fork)
_TICK = min(0.05, DEADLINE / 4)


def _watchdog():
    while True:
        time.sleep(_TICK)  # the watchdog's polling interval, not synchronisation
        now = time.monotonic()
        for exchange in list(_exchanges.values()):
            if exchange.deadline <= now:
                exchange.expire()  # again each tick: a connect may have finished meanwhile


def _exchange():
    exchange = getattr(_local, "exchange", None)
    if exchange is None:
        global _watchdog_pid
        with _watchdog_lock:
            if _watchdog_pid != os.getpid():
                threading.Thread(target=_watchdog, name="deadline", daemon=True).start()
                _watchdog_pid = os.getpid()
        exchange = _local.exchange = _exchanges[threading.get_ident()] = _Exchange()
    return exchange


class _WatchedConnection:
    """Mixin for urllib3's connection classes: each request makes the connection known to
    this thread's exchange, so that the watchdog can shut it down past the deadline."""

    def request(self, *args, **kwargs):
        exchange = getattr(_local, "exchange", None)
        if exchange is not None:
            exchange.conn = self
        sent = super().request(*args, **kwargs)  # connects first when needed
        if exchange is not None:
            exchange.sock = self.sock
        return sent


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class UpstreamAdapter(HTTPAdapter):
    """requests' HTTP adapter (public transport-adapter API), with watched connections.

    Sending through the adapter instead of a Session skips work the proxy has no use for on
    every call (merging session settings, re-parsing the URL, environment lookups) and keeps
    no state between requests of different clients: a Session would store the upstream's
    Set-Cookie for one client and replay it on the next client's requests.
    """

    _origin_pool = None  # the pool for PROXYURL's origin, where nearly every request goes

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _HTTPConnectionPool,
            "https": _HTTPSConnectionPool,
        }

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        # requests parses the URL and normalises a pool key on every call: for PROXYURL's
        # origin, look the pool up once (again if the pool manager has closed it since).
        url = request.url
        if url == _ORIGIN_URL or url.startswith(_ORIGIN_URL + "/"):
            pool = self._origin_pool
            if pool is None or pool.pool is None:
                pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
                self._origin_pool = pool
            return pool
        return super().get_connection_with_tls_context(request, verify, proxies, cert)

    def request_url(self, request, proxies):
        return request.path_url  # never through a proxy: the request line carries the path


_TIMEOUT = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT)
_REQUEST_HEADERS = {
    "User-Agent": "mesh-playground-proxy",
    "Accept-Encoding": "identity",  # asked for; gzip/deflate are still decoded, within the cap
}
if not UPSTREAM_KEEPALIVE:
    _REQUEST_HEADERS["Connection"] = "close"
_local = threading.local()


def _adapter():
    """This thread's adapter; its upstream connections live at most UPSTREAM_KEEPALIVE s."""
    adapter = getattr(_local, "adapter", None)
    now = time.monotonic()
    if adapter is not None and UPSTREAM_KEEPALIVE and now - _local.since > UPSTREAM_KEEPALIVE:
        adapter.close()  # the next connections may land on other pods of the Service
        adapter = None
    if adapter is None:
        # One thread sends one request at a time: one connection per host is enough.
        adapter = _local.adapter = UpstreamAdapter(pool_connections=4, pool_maxsize=1)
        _local.since = now
    return adapter


def _request(url, headers):
    """A GET for requests' adapter. The URL is already quoted and checked (upstream_url,
    _redirect_target): requests' own URL preparation would only redo that work. Only
    adapter.send is used, which reads no proxy variables or netrc (CVE-2024-47081)."""
    request = requests.PreparedRequest()
    request.prepare_method("GET")
    request.url = url
    # A plain dict: the names are ours (lower-case, no two alike), nothing to fold.
    request.headers = {**_REQUEST_HEADERS, **headers}
    request.body = None
    return request


# ---------------------------------------------------------------- the body and its cap
def _too_large(what):
    return Refused(
        502, f"Error: upstream body larger than {MAX_BODY_BYTES} bytes{what} (PROXY_MAX_BODY_BYTES)"
    )


def _read_capped(response):
    """The decoded body: at most MAX_BODY_BYTES on the wire and decoded, else Refused(502)."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        response.close()  # nothing read: the connection is dropped
        raise _too_large("")
    data = response.raw.read(MAX_BODY_BYTES + 1, decode_content=False)
    if len(data) > MAX_BODY_BYTES:
        response.close()  # drops the connection: the rest of the body is never read
        raise _too_large("")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "identity" or not encoding:
        return data  # fully read: urllib3 has put the connection back in the pool
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _inflate(data, encoding)
    raise Refused(
        502,
        f"Error: upstream body in Content-Encoding {encoding[:40]!r}: only gzip and deflate "
        "are decoded (the proxy asks for identity)",
    )


def _inflate(data, encoding):
    """`data` decoded, at most MAX_BODY_BYTES of output (zlib's max_length: a "bomb" costs no
    more memory or CPU than the cap), else Refused(502)."""
    for wbits in (31,) if encoding != "deflate" else (15, -15):  # deflate: zlib or raw
        decoder = zlib.decompressobj(wbits)
        try:
            decoded = decoder.decompress(data, MAX_BODY_BYTES + 1)
            break
        except zlib.error as error:
            problem = error
    else:
        raise Refused(502, f"Error: upstream body is not valid {encoding}: {problem}")
    if len(decoded) > MAX_BODY_BYTES or decoder.unconsumed_tail:
        raise _too_large(" once decoded")
    if not decoder.eof:
        raise Refused(502, f"Error: upstream body is truncated {encoding} data")
    return decoded


def _fetch(url, headers):
    adapter = _adapter()
    for _ in range(MAX_REDIRECTS + 1):
        response = adapter.send(_request(url, headers), stream=True, timeout=_TIMEOUT)
        if response.status_code < 200:  # 100 Continue is skipped by http.client; others not
            response.close()
            raise Refused(
                502, f"Error: upstream answered {response.status_code} (an interim response) only"
            )
        connection = response.raw.connection  # read before the body: then it is released
        body = _read_capped(response)
        if not UPSTREAM_KEEPALIVE and connection is not None:
            # We sent Connection: close, so the upstream closes it, but an HTTP/1.1 answer need
            # not say so: reused before its FIN arrives, the socket would fail the next request
            # (RemoteDisconnected). Closed here, the pool connects afresh.
            connection.close()
        if not response.is_redirect:
            return body
        url = _redirect_target(url, response.headers["location"])
    raise Refused(502, f"Error: more than {MAX_REDIRECTS} redirects (PROXY_MAX_REDIRECTS)")


_EXPIRED = (
    504,
    f"Error: the upstream exchange did not finish within PROXY_DEADLINE={DEADLINE:g}s "
    "(connect + headers + body, redirects included)",
)


def fetch(url, headers):
    """The upstream body for `url`, following redirects the policy allows, by the deadline."""
    exchange = _exchange()
    exchange.expired = False
    exchange.deadline = time.monotonic() + DEADLINE
    try:
        body = _fetch(url, headers)
    except (
        Refused,
        requests.RequestException,
        urllib3.exceptions.HTTPError,
        http.client.HTTPException,
        OSError,
    ):
        if exchange.expired:
            raise Refused(*_EXPIRED) from None
        raise
    finally:
        with exchange.lock:
            exchange.deadline = float("inf")
            exchange.conn = exchange.sock = None
    if exchange.expired:  # e.g. a body without length, cut short by the watchdog
        raise Refused(*_EXPIRED)
    return body
