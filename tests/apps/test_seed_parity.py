"""Differential parity: our apps and the seed's own Node.js apps answer the same bytes.

Runs the seed's JS (extracted from the seed text, see seed_node.py) next to our apps on
loopback. Skipped where node or the seed text is missing; the proxy comparison also needs the
`request` npm package, which `make bench` installs in ~/.cache/mesh-playground/seed-node.
"""

import re
import subprocess

import pytest
import seed_node
from apps_live import DEADLINE, POLL, free_port, raw_request
from polling import wait_for

pytestmark = pytest.mark.skipif(bool(seed_node.missing()), reason=str(seed_node.missing()))

TARGETS = [
    "/",
    "/some/path",
    "/q?x=1&y=2",
    "/a%20b/%2e%2e/c",
    "/caf%C3%A9",
    "//double//slash",
    "/trailing/",
    "/failsometimes?x",  # Node's 500s are random: compared with the status it drew
    "http://example.com/abs?x",
    "/~user/;p=1/@x:y",
]


@pytest.fixture
def node(tmp_path):
    seed_node.prepare()
    started = []

    def start(name, **env):
        port = free_port()
        log = open(tmp_path / f"node-{name}-{port}.log", "wb")
        started.append((seed_node.start(name, port, log, **env), log))

        def up():
            try:
                return raw_request(port, "/healthz", timeout=2)
            except OSError:
                return None

        wait_for(up, DEADLINE, f"the seed's node {name} on port {port}", POLL)
        return port

    yield start
    for process, log in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def responses(port, targets):
    result = []
    for target in targets:
        response = raw_request(port, target)
        result.append((target, response.status, response.body))
    return result


def test_webserver_answers_byte_for_byte_like_the_seed(serve, node):
    env = {"SERVERCONTNET": "WebServer V1 ✓"}
    ours = {code: serve("webserver", FAIL_RATE=rate, **env) for code, rate in ((200, 0), (500, 1))}
    theirs = node("webserver", **env)
    for target, status, body in responses(theirs, TARGETS):
        assert status in (200, 500)  # 500: /failsometimes, which Node fails one time in three
        assert responses(ours[status].port, [target]) == [(target, status, body)]


@pytest.mark.skipif(not seed_node.has_request(), reason="run `make bench` once: npm request")
def test_proxy_answers_like_the_seed(serve, node):
    """Same upstream (our webserver), same bodies except the measured milliseconds."""
    web = serve("webserver", FAIL_RATE=0, SERVERCONTNET="upstream")
    upstream = f"http://127.0.0.1:{web.port}"
    ours = serve("proxy", PROXYURL=upstream)
    theirs = node("proxy", PROXYURL=upstream)
    safe = [t for t in TARGETS if "%2e" not in t]  # our proxy refuses traversal (by design)

    def normalised(port):
        return [
            (target, re.sub(rb"Took \d+ milliseconds", b"Took N milliseconds", body))
            for target, _status, body in responses(port, safe)
        ]

    assert normalised(ours.port) == normalised(theirs)
