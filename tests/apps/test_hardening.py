"""What an adversarial probe found, one section per class (docs/apps.md lists the limits).

Real gunicorn on loopback, raw request bytes, and hostile upstreams (apps_live.HostileUpstream)
and clients written for each class. time.sleep appears only as the pace of a hostile peer.
"""

import ast
import gzip
import os
import re
import shutil
import socket
import subprocess
import time
import zlib
from pathlib import Path

import pytest
import requests
import urllib3
from apps_live import APPS, DEADLINE, SERVE, HostileUpstream, raw_request, wait_for

TOOK = re.compile(rb" - Took (\d+) milliseconds$")


def took(body):
    match = TOOK.search(body)
    assert match, body
    return int(match[1])


@pytest.fixture
def hostile():
    started = []

    def start(behaviours, host="127.0.0.1"):
        server = HostileUpstream(behaviours, host)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# ---------------------------------------------------------------- A: public APIs only
def test_proxy_uses_no_private_api_of_requests_or_urllib3():
    """No `_`-prefixed attribute of a requests/urllib3 class, no private import, no override
    of a private method, no subclass of requests.Response (the cookie-jar-less one was)."""
    sources = [(APPS / "proxy" / name).read_text() for name in ("proxy.py", "upstream.py")]
    tree = ast.Module([node for source in sources for node in ast.parse(source).body], [])
    private = set()  # every _name (not __dunder__) defined on a class of requests or urllib3
    for package in (requests, urllib3):
        for path in Path(package.__file__).parent.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    for item in ast.walk(node):
                        name = getattr(item, "name", None) or getattr(item, "attr", None)
                        if name and name.startswith("_") and not name.startswith("__"):
                            private.add(name)
    problems = []
    for node in ast.walk(tree):
        package = node.module.split(".")[0] if isinstance(node, ast.ImportFrom) else None
        if package in ("requests", "urllib3"):
            for part in [*node.module.split("."), *(alias.name for alias in node.names)]:
                if part.startswith("_"):
                    problems.append(f"line {node.lineno}: private import {part}")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if any(part.startswith("_") for part in alias.name.split(".")):
                    problems.append(f"line {node.lineno}: private import {alias.name}")
        if isinstance(node, ast.Attribute) and node.attr in private:
            problems.append(f"line {node.lineno}: .{node.attr} is private to requests/urllib3")
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(base) for base in node.bases}
            if bases & {"requests.Response", "Response", "requests.models.Response"}:
                problems.append(f"line {node.lineno}: {node.name} subclasses requests.Response")
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name in private:
                    problems.append(f"line {item.lineno}: overrides private {item.name}")
                if isinstance(item, ast.FunctionDef) and item.name == "build_response":
                    problems.append(f"line {item.lineno}: overrides build_response")
    assert "_content" in private  # the check knows requests' internals
    assert problems == []


# ---------------------------------------------------------------- 1: request targets
@pytest.mark.parametrize(
    ("method", "target", "reason"),
    [
        ("CONNECT", "127.0.0.1:1", b"CONNECT is not supported"),  # authority-form (was a 500)
        ("CONNECT", "/x", b"CONNECT is not supported"),
        ("OPTIONS", "*", b"asterisk-form"),
        ("GET", "ftp://evil.com/x", b"expected a path starting with '/' or an http(s) URL"),
        ("GET", "/..;/admin", b"'.' or '..' segment"),  # Tomcat-style traversal
        ("GET", "/a/.;x/b", b"'.' or '..' segment"),
        ("GET", "/%2e%2e;p/admin", b"'.' or '..' segment"),
    ],
)
def test_targets_that_are_not_plain_paths_get_a_4xx_with_a_reason(
    serve, upstream, method, target, reason
):
    # PROXYURL with a port and a base path: "CONNECT host:1" used to become ".../base1"
    proxy = serve("proxy", PROXYURL=upstream.url)
    before = len(upstream.seen)
    response = raw_request(proxy.port, target, method=method)
    assert response.status == 400, response
    assert reason in response.body
    assert upstream.seen[before:] == []


