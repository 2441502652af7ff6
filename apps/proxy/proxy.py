"""The proxy of "Exploring Istio by example", as a WSGI app (standard library + requests).

Like the seed, it fetches PROXYURL for "/" and PROXYURL + path otherwise (query dropped), and
answers "Proxying value: <upstream body> - Took <N> milliseconds" whatever the upstream status,
or "<error text> - Took <N> milliseconds" with 502 (504 on a timeout) when the fetch fails.
Unlike the seed it is safe to expose (see ../../README.md, "The proxy's safety rules"):
unsafe paths are refused with 400 and a reason, the upstream request cannot leave PROXYURL's
scheme, host, port and base path, redirects are followed only within PROXYURL's origin or to
allow-listed hosts, timeouts and a body cap are explicit, the environment's proxy settings and
netrc are ignored. It forwards the trace headers a mesh needs, never hop-by-hop headers.
Configuration (environment, read once at start): see the README's configuration table.
"""

import os
import re
import threading
import time
from urllib.parse import quote, urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

TRACE_HEADERS = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
    "baggage",
)
# Meaningful for one connection only (RFC 9110 7.6.1), or set by the client library itself.
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    )
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Characters a path segment may carry unencoded (RFC 3986 pchar); everything else is re-quoted.
_PATH_SAFE = "/!$&'()*+,;=:@"
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\\?#]")
_UNSAFE_REASONS = {"\\": "a backslash", "?": "an encoded '?'", "#": "an encoded '#'"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ConfigError(SystemExit):
    """A setting is invalid: the process stops at start with a message saying what to fix."""


def _env_number(name, default, low, high, kind=float):
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name}={raw!r}: expected a number from {low} to {high}")
    return value


def _origin(parts):
    """(scheme, host, port) of a urlsplit() result, with the scheme's default port filled in."""
    return (parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme))


def _parse_proxyurl(raw):
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as error:
        raise ConfigError(f"PROXYURL={raw!r}: {error}") from None
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or "\\" in raw
    ):
        raise ConfigError(
            f"PROXYURL={raw!r}: expected http(s)://host[:port][/base/path], "
            "without credentials, query or fragment"
        )
    return parts


def _parse_redirect_hosts(raw):
    hosts = frozenset(host.strip().lower() for host in raw.split(",") if host.strip())
    for host in hosts:
        if not re.fullmatch(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]", host):
            raise ConfigError(
                f"PROXY_REDIRECT_HOSTS: {host!r} is not a host name (comma-separated hosts, "
                "no scheme or port, e.g. webserverv1,webserverv2)"
            )
    return hosts


def _parse_forward_headers(raw):
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    for name in names:
        if not _TOKEN.fullmatch(name) or name in HOP_BY_HOP:
            raise ConfigError(
                f"PROXY_FORWARD_HEADERS: {name!r} cannot be forwarded (expected header names, "
                "comma-separated, not hop-by-hop ones like Connection or Host)"
            )
    return names


PROXYURL = os.environ.get("PROXYURL") or "http://webserver"
_BASE = _parse_proxyurl(PROXYURL)
_BASE_ORIGIN = _origin(_BASE)
_BASE_PATH = _BASE.path
# PROXYURL's "scheme://host[:port]" as written (urlsplit lower-cases the scheme, not the host)
_ORIGIN_URL = PROXYURL[: len(_BASE.scheme) + 3 + len(_BASE.netloc)]
REDIRECT_HOSTS = _parse_redirect_hosts(os.environ.get("PROXY_REDIRECT_HOSTS", ""))
MAX_REDIRECTS = _env_number("PROXY_MAX_REDIRECTS", 5, 0, 20, int)
# Seconds an upstream connection is reused. kube-proxy balances connections, not requests: with
# the default 0 every request opens a new one, so answers alternate between the Service's pods
# as in the seed. Behind a mesh sidecar (which balances per request) reuse is safe and faster.
UPSTREAM_KEEPALIVE = _env_number("PROXY_UPSTREAM_KEEPALIVE", 0.0, 0.0, 3600.0)
CONNECT_TIMEOUT = _env_number("PROXY_CONNECT_TIMEOUT", 3.0, 0.001, 300.0)
READ_TIMEOUT = _env_number("PROXY_READ_TIMEOUT", 15.0, 0.001, 3600.0)
MAX_BODY_BYTES = _env_number("PROXY_MAX_BODY_BYTES", 1 << 20, 1, 1 << 30, int)
# (WSGI environ key, header name) of every header forwarded upstream when present.
_FORWARDED = tuple(
    ("HTTP_" + name.upper().replace("-", "_"), name)
    for name in dict.fromkeys(
        (*TRACE_HEADERS, *_parse_forward_headers(os.environ.get("PROXY_FORWARD_HEADERS", "")))
    )
)

_RESPONSE_HEADERS = (
    ("Content-Type", "text/plain; charset=utf-8"),
    ("X-Content-Type-Options", "nosniff"),
)
_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    502: "502 Bad Gateway",
    504: "504 Gateway Timeout",
}


class Refused(Exception):
    """The request cannot be proxied; args: (HTTP status, reason for the client)."""


