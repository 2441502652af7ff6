"""The proxy, served by a real gunicorn on loopback, in front of a recording upstream."""

import random
import re
import time
from urllib.parse import urlsplit

import pytest
from apps_live import DEADLINE, RecordingUpstream, free_port, no_new_requests, raw_request

TOOK = re.compile(rb" - Took (\d+) milliseconds$")


def took(body):
    match = TOOK.search(body)
    assert match, body
    return int(match[1])


def test_body_is_the_seeds(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url)
    response = raw_request(proxy.port, "/")
    assert response.status == 200
    # The seed's JS: "Proxying value: " + body + " - Took " + duration + " milliseconds"
    assert re.fullmatch(
        rb"Proxying value: upstream saw /base - Took \d+ milliseconds", response.body
    )
    assert upstream.seen[-1].path == "/base"  # "/" fetches PROXYURL as is


def test_path_is_appended_and_query_dropped(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url)
    response = raw_request(proxy.port, "/some/path?secret=1")
    assert response.body.startswith(b"Proxying value: upstream saw /base/some/path - Took ")
    assert upstream.seen[-1].path == "/base/some/path"


def test_any_upstream_status_is_proxied_with_200(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url)
    for code in (404, 500, 503):
        response = raw_request(proxy.port, f"/status/{code}")
        assert response.status == 200
        assert response.body.startswith(b"Proxying value: status %d - Took " % code)


def test_non_utf8_upstream_bytes_become_replacement_characters_like_node(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url)
    body = raw_request(proxy.port, "/nonutf8").body
    assert body.startswith("Proxying value: bad \ufffd\ufffd bytes - Took ".encode())


def test_every_response_is_plain_text_nosniff(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url, PROXY_READ_TIMEOUT=0.2)
    upstream.redirects["/away"] = "http://evil.invalid/"
    for target in ("/", "/healthz", "/readyz", "/%2e%2e", "/away", "/hold", "/bytes/2000000"):
        response = raw_request(proxy.port, target)
        assert response.headers["content-type"] == "text/plain; charset=utf-8", target
        assert response.headers["x-content-type-options"] == "nosniff", target


def test_probes_are_answered_locally(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url)
    with no_new_requests(upstream):
        for target in ("/healthz", "/readyz"):
            response = raw_request(proxy.port, target)
            assert (response.status, response.body) == (200, b"ok")


# Each class of unsafe input (see ../../../shared/notes/proxy-security.md), as raw request
# bytes: refused with 400 and a reason, and the upstream receives nothing.
UNSAFE = [
    ("/%2e%2e/%2e%2e/admin", b"'..' segment"),  # decoded traversal out of the base path
    ("/a/%2E%2E/b", b"'..' segment"),
    ("/a/./b", b"'.' or '..' segment"),
    ("/%2e/x", b"'.' or '..' segment"),
    ("/..", b"'..' segment"),
    ("/%3Fa=1", b"encoded '?'"),  # smuggled query string
    ("/x%3f", b"encoded '?'"),
    ("/%23frag", b"encoded '#'"),  # smuggled fragment (would truncate the path)
    ("/%5c..%5cadmin", b"backslash"),
    ("/a%5Cb", b"backslash"),
    ("/%0d%0aX-Injected:%201", b"control character (0x0d)"),  # forged headers / log lines
    ("/%0a", b"control character (0x0a)"),
    ("/%00", b"control character (0x00)"),
    ("/%09tab", b"control character (0x09)"),
    ("/%7f", b"control character (0x7f)"),
]


@pytest.mark.parametrize(("target", "reason"), UNSAFE)
def test_unsafe_paths_are_refused_with_a_reason(serve, upstream, target, reason):
    proxy = serve("proxy", PROXYURL=upstream.url)
    with no_new_requests(upstream):
        response = raw_request(proxy.port, target)
    assert response.status == 400
    assert response.body.startswith(b"path refused: it contains ")
    assert reason in response.body


@pytest.mark.parametrize("target", ["@evil.com/x", ":1@evil.com/", "*", "/\\..\\admin", "/a b"])
def test_malformed_targets_never_reach_the_upstream(serve, upstream, target):
    proxy = serve("proxy", PROXYURL=upstream.url)
    with no_new_requests(upstream):
        response = raw_request(proxy.port, target)
    assert response.status == 400
    # refused by gunicorn itself or by the proxy: the same rule for both (apps/common/worker.py)
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.body.startswith((b"Bad Request: ", b"path refused: "))