@pytest.mark.parametrize(
    ("target", "upstream_path"),
    [
        ("http://evil.com", "/base"),  # absolute-form without a path: PROXYURL itself
        ("HTTPS://evil.com/x?q", "/base/x"),  # only the path, on PROXYURL
        ("/a;p=1/b;q", "/base/a;p=1/b;q"),  # path parameters pass verbatim (documented)
        ("/..a/b..", "/base/..a/b.."),  # dots inside a segment are fine
    ],
)
def test_absolute_form_and_path_parameters_map_to_a_path_under_proxyurl(
    serve, upstream, target, upstream_path
):
    proxy = serve("proxy", PROXYURL=upstream.url)
    assert raw_request(proxy.port, target).status == 200
    assert upstream.seen[-1].path == upstream_path


def test_redirects_must_stay_under_the_base_path_in_whole_segments(serve, upstream):
    """A same-origin redirect that leaves the base path is refused (documented): the base
    path confines what the client can reach, an upstream's open redirect must not widen it."""
    base = f"http://127.0.0.1:{upstream.port}"
    upstream.redirects.update(
        {
            "/a": "/base-admin",  # a string prefix of /base, not under it
            "/b": "/admin",
            "/c": "/base/../admin",  # urljoin resolves it to /admin
            "/d": "/base/%2e%2e/admin",  # the upstream would decode it
            "/e": f"{base}/basement",
            "/ok": f"{base}/base/inside",
        }
    )
    proxy = serve("proxy", PROXYURL=upstream.url)
    for target in ("/a", "/b", "/c", "/d", "/e"):
        response = raw_request(proxy.port, target)
        assert response.status == 502, target
        assert b"refused: it leaves PROXYURL's base path" in response.body, target
    assert raw_request(proxy.port, "/ok").body.startswith(b"Proxying value: upstream saw /base/")


def test_no_request_target_or_method_gives_a_5xx(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url)
    web = serve("webserver")
    targets = ["*", "/", "x:1", "127.0.0.1:99999", "[::1]:80", "http://[::1/x", "https://e/",
               "http://e", "/%5b", "/[", "/]", "//", "/;", "/..;", "/a/..%3b/b"]  # fmt: skip
    for method in ("GET", "HEAD", "POST", "OPTIONS", "CONNECT", "DELETE"):
        for target in targets:
            for server in (proxy, web):
                response = raw_request(server.port, target, method=method)
                assert response.status < 500, (server.app, method, target, response)


# ---------------------------------------------------------------- 2: total deadline
def _trickle(data, pause=0.05):
    def behaviour(sock):
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
            time.sleep(pause)  # the hostile pace: one byte every `pause` s

    return behaviour


def _endless(unit, pause=0.05):
    def behaviour(sock):
        while True:
            sock.sendall(unit)
            time.sleep(pause)

    return behaviour