def upstream_url(path):
    """PROXYURL for "/", else PROXYURL + the re-quoted path, or Refused(400, reason).

    `path` is WSGI's PATH_INFO, already percent-decoded: whatever the client encoded is
    visible here, so this is where traversal and smuggled query strings are caught.
    """
    if path == "/" or not path:
        return PROXYURL
    unsafe = _UNSAFE_CHARS.search(path)
    if unsafe:
        char = unsafe.group()
        what = _UNSAFE_REASONS.get(char) or f"a control character (0x{ord(char):02x})"
        raise Refused(400, f"path refused: it contains {what}")
    segments = path.split("/")
    if "." in segments or ".." in segments:
        raise Refused(400, "path refused: it contains a '.' or '..' segment")
    url = PROXYURL + quote(path.encode("latin-1"), safe=_PATH_SAFE)  # PEP 3333: latin-1
    # Defence in depth: whatever the path was, the result must stay under PROXYURL.
    parts = urlsplit(url)
    if (
        _origin(parts) != _BASE_ORIGIN
        or not parts.path.startswith(_BASE_PATH)
        or parts.query
        or parts.fragment
    ):
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
    if origin == _BASE_ORIGIN:
        return target
    if origin and parts.scheme in _DEFAULT_PORTS and parts.hostname in REDIRECT_HOSTS:
        return target
    host = parts.hostname or location
    raise Refused(
        502,
        f"Error: redirect to {host!r} refused: only PROXYURL's origin and PROXY_REDIRECT_HOSTS "
        "are followed",
    )


class _Response(requests.Response):
    """A Response without the cookie jar that requests.Response() builds for every response."""

    def __init__(self):
        self._content = False
        self._content_consumed = False
        self._next = None
        self.encoding = None
        self.history = []
        self.cookies = None


class UpstreamAdapter(HTTPAdapter):
    """requests' HTTP adapter, minus the cookie jar.

    Sending through the adapter instead of a Session skips work the proxy has no use for on
    every call (merging session settings, re-parsing the URL, environment lookups) and keeps
    no state between requests of different clients: a Session would store the upstream's
    Set-Cookie for one client and replay it on the next client's requests.
    """

    _origin_pool = None  # the pool for PROXYURL's origin, where nearly every request goes

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

    def build_response(self, req, resp):
        response = _Response()
        response.status_code = resp.status
        response.headers = resp.headers  # urllib3's headers: already case-insensitive
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url
        response.request = req
        response.connection = self
        return response


_TIMEOUT = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT)
_REQUEST_HEADERS = {
    "User-Agent": "mesh-playground-proxy",
    "Accept-Encoding": "identity",  # the body is passed on, not inflated
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
    request.method = "GET"
    request.url = url
    # A plain dict: the names are ours (lower-case, no two alike), nothing to fold.
    request.headers = {**_REQUEST_HEADERS, **headers}
    request.body = None
    return request


def _read_capped(response):
    """The (decoded) body, at most MAX_BODY_BYTES, else Refused(502)."""
    data = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
    if len(data) > MAX_BODY_BYTES:
        response.close()  # drops the connection: the rest of the body is never read
        raise Refused(
            502,
            f"Error: upstream body larger than {MAX_BODY_BYTES} bytes (PROXY_MAX_BODY_BYTES)",
        )
    return data  # fully read: urllib3 has put the connection back in the pool


def fetch(url, headers):
    """The upstream body for `url`, following redirects the policy allows."""
    adapter = _adapter()
    for _ in range(MAX_REDIRECTS + 1):
        response = adapter.send(_request(url, headers), stream=True, timeout=_TIMEOUT)
        body = _read_capped(response)
        if not response.is_redirect:
            return body
        url = _redirect_target(url, response.headers["location"])
    raise Refused(502, f"Error: more than {MAX_REDIRECTS} redirects (PROXY_MAX_REDIRECTS)")


def forwarded_headers(environ):
    """The trace (and configured extra) headers of the request, minus hop-by-hop ones."""
    headers = {name: environ[key] for key, name in _FORWARDED if key in environ}
    connection = environ.get("HTTP_CONNECTION")
    if connection and headers:  # headers the client named in Connection are hop-by-hop too
        for name in connection.split(","):
            headers.pop(name.strip().lower(), None)
    return headers


def _respond(start_response, code, text):
    body = text.encode()
    start_response(_STATUS[code], [*_RESPONSE_HEADERS, ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz" or path == "/readyz":  # answered here, never proxied
        return _respond(start_response, 200, "ok")
    try:
        url = upstream_url(path)
    except Refused as refused:
        return _respond(start_response, *refused.args)
    start = time.perf_counter()
    try:
        body = fetch(url, forwarded_headers(environ))
        code, text = 200, "Proxying value: " + body.decode("utf-8", "replace")
    except Refused as refused:
        code, text = refused.args
    except (requests.Timeout, urllib3.exceptions.TimeoutError):
        code, text = (
            504,
            (
                f"Error: upstream timed out (PROXY_CONNECT_TIMEOUT={CONNECT_TIMEOUT:g}s, "
                f"PROXY_READ_TIMEOUT={READ_TIMEOUT:g}s)"
            ),
        )
    except requests.ConnectionError as error:
        code, text = 502, f"Error: cannot connect to the upstream: {_reason(error)}"
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
        code, text = 502, f"Error: upstream failed: {_reason(error)}"
    took = int((time.perf_counter() - start) * 1000)
    return _respond(start_response, code, f"{text} - Took {took} milliseconds")


def _reason(error):
    """The innermost cause of a requests/urllib3 error, short enough for a response body."""
    while error.__context__ is not None and error.__context__ is not error:
        error = error.__context__
    return f"{type(error).__name__}: {error}"[:300]
