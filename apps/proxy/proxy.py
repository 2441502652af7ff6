"""The proxy of "Exploring Istio by example", as a WSGI app (standard library + requests).

Like the seed, it fetches PROXYURL for "/" and PROXYURL + path otherwise (query dropped), and
answers "Proxying value: <upstream body> - Took <N> milliseconds" whatever the upstream status,
or "<error text> - Took <N> milliseconds" with 502 (504 past the deadline) when the fetch fails.
Unlike the seed it is safe to expose: request targets other than paths are refused with 400 and
a reason; where the request may go and how it is fetched is upstream.py's. It forwards the
trace headers a mesh needs, never hop-by-hop headers. Rules, limits and settings (environment,
read once at start): ../../docs/apps.md.
"""

import re
import time

import upstream
from settings import env_list

TRACE_HEADERS = ("x-request-id", "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid",
                 "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3", "x-ot-span-context",
                 "baggage")  # fmt: skip
# Meaningful for one connection only (RFC 9110 7.6.1), or set by the client library itself.
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
                        "host", "content-length"))  # fmt: skip


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz" or path == "/readyz":  # answered here, never proxied
        return _respond(start_response, 200, "ok")
    try:
        url = upstream.upstream_url(request_path(environ))
    except upstream.Refused as refused:
        return _respond(start_response, *refused.args)
    start = time.perf_counter()
    code, text = upstream.call(url, forwarded_headers(environ))  # the body, or what failed
    took = int((time.perf_counter() - start) * 1000)
    if code == 200:
        text = "Proxying value: " + text
    return _respond(start_response, code, f"{text} - Took {took} milliseconds")


_ABSOLUTE_FORM = re.compile(r"https?://", re.IGNORECASE)


def request_path(environ):
    """The path to proxy, from the request target's form (RFC 9112 3.2), or Refused(400)."""
    target = environ.get("RAW_URI") or "/"
    if environ.get("REQUEST_METHOD") == "CONNECT":
        raise upstream.Refused(
            400, "request refused: CONNECT is not supported (this is not a tunnel)"
        )
    if target.startswith("/"):  # origin-form
        return environ.get("PATH_INFO") or "/"
    if _ABSOLUTE_FORM.match(target):  # absolute-form: only its path is used, on PROXYURL
        return environ.get("PATH_INFO") or "/"
    if target == "*":
        raise upstream.Refused(
            400, "request target refused: '*' (asterisk-form) names no path to proxy"
        )
    raise upstream.Refused(
        400, "request target refused: expected a path starting with '/' or an http(s) URL"
    )


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _forwardable(name):
    if not _TOKEN.fullmatch(name) or name in HOP_BY_HOP:
        raise ValueError(
            "cannot be forwarded (expected header names, comma-separated, not hop-by-hop ones "
            "like Connection or Host)"
        )
    return name


# (WSGI environ key, header name) of every header forwarded upstream when present.
_FORWARDED = tuple(
    ("HTTP_" + name.upper().replace("-", "_"), name)
    for name in dict.fromkeys(
        (*TRACE_HEADERS, *env_list("PROXY_FORWARD_HEADERS", _forwardable, lower=True))
    )
)


def forwarded_headers(environ):
    """The trace (and configured extra) headers of the request, minus hop-by-hop ones."""
    headers = {name: environ[key] for key, name in _FORWARDED if key in environ}
    connection = environ.get("HTTP_CONNECTION")
    if connection and headers:  # headers the client named in Connection are hop-by-hop too
        for name in connection.split(","):
            headers.pop(name.strip().lower(), None)
    return headers


_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"))
_STATUS = {200: "200 OK", 400: "400 Bad Request", 502: "502 Bad Gateway",
           504: "504 Gateway Timeout"}  # fmt: skip


def _respond(start_response, code, text):
    body = text.encode()
    start_response(_STATUS[code], [*_HEADERS, ("Content-Length", str(len(body)))])
    return [body]