def test_every_upstream_exchange_has_a_total_deadline(serve, hostile):
    """Each read is well within PROXY_READ_TIMEOUT=5, but the exchange never ends: 504 once
    PROXY_DEADLINE=1 has passed (tolerance: 1 s plus 3 s for a loaded 2-core machine)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    behaviours = {
        "/head": _trickle(head + b"x" * 100000),  # the example: a byte at a time
        "/continue": _endless(b"HTTP/1.1 100 Continue\r\n\r\n"),  # the example: endless 1xx
        "/body": lambda s: (s.sendall(head), _endless(b"x")(s)),
        "/chunked": lambda s: (
            s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            _endless(b"1\r\nx\r\n")(s),
        ),
        "/trailers": lambda s: (
            s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n"),
            _endless(b"X-Trailer: y\r\n")(s),
        ),
        "/no-length": lambda s: (s.sendall(b"HTTP/1.1 200 OK\r\n\r\n"), _endless(b"x")(s)),
        "/headers": lambda s: (s.sendall(b"HTTP/1.1 200 OK\r\n"), _endless(b"X-A: b\r\n")(s)),
    }
    for i in range(8):  # a redirect chain, each hop quick but slower in total than 1 s
        behaviours[f"/r{i}"] = lambda s, i=i: (
            time.sleep(0.25),  # hostile pace
            s.sendall(b"HTTP/1.1 302 Found\r\nLocation: /r%d\r\n\r\n" % (i + 1)),
        )  # fmt: skip
    up = hostile(behaviours)
    proxy = serve("proxy", PROXYURL=up.url, PROXY_DEADLINE=1, PROXY_READ_TIMEOUT=5,
                  PROXY_MAX_REDIRECTS=10, GUNICORN_THREADS=8)  # fmt: skip
    for target in (*(t for t in behaviours if not t.startswith("/r")), "/r0"):
        started = time.monotonic()
        response = raw_request(proxy.port, target)
        elapsed = time.monotonic() - started
        assert response.status == 504, (target, response)
        assert b"within PROXY_DEADLINE=1s (connect + headers + body" in response.body, target
        assert 1.0 <= elapsed < 4.0, (target, elapsed)
        assert 1000 <= took(response.body) < 4000, target
    assert raw_request(proxy.port, "/fine").body.startswith(b"Proxying value: ok - Took ")


def test_an_interim_response_as_the_answer_is_a_502(serve, hostile):
    up = hostile(
        {
            "/103": lambda s: s.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"),
            "/102": lambda s: s.sendall(b"HTTP/1.1 102 Processing\r\n\r\n"),
            "/100-then-200": lambda s: s.sendall(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"
            ),
        }
    )
    proxy = serve("proxy", PROXYURL=up.url, PROXY_DEADLINE=2)
    for target in ("/103", "/102"):
        response = raw_request(proxy.port, target)
        assert response.status == 502, target
        assert b"(an interim response) only" in response.body
    assert raw_request(proxy.port, "/100-then-200").body.startswith(b"Proxying value: fine")


# ---------------------------------------------------------------- 3: body cap
def _answer(body, *headers):
    def behaviour(sock):
        lines = [b"HTTP/1.1 200 OK", b"Content-Length: %d" % len(body), *headers]
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    return behaviour


def test_the_body_cap_bounds_wire_bytes_decoded_bytes_and_time(serve, hostile):
    cap = 100_000
    bomb = gzip.compress(b"\0" * 200_000_000, 9)  # ~200 KB on the wire: over the wire cap
    assert len(bomb) > cap
    small_bomb = gzip.compress(b"\0" * 50_000_000, 9)  # ~50 KB on the wire, 50 MB decoded
    assert len(small_bomb) < cap
    deflate_bomb = zlib.compress(b"A" * 50_000_000, 9)
    text = "grüße ".encode() * 1000
    up = hostile(
        {
            "/gzip-bomb": _answer(small_bomb, b"Content-Encoding: gzip"),  # the example
            "/deflate-bomb": _answer(deflate_bomb, b"Content-Encoding: deflate"),
            "/big-gzip-on-the-wire": _answer(bomb, b"Content-Encoding: gzip"),
            "/huge-length": lambda s: s.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\nxx"  # then nothing
            ),
            "/br": _answer(b"\x1b\x03\x00", b"Content-Encoding: br"),
            "/gzip-gzip": _answer(gzip.compress(b"x"), b"Content-Encoding: gzip, gzip"),
            "/truncated": _answer(gzip.compress(text)[:-20], b"Content-Encoding: gzip"),
            "/not-gzip": _answer(b"plain bytes", b"Content-Encoding: gzip"),
            "/gzip-ok": _answer(gzip.compress(text), b"Content-Encoding: gzip"),
            "/deflate-raw-ok": _answer(zlib.compress(text)[2:-4], b"Content-Encoding: deflate"),
        }
    )  # fmt: skip
    proxy = serve("proxy", PROXYURL=up.url, PROXY_MAX_BODY_BYTES=cap, PROXY_READ_TIMEOUT=30)
    expected = {
        "/gzip-bomb": b"larger than 100000 bytes once decoded",
        "/deflate-bomb": b"larger than 100000 bytes once decoded",
        "/big-gzip-on-the-wire": b"larger than 100000 bytes (PROXY_MAX_BODY_BYTES)",
        "/huge-length": b"larger than 100000 bytes (PROXY_MAX_BODY_BYTES)",
        "/br": b"only gzip and deflate are decoded",
        "/gzip-gzip": b"only gzip and deflate are decoded",
        "/truncated": b"truncated gzip",
        "/not-gzip": b"not valid gzip",
    }
    for target, reason in expected.items():
        started = time.monotonic()
        response = raw_request(proxy.port, target)
        assert response.status == 502, (target, response)
        assert reason in response.body, (target, response.body)
        assert time.monotonic() - started < 3.0, target  # no waiting for 1 TB, no 50 MB inflate
    for target in ("/gzip-ok", "/deflate-raw-ok"):
        response = raw_request(proxy.port, target)
        assert response.body.startswith(b"Proxying value: " + text + b" - Took "), target


# ---------------------------------------------------------------- 4: starvation
def _partial(port, data=b"GET /x HTTP/1.1\r\nHost: a\r\n"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    if data:
        sock.sendall(data)
    return sock


def _health_within(port, seconds):
    for target in ("/healthz", "/readyz"):
        started = time.monotonic()
        response = raw_request(port, target, timeout=seconds + 5)
        elapsed = time.monotonic() - started
        assert (response.status, response.body) == (200, b"ok")
        assert elapsed < seconds, f"{target} took {elapsed:.2f}s"


@pytest.mark.parametrize("app", ["webserver", "proxy"])
def test_health_answers_within_1s_with_200_partial_requests_held_open(serve, upstream, app):
    server = serve(app, PROXYURL=upstream.url, GUNICORN_HEADER_TIMEOUT=60)
    held = [_partial(server.port) for _ in range(150)]
    held += [_partial(server.port, b"") for _ in range(25)]  # silent connections
    held += [_partial(server.port, b"GET /") for _ in range(25)]  # half a request line
    try:
        wait_for(
            lambda: raw_request(server.port, "/readyz").status == 200, DEADLINE, "a first answer"
        )
        _health_within(server.port, 1.0)
        response = raw_request(server.port, "/status/200" if app == "webserver" else "/x")
        assert response.status == 200  # and ordinary requests still get a thread
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("app", ["webserver", "proxy"])
def test_health_answers_within_1s_with_50_concurrent_delay_10(serve, app):
    web = serve("webserver", GUNICORN_GRACEFUL_TIMEOUT=0)
    server = web if app == "webserver" else serve(
        "proxy", PROXYURL=f"http://127.0.0.1:{web.port}", GUNICORN_GRACEFUL_TIMEOUT=0
    )  # fmt: skip
    held = [_partial(server.port, b"GET /delay/10 HTTP/1.1\r\nHost: a\r\n\r\n") for _ in range(50)]
    try:
        # every one of the 4 threads (webserver) is asleep in /delay: poll until they are
        wait_for(
            lambda: len(_threads_sleeping(web)) >= 4, DEADLINE, "the webserver's threads in /delay"
        )
        _health_within(server.port, 1.0)
    finally:
        for sock in held:
            sock.close()


def _threads_sleeping(web):
    """Threads of the webserver's workers blocked in a sleep (/proc wchan)."""
    found = []
    for task in Path("/proc").glob("[0-9]*/task/[0-9]*"):
        try:
            status = (task / "status").read_text()
            if (
                f"PPid:\t{web.process.pid}\n" in status
                and "hrtimer" in (task / "wchan").read_text()
            ):
                found.append(task)
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    ("data", "trickle"),
    [
        (b"GET /x HTTP/1.1\r\nHost: a\r\n", False),  # the example: half a request
        (b"G", True),  # a byte now and then: still dropped at the deadline
        (b"GET /x HTTP/1.1\r\nHost: a\r\nX-Long: " + b"y" * 1000, False),
    ],
)
def test_slow_clients_are_answered_408_and_dropped_after_the_header_timeout(serve, data, trickle):
    web = serve("webserver", GUNICORN_HEADER_TIMEOUT=2)
    sock = _partial(web.port, data)
    started = time.monotonic()
    received = b""
    sock.settimeout(0.3)
    while True:
        if trickle:
            try:
                sock.sendall(b"E")
            except OSError:
                pass
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            chunk = None
        except OSError:
            chunk = b""
        if chunk:
            received += chunk
        elif chunk == b"":
            break
        assert time.monotonic() - started < 10, "the slow client was never dropped"
    sock.close()
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 6.0, elapsed  # GUNICORN_HEADER_TIMEOUT, checked about once a second
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received
    assert b"(GUNICORN_HEADER_TIMEOUT)" in received