@pytest.mark.parametrize(
    ("target", "upstream_path"),
    [
        ("http://evil.com/x", "/base/x"),  # absolute-form: only its path is used
        ("//evil.com/x", "/base//evil.com/x"),  # stays a path on PROXYURL's host
        ("/%2F%2Fevil.com", "/base///evil.com"),
        ("/@evil.com", "/base/@evil.com"),
        ("/a%20b/%25zz", "/base/a%20b/%25zz"),  # decoded, then re-quoted exactly once
        ("/caf%C3%A9", "/base/caf%C3%A9"),
    ],
)
def test_tricky_paths_stay_on_proxyurl(serve, upstream, target, upstream_path):
    proxy = serve("proxy", PROXYURL=upstream.url)
    response = raw_request(proxy.port, target)
    assert response.status == 200
    seen = upstream.seen[-1]
    assert seen.path == upstream_path
    assert dict(seen.headers)["Host"] == f"127.0.0.1:{upstream.port}"


def test_fuzzed_paths_never_leave_proxyurl(serve, upstream):
    """Random targets from an alphabet of URL delimiters and escapes: each one is refused
    with 400, or reaches the upstream on PROXYURL's host under its base path."""
    proxy = serve("proxy", PROXYURL=upstream.url)
    alphabet = [
        "/",
        ".",
        "..",
        "%2e",
        "%2f",
        "%2F",
        "%5c",
        "%3f",
        "%23",
        "%00",
        "%0d",
        "@",
        ":",
        "%40",
        "%3a",
        "a",
        "evil.com",
        "%25",
        "%252e",
        "?",
        "#",
        ";",
        "%20",
        "~",
        "%ff",
    ]
    rng = random.Random(2026)  # noqa: S311 (reproducible test data)
    for _ in range(300):
        target = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        before = len(upstream.seen)
        response = raw_request(proxy.port, target)
        assert response.status in (200, 400), (target, response)
        new = upstream.seen[before:]
        if response.status == 400:
            assert new == [], target
            continue
        assert len(new) == 1, target
        assert urlsplit(new[0].path).path.startswith("/base"), (target, new[0].path)
        assert dict(new[0].headers)["Host"] == f"127.0.0.1:{upstream.port}", target


def test_redirect_within_proxyurls_origin_is_followed(serve, upstream):
    upstream.redirects["/old"] = "/base/new"  # relative Location
    upstream.redirects["/abs"] = f"http://127.0.0.1:{upstream.port}/base/elsewhere"
    proxy = serve("proxy", PROXYURL=upstream.url)
    assert raw_request(proxy.port, "/old").body.startswith(
        b"Proxying value: upstream saw /base/new"
    )
    assert raw_request(proxy.port, "/abs").body.startswith(
        b"Proxying value: upstream saw /base/elsewhere"
    )


def test_redirect_to_an_allow_listed_host_is_followed(serve, upstream):
    # The seed's VirtualService redirect demo sends the proxy to another host (webserverv1);
    # here "localhost" is that other host name for the same loopback upstream.
    upstream.redirects["/"] = f"http://localhost:{upstream.port}/redirected"
    proxy = serve(
        "proxy",
        PROXYURL=upstream.url + "/",
        PROXY_REDIRECT_HOSTS=f"webserverv1, localhost:{upstream.port}",
    )
    response = raw_request(proxy.port, "/")
    assert response.body.startswith(b"Proxying value: upstream saw /redirected - Took ")
    assert dict(upstream.seen[-1].headers)["Host"] == f"localhost:{upstream.port}"


def test_redirect_elsewhere_is_refused(serve, upstream, other_upstream):
    upstream.redirects["/port"] = (
        f"http://127.0.0.1:{other_upstream.port}/"  # same host, other port
    )
    upstream.redirects["/host"] = f"http://localhost:{other_upstream.port}/"  # not allow-listed
    upstream.redirects["/scheme"] = f"https://127.0.0.1:{upstream.port}/base/x"
    upstream.redirects["/ftp"] = "ftp://localhost/"
    upstream.redirects["/loop"] = "/base/loop"
    upstream.redirects["/bad"] = "http://[::1/x"  # not a URL at all
    proxy = serve("proxy", PROXYURL=upstream.url, PROXY_REDIRECT_HOSTS="webserverv1")
    with no_new_requests(other_upstream):
        for target in ("/port", "/host", "/scheme", "/ftp"):
            response = raw_request(proxy.port, target)
            assert response.status == 502, target
            assert b"refused: only PROXYURL's origin and PROXY_REDIRECT_HOSTS" in response.body
    response = raw_request(proxy.port, "/bad")
    assert response.status == 502
    assert b"Error: invalid redirect location 'http://[::1/x'" in response.body
    response = raw_request(proxy.port, "/loop")
    assert response.status == 502
    assert b"more than 5 redirects (PROXY_MAX_REDIRECTS)" in response.body


