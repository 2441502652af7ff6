"""The webserver, served by a real gunicorn on loopback."""

import http.client
import math
import socket
import time

import pytest
from apps_live import raw_request

HOST = socket.gethostname()


def seed_body(content, path, code):
    """The seed's JS: content + " requested from " + pathname + " on " + hostname + ..."""
    return f"{content} requested from {path} on {HOST} with code {code}".encode()


def statuses(port, path, count):
    """`count` GETs on one kept-alive connection; the status of each, in order."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    codes = []
    for _ in range(count):
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        assert body.endswith(b" with code %d" % response.status)
        codes.append(response.status)
    conn.close()
    return codes


def binomial_bounds(n, p, tail=1e-6):
    """[low, high] holding a Binomial(n, p) count except with probability < 2 * tail."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    low, acc = 0, 0.0
    while acc + pmf[low] < tail:
        acc += pmf[low]
        low += 1
    high, acc = n, 0.0
    while acc + pmf[high] < tail:
        acc += pmf[high]
        high -= 1
    return low, high


@pytest.mark.parametrize(
    ("env", "content"),
    [
        ({}, "Hello world"),
        ({"SERVERCONTNET": "WebServer V1"}, "WebServer V1"),  # the seed's own spelling
        ({"SERVERCONTENT": "WebServer V2"}, "WebServer V2"),
        ({"SERVERCONTENT": "right", "SERVERCONTNET": "misspelt"}, "right"),
        ({"SERVERCONTENT": "Grüße ✓"}, "Grüße ✓"),
    ],
)
def test_body_is_the_seeds_byte_for_byte(serve, env, content):
    web = serve("webserver", **env)
    response = raw_request(web.port, "/")
    assert (response.status, response.body) == (200, seed_body(content, "/", 200))


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/some/path", "/some/path"),
        ("/q?x=1&y=2", "/q"),  # Node's url.parse(...).pathname drops the query
        ("/a%20b/%2e%2e", "/a%20b/%2e%2e"),  # ... and keeps the path as sent (not decoded)
        ("http://example.com/abs?x", "/abs"),  # absolute-form target: its path
        ("//double//slash", "//double//slash"),
    ],
)
def test_path_is_reported_like_nodes_pathname(serve, target, path):
    web = serve("webserver")
    assert raw_request(web.port, target).body == seed_body("Hello world", path, 200)


def test_every_response_is_plain_text_nosniff_with_the_version(serve):
    web = serve("webserver", APP_VERSION="v2")
    for target in ("/", "/healthz", "/readyz", "/status/503", "/status/abc", "/delay/x"):
        response = raw_request(web.port, target)
        assert response.headers["content-type"] == "text/plain; charset=utf-8", target
        assert response.headers["x-content-type-options"] == "nosniff", target
        assert response.headers["x-app-version"] == "v2", target
    for malformed in ("/a b", "@evil.com/x"):  # answered by gunicorn itself
        response = raw_request(web.port, malformed)
        assert response.status == 400, malformed
        assert response.headers["content-type"] == "text/plain; charset=utf-8", malformed
        assert response.headers["x-content-type-options"] == "nosniff", malformed
    unversioned = serve("webserver")
    assert "x-app-version" not in raw_request(unversioned.port, "/").headers


def test_probes(serve):
    web = serve("webserver")
    for target in ("/healthz", "/readyz"):
        assert (raw_request(web.port, target).status, raw_request(web.port, target).body) == (
            200,
            b"ok",
        )


def test_status_answers_the_code_in_the_seeds_body(serve):
    web = serve("webserver")
    for code in (200, 404, 418, 503):
        response = raw_request(web.port, f"/status/{code}")
        assert (response.status, response.body) == (
            code,
            seed_body("Hello world", f"/status/{code}", code),
        )
    for bad in (
        "/status/99",
        "/status/600",
        "/status/abc",
        "/status/",
        "/status/204",
        "/status/%35%30%33",
    ):
        response = raw_request(web.port, bad)
        assert response.status == 400, bad
        assert b"status" in response.body


def test_delay_is_bounded(serve):
    web = serve("webserver", DELAY_MAX_SECONDS=1)
    started = time.monotonic()
    response = raw_request(web.port, "/delay/0.3")
    assert time.monotonic() - started >= 0.3
    assert response.body == seed_body("Hello world", "/delay/0.3", 200)
    for bad in ("/delay/1.5", "/delay/-1", "/delay/nan", "/delay/inf", "/delay/x"):
        response = raw_request(web.port, bad)
        assert response.status == 400, bad
        assert b"DELAY_MAX_SECONDS" in response.body


def test_a_slow_pod_delays_every_answer_but_the_probes(serve):
    web = serve("webserver", RESPONSE_DELAY_SECONDS=0.3)
    started = time.monotonic()
    assert raw_request(web.port, "/healthz").status == 200
    assert time.monotonic() - started < 0.3
    started = time.monotonic()
    response = raw_request(web.port, "/")
    assert time.monotonic() - started >= 0.3
    assert response.body == seed_body("Hello world", "/", 200)


def test_failsometimes_fails_a_third_of_the_time(serve):
    """Binomial bounds: a correct 1/3 rate falls outside them with probability < 2e-6."""
    web = serve("webserver")
    n = 900
    failures = statuses(web.port, "/failsometimes", n).count(500)
    low, high = binomial_bounds(n, 1 / 3)
    assert low <= failures <= high, f"{failures}/{n} failures, expected {low}-{high}"
    # The bounds exclude rates a little off 1/3, e.g. 1/4 and 1/2.
    assert high < n / 2 and low > n / 4
    # Other paths never fail.
    assert set(statuses(web.port, "/", 100)) == {200}


def test_fail_seed_makes_failures_reproducible(serve):
    first = statuses(serve("webserver", FAIL_SEED=42).port, "/failsometimes", 300)
    again = statuses(serve("webserver", FAIL_SEED=42).port, "/failsometimes", 300)
    other = statuses(serve("webserver", FAIL_SEED=43).port, "/failsometimes", 300)
    assert first == again
    assert first != other
    low, high = binomial_bounds(300, 1 / 3)
    assert low <= first.count(500) <= high


@pytest.mark.parametrize(("rate", "expected"), [("0", {200}), ("1", {500})])
def test_fail_rate_is_configurable(serve, rate, expected):
    web = serve("webserver", FAIL_RATE=rate)
    assert set(statuses(web.port, "/failsometimes", 50)) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FAIL_RATE": "2"}, "FAIL_RATE='2'"),
        ({"FAIL_SEED": "abc"}, "FAIL_SEED='abc'"),
        ({"DELAY_MAX_SECONDS": "-1"}, "DELAY_MAX_SECONDS='-1'"),
        ({"RESPONSE_DELAY_SECONDS": "61"}, "RESPONSE_DELAY_SECONDS='61'"),
        ({"GUNICORN_THREADS": "0"}, "GUNICORN_THREADS='0'"),
        ({"PORT": "http"}, "PORT='http'"),
    ],
)
def test_bad_settings_stop_the_start_with_a_message(serve, env, message):
    web = serve("webserver", wait=False, **env)
    assert web.process.wait(timeout=20) != 0
    assert message in web.log()


def test_connections_are_kept_alive(serve):
    web = serve("webserver")
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            data = b""
            while not data.endswith(b"with code 200"):
                chunk = sock.recv(4096)
                assert chunk, "the server closed a kept-alive connection"
                data += chunk
            assert b"Connection: keep-alive" in data or b"Connection: close" not in data