def test_a_kept_alive_connection_with_half_a_next_request_holds_no_thread(serve):
    web = serve("webserver", GUNICORN_THREADS=1, GUNICORN_HEADER_TIMEOUT=60)
    sock = _partial(web.port, b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
    try:
        wait_for(lambda: b"with code 200" in sock.recv(4096), DEADLINE, "the first answer")
        sock.sendall(b"GET /b HTTP/1.1\r\nHost: a\r\n")  # ...and the rest never comes
        assert raw_request(web.port, "/status/200").status == 200  # the one thread is free
    finally:
        sock.close()


def test_a_pipelined_probe_with_a_body_is_not_answered_in_the_event_loop(serve):
    web = serve("webserver")
    sock = _partial(web.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
    sock.settimeout(DEADLINE)
    received = [b""]
    try:
        wait_for(lambda: received.append(received[-1] + sock.recv(4096)) or received[-1].endswith(b"\r\n\r\nok"), DEADLINE, "the probe's answer")  # fmt: skip  # noqa: E501
    finally:
        sock.close()


# ---------------------------------------------------------------- 5: /failsometimes per worker
def _worker_of(server, sock):
    """The pid of the worker process holding the server side of client socket `sock`."""
    client_port = sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server.port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            inode = fields[9]
    assert inode, "the server side of the connection"
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == f"socket:[{inode}]" and int(fd.parts[2]) != os.getpid():
                return int(fd.parts[2])
        except OSError:
            continue
    return None


def _sequence(sock, count):
    codes = []
    for _ in range(count):
        sock.sendall(b"GET /failsometimes HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while not re.search(rb"with code \d{3}$", data):
            data += sock.recv(4096)
        codes.append(int(data[-3:]))
    return codes


def _one_connection_per_worker(server):
    """Kept-alive connections until two are held by different workers (first answer read)."""
    by_worker, extra = {}, []
    for _ in range(60):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        wait_for(lambda sock=sock: sock.recv(4096), DEADLINE, "the probe answer")
        worker = _worker_of(server, sock)
        (extra if worker in by_worker else []).append(sock)
        by_worker.setdefault(worker, sock)
        if len(by_worker) == 2:
            break
    for sock in extra:
        sock.close()
    assert len(by_worker) == 2, "could not reach both workers"
    return list(by_worker.values())


N_DRAWS = 60  # two independent sequences of 60 draws at p=1/3 agree with P = (5/9)^60 < 1e-15


def test_unseeded_workers_draw_independent_sequences(serve):
    web = serve("webserver", WEB_CONCURRENCY=2)
    first, second = _one_connection_per_worker(web)
    try:
        # each connection's worker serves nothing else meanwhile: its first N_DRAWS draws
        a, b = _sequence(first, N_DRAWS), _sequence(second, N_DRAWS)
    finally:
        first.close()
        second.close()
    assert a != b, "two workers drew the identical sequence"
    assert 500 in a and 200 in a


def test_seeded_workers_draw_the_same_sequence_on_every_run(serve):
    runs = []
    for _ in range(2):
        web = serve("webserver", WEB_CONCURRENCY=2, FAIL_SEED=7)
        first, second = _one_connection_per_worker(web)
        try:
            runs.append((_sequence(first, N_DRAWS), _sequence(second, N_DRAWS)))
        finally:
            first.close()
            second.close()
        web.stop()
    assert runs[0][0] == runs[0][1] == runs[1][0] == runs[1][1]


# ---------------------------------------------------------------- 6: environment at start
@pytest.mark.parametrize(
    ("app", "env", "message"),
    [
        ("proxy", {"PROXYURL": "http://127.0.0.1:1/base#"}, "PROXYURL='http://127.0.0.1:1/base#'"),
        ("proxy", {"PROXYURL": "http://127.0.0.1:1/base?"}, "without credentials, query, fragment"),
        ("proxy", {"PROXYURL": "http://127.0.0.1:1/a b"}, "PROXYURL="),
        ("proxy", {"PROXYURL": "http://127.0.0.1:1/%zz"}, "PROXYURL="),
        ("proxy", {"PROXYURL": "http://127.0.0.1:1/a/../b"}, "dot segments"),
        ("proxy", {"PROXYURL": "http://ho$t/"}, "PROXYURL='http://ho$t/'"),
        ("proxy", {"PROXY_DEADLINE": "0"}, "PROXY_DEADLINE='0': expected a decimal number"),
        ("proxy", {"PROXY_CONNECT_TIMEOUT": "1e3"}, "PROXY_CONNECT_TIMEOUT='1e3'"),
        ("proxy", {"PROXY_MAX_REDIRECTS": " 5"}, "PROXY_MAX_REDIRECTS=' 5'"),
        ("proxy", {"PROXY_REDIRECT_HOSTS": "[::1"}, "PROXY_REDIRECT_HOSTS: '[::1'"),
        ("proxy", {"PROXY_REDIRECT_HOSTS": "a/b"}, "PROXY_REDIRECT_HOSTS: 'a/b'"),
        ("webserver", {"SERVERCONTENT": "bad \udcff byte"}, "SERVERCONTENT='bad \\udcff byte'"),
        ("webserver", {"SERVERCONTNET": "a\x1b[31m"}, "SERVERCONTNET="),
        ("webserver", {"SERVERCONTENT": "x" * 5000}, "at most 4096 bytes"),
        ("webserver", {"APP_VERSION": "v1\r\nX-Evil: 1"}, "APP_VERSION='v1\\r\\nX-Evil: 1'"),
        ("webserver", {"APP_VERSION": "v 1"}, "APP_VERSION='v 1'"),
        ("webserver", {"FAIL_SEED": "1e3"}, "FAIL_SEED='1e3': expected a whole number"),
        ("webserver", {"FAIL_RATE": " 0.5"}, "FAIL_RATE=' 0.5'"),
        ("webserver", {"DELAY_MAX_SECONDS": "nan"}, "DELAY_MAX_SECONDS='nan'"),
        ("webserver", {"WEB_CONCURRENCY": "1e3"}, "WEB_CONCURRENCY='1e3': expected a whole number"),
        ("proxy", {"WEB_CONCURRENCY": "two"}, "WEB_CONCURRENCY='two': expected a whole number"),
        ("webserver", {"WEB_CONCURRENCY": "1000"}, "WEB_CONCURRENCY='1000'"),
        ("webserver", {"GUNICORN_THREADS": "8_0"}, "GUNICORN_THREADS='8_0'"),
        ("webserver", {"GUNICORN_HEADER_TIMEOUT": "0"}, "GUNICORN_HEADER_TIMEOUT='0'"),
        ("webserver", {"ACCESS_LOG": "yes"}, "ACCESS_LOG='yes': expected on or off"),
        ("webserver", {"BIND_ADDRESS": "192.0.2.1"}, "BIND_ADDRESS='192.0.2.1': cannot listen"),
        ("webserver", {"BIND_ADDRESS": "not a host"}, "BIND_ADDRESS='not a host': expected"),
        ("webserver", {"PORT": "0"}, "PORT='0'"),
    ],
)
def test_bad_values_stop_the_start_naming_the_variable(serve, app, env, message):
    server = serve(app, wait=False, **{"PROXYURL": "http://127.0.0.1:1", **env})
    assert server.process.wait(timeout=DEADLINE) != 0
    assert message in server.log()


def test_good_unusual_values_are_accepted(serve):
    web = serve("webserver", wait=False, BIND_ADDRESS="::1", APP_VERSION="1.2.3+build-4",
                SERVERCONTENT="a\tb")  # fmt: skip

    def connected():
        assert web.process.poll() is None, web.log()
        try:
            return socket.create_connection(("::1", web.port), timeout=DEADLINE)
        except OSError:
            return None

    with wait_for(connected, DEADLINE, "the webserver on [::1]") as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert b"X-App-Version: 1.2.3+build-4" in sock.recv(4096)


# ---------------------------------------------------------------- 7: allow-list normalisation
def test_redirect_hosts_are_compared_normalised(serve, upstream, hostile):
    six = hostile({}, host="::1")
    other = hostile({})
    upstream.redirects.update(
        {
            "/ipv6": f"http://[::1]:{six.port}/x",  # the example: [::1] in the list
            "/ipv6-long": f"http://[0:0::0:1]:{six.port}/x",  # another spelling of ::1
            "/case-dot": f"http://LocalHost:{other.port}/x",  # case; the entry has a dot
            "/default-port": "http://allowed.invalid:80/x",  # entry without port: port 80
            "/other-port": f"http://allowed.invalid:{other.port}/x",  # not listed: refused
        }
    )
    hosts = f"[::1]:{six.port}, localhost.:{other.port}, ALLOWED.invalid."
    proxy = serve("proxy", PROXYURL=upstream.url, PROXY_REDIRECT_HOSTS=hosts)
    for target in ("/ipv6", "/ipv6-long", "/case-dot"):
        assert raw_request(proxy.port, target).body.startswith(b"Proxying value: ok"), target
    assert len(six.seen) == 2 and len(other.seen) == 1
    response = raw_request(proxy.port, "/default-port")  # allowed: then the name does not resolve
    assert response.status == 502 and b"cannot connect to the upstream" in response.body
    response = raw_request(proxy.port, "/other-port")
    assert response.status == 502 and b"refused: only PROXYURL's origin" in response.body


def test_same_origin_is_recognised_in_any_spelling(serve, upstream):
    upstream.redirects["/r"] = f"HTTP://LOCALHOST:{upstream.port}/base/x"
    upstream.redirects["/r2"] = "http://[::ffff:127.0.0.1]/x"  # not the same origin
    proxy = serve("proxy", PROXYURL=f"http://LocalHost:{upstream.port}/base")
    assert raw_request(proxy.port, "/r").body.startswith(b"Proxying value: upstream saw /base/x")
    assert b"refused: only PROXYURL's origin" in raw_request(proxy.port, "/r2").body


# ---------------------------------------------------------------- 8: read-only surroundings
@pytest.mark.parametrize(
    ("directory", "problem"),
    [("/proc", "/proc: "), ("/nonexistent", "No such file"), ("/etc/hostname", "/etc/hostname")],
)
def test_an_unwritable_worker_tmp_dir_stops_the_start_saying_what_to_fix(serve, directory, problem):
    web = serve("webserver", wait=False, GUNICORN_WORKER_TMP_DIR=directory)
    assert web.process.wait(timeout=DEADLINE) != 0
    log = web.log()
    assert f"GUNICORN_WORKER_TMP_DIR={directory!r}: gunicorn needs a writable directory" in log
    assert problem in log and "Traceback" not in log


def _in_read_only_dev_shm(command, env, tmp):
    """`command` in a mount namespace where /dev/shm (and, with tmp=None, /tmp) is read-only."""
    mounts = "mount -t tmpfs -o ro tmpfs /dev/shm"
    if tmp is None:  # and every other place tempfile would try: a read-only root filesystem
        for directory in ("/tmp", "/var/tmp", "/usr/tmp", str(APPS / "webserver")):  # noqa: S108
            if os.path.isdir(directory):
                mounts += f" && mount --bind {directory} {directory}"
                mounts += f" && mount -o remount,ro,bind {directory}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", f'{mounts} && exec "$@"', "sh", *command],
        env=env, cwd=APPS / "webserver", capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip


@pytest.mark.skipif(
    not shutil.which("unshare") or os.geteuid() != 0, reason="needs root and unshare"
)
def test_a_read_only_dev_shm_falls_back_or_says_what_to_fix():
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode:
        pytest.skip("no mount namespaces here")
    tmp = "/tmp"  # noqa: S108 (the fallback under test)
    env = {"PATH": os.environ["PATH"], "TMPDIR": tmp}
    fell_back = _in_read_only_dev_shm([*SERVE, "--print-config"], env, tmp=tmp)
    assert fell_back.returncode == 0, fell_back.stderr
    assert re.search(r"^worker_tmp_dir\s+= /tmp$", fell_back.stdout, re.M)
    stopped = _in_read_only_dev_shm([*SERVE, "--print-config"], env, tmp=None)
    assert stopped.returncode != 0
    assert "no writable directory: gunicorn needs a writable directory" in stopped.stderr
    assert "/dev/shm: Read-only file system" in stopped.stderr  # noqa: S108


def test_the_checks_above_cover_every_variable_the_apps_read():
    """Every os.environ read in the apps is one docs/apps.md documents."""
    docs = (APPS.parent / "docs" / "apps.md").read_text()
    names = set()
    read = re.compile(r"""(?:env\w*|_readable|os\.environ\.get)\(\s*["']([A-Z_]+)""")
    for path in APPS.glob("*/*.py"):  # the apps, their gunicorn settings and worker, serve.py
        names |= set(read.findall(path.read_text()))
    names |= {"SERVERCONTENT", "SERVERCONTNET"}
    assert names, "no variables found"
    missing = sorted(name for name in names if f"`{name}`" not in docs)
    assert missing == []