TRACE = {
    "x-request-id": "7f3c-req",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "vendor=abc",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
    "x-b3-spanid": "e457b5a2e4d86bd1",
    "x-b3-parentspanid": "05e3ac9a4f6e3b90",
    "x-b3-sampled": "1",
    "b3": "80f198ee56343ba8-e457b5a2e4d86bd1-1",
    "x-ot-span-context": "abc;def",
    "baggage": "user=alice",
}


def test_trace_and_configured_headers_are_forwarded_hop_by_hop_ones_never(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url, PROXY_FORWARD_HEADERS="end-user, X-Canary")
    sent = [
        *TRACE.items(),
        ("End-User", "jason"),
        ("x-canary", "yes"),
        ("x-b3-flags", "1"),  # a trace header, but named in Connection: hop-by-hop here
        ("Connection", "x-b3-flags"),  # after raw_request's "Connection: close"
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
        ("TE", "trailers"),
        ("Authorization", "Bearer not-for-the-upstream"),
        ("Cookie", "session=1"),
        ("X-Forwarded-For", "1.2.3.4"),
    ]
    assert raw_request(proxy.port, "/", sent).status == 200
    received = {name.lower(): value for name, value in upstream.seen[-1].headers}
    for name, value in TRACE.items():
        assert received[name] == value, name
    assert received["end-user"] == "jason"
    assert received["x-canary"] == "yes"
    for name in (
        "x-b3-flags",
        "keep-alive",
        "proxy-authorization",
        "te",
        "authorization",
        "cookie",
        "x-forwarded-for",
    ):
        assert name not in received, name
    # the client's Connection header is not passed on; ours asks for a new connection per request
    assert received["connection"] == "close"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROXYURL": "ftp://host/"}, "PROXYURL='ftp://host/'"),
        ({"PROXYURL": "http://user:pw@host/"}, "without credentials"),
        ({"PROXYURL": "http://host/?q=1"}, "query, fragment"),
        ({"PROXYURL": "http://host:99999/"}, "PROXYURL='http://host:99999/'"),
        ({"PROXY_FORWARD_HEADERS": "x-ok, Connection"}, "'connection' cannot be forwarded"),
        ({"PROXY_FORWARD_HEADERS": "bad header"}, "'bad header' cannot be forwarded"),
        ({"PROXY_REDIRECT_HOSTS": "http://webserverv1"}, "is not a host (comma-separated"),
        ({"PROXY_READ_TIMEOUT": "0"}, "PROXY_READ_TIMEOUT='0'"),
        ({"PROXY_MAX_BODY_BYTES": "lots"}, "PROXY_MAX_BODY_BYTES='lots'"),
    ],
)
def test_bad_settings_stop_the_start_with_a_message(serve, env, message):
    proxy = serve("proxy", wait=False, **{"PROXYURL": "http://127.0.0.1:1", **env})
    assert proxy.process.wait(timeout=20) != 0
    assert message in proxy.log()


def test_upstream_down_is_a_502(serve):
    proxy = serve("proxy", PROXYURL=f"http://127.0.0.1:{free_port()}")
    response = raw_request(proxy.port, "/x")
    assert response.status == 502
    assert re.fullmatch(
        rb"Error: cannot connect to the upstream: .*Connection refused.* - Took \d+ milliseconds",
        response.body,
    )


def test_slow_upstream_is_a_504_after_the_read_timeout(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url, PROXY_READ_TIMEOUT=0.3)
    response = raw_request(proxy.port, "/hold")
    assert response.status == 504
    assert response.body.startswith(b"Error: upstream timed out (PROXY_CONNECT_TIMEOUT=3s, ")
    assert 300 <= took(response.body) < 5000
    upstream.release.set()
    assert raw_request(proxy.port, "/").status == 200  # and the proxy carries on


@pytest.mark.parametrize("kind", ["bytes", "chunked"])
def test_oversized_upstream_body_is_capped(serve, upstream, kind):
    proxy = serve("proxy", PROXYURL=upstream.url, PROXY_MAX_BODY_BYTES=10000)
    response = raw_request(proxy.port, f"/{kind}/10000")  # exactly the cap: fine
    assert response.status == 200
    assert len(response.body) < 10100
    response = raw_request(proxy.port, f"/{kind}/10001")
    assert response.status == 502
    assert b"Error: upstream body larger than 10000 bytes (PROXY_MAX_BODY_BYTES)" in response.body
    big = raw_request(proxy.port, f"/{kind}/5000000")
    assert big.status == 502
    assert len(big.body) < 1000
    assert raw_request(proxy.port, "/").status == 200  # the dropped connection is not reused


def test_each_request_opens_a_new_upstream_connection_by_default(serve, upstream):
    """As in the seed: kube-proxy then spreads the requests over the Service's pods."""
    proxy = serve("proxy", PROXYURL=upstream.url, WEB_CONCURRENCY=1, GUNICORN_THREADS=1)
    for _ in range(20):
        assert raw_request(proxy.port, "/").status == 200
    assert len({seen.client_port for seen in upstream.seen}) == 20


def test_upstream_connections_are_reused_for_the_keepalive_time(serve, upstream):
    proxy = serve(
        "proxy",
        PROXYURL=upstream.url,
        WEB_CONCURRENCY=1,
        GUNICORN_THREADS=1,
        PROXY_UPSTREAM_KEEPALIVE=2,
    )
    for _ in range(2):
        assert raw_request(proxy.port, "/").status == 200
    first_port = upstream.seen[0].client_port
    assert upstream.seen[1].client_port == first_port  # reused...
    deadline = time.monotonic() + DEADLINE
    while upstream.seen[-1].client_port == first_port:  # then it moves on to a new connection
        assert time.monotonic() < deadline, "the upstream connection was never renewed"
        assert raw_request(proxy.port, "/").status == 200


def test_environment_proxies_and_netrc_are_ignored(serve, upstream, other_upstream, tmp_path):
    # requests with trust_env would send through HTTP_PROXY and add netrc credentials.
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login user password secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    proxy = serve(
        "proxy",
        PROXYURL=upstream.url,
        HOME=tmp_path,
        NETRC=tmp_path / ".netrc",
        HTTP_PROXY=other_upstream.url,
        http_proxy=other_upstream.url,
        ALL_PROXY=other_upstream.url,
    )
    with no_new_requests(other_upstream):
        assert raw_request(proxy.port, "/x").status == 200
    received = {name.lower() for name, _ in upstream.seen[-1].headers}
    assert "authorization" not in received


def test_upstream_cookies_are_not_replayed_to_other_clients(serve, upstream):
    upstream.redirects["/login"] = "/base/after-login"  # a 302 that also sets a cookie
    upstream.set_cookie = "session=alice"
    proxy = serve("proxy", PROXYURL=upstream.url, WEB_CONCURRENCY=1, GUNICORN_THREADS=1)
    assert raw_request(proxy.port, "/login").status == 200
    assert raw_request(proxy.port, "/other-client").status == 200
    for seen in upstream.seen:
        assert "cookie" not in {name.lower() for name, _ in seen.headers}, seen.path


def test_requests_keep_working_after_redirects_to_many_origins(serve, upstream):
    """Redirects to more origins than a thread's pool manager keeps (4) push the pool of
    PROXYURL's origin out of it; the proxy keeps its own reference and must go on working."""
    others = [RecordingUpstream().start() for _ in range(5)]
    try:
        for i, other in enumerate(others):
            upstream.redirects[f"/r{i}"] = f"http://localhost:{other.port}/"
        hosts = ",".join(f"localhost:{other.port}" for other in others)
        proxy = serve("proxy", PROXYURL=upstream.url, PROXY_REDIRECT_HOSTS=hosts,
                      WEB_CONCURRENCY=1, GUNICORN_THREADS=1)  # fmt: skip
        for _ in range(2):
            for i in range(len(others)):
                assert raw_request(proxy.port, f"/r{i}").status == 200
                assert raw_request(proxy.port, "/").status == 200
        assert all(len(other.seen) == 2 for other in others)
    finally:
        for other in others:
            other.stop()


def test_a_connection_we_asked_to_close_is_never_reused(serve, upstream):
    """The recording upstream closes after each answer (we send Connection: close) without
    saying so in its HTTP/1.1 answer; a socket reused before its FIN arrives failed about one
    request in 200 under load (502 RemoteDisconnected). 300 in a row: none may fail."""
    proxy = serve("proxy", PROXYURL=upstream.url)
    failed = [i for i in range(300) if raw_request(proxy.port, f"/n{i}").status >= 500]
    assert failed == []
    assert len(upstream.seen) == 300
