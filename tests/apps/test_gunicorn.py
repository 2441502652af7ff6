"""How gunicorn serves both apps: settings, JSON access log, graceful shutdown."""

import subprocess
import threading

import pytest
from apps_live import APPS, DEADLINE, POLL, SERVE, raw_request
from polling import wait_for


@pytest.mark.parametrize("app", ["proxy", "webserver", "view"])
def test_settings_come_from_the_environment(app):
    env = {"PATH": "/usr/bin:/bin", "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "5", "PORT": "4040"}
    if app == "view":
        env["PROMETHEUS_URL"] = "http://127.0.0.1:9090"  # required
    printed = subprocess.run(
        [*SERVE, "--print-config"],
        cwd=APPS / app,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=DEADLINE,
    ).stdout
    settings = {}
    for line in printed.splitlines():  # "name   = value"
        name, _, value = line.partition("=")
        settings[name.strip()] = value.strip()
    assert settings["wsgi_app"] == f"{app}:application"
    assert settings["bind"] == "['127.0.0.1:4040']"  # loopback unless BIND_ADDRESS says otherwise
    assert settings["workers"] == "3"
    assert settings["threads"] == "5"
    assert settings["worker_class"] == "<GuardedThreadWorker()>"  # gthread, heads read in its loop
    assert settings["worker_tmp_dir"] == "/dev/shm"  # noqa: S108 (read-only root fs)
    assert settings["control_socket_disable"] == "True"  # no socket file under $HOME either
    assert settings["forwarded_allow_ips"] == "[]"  # no peer may rewrite scheme or paths
    assert int(settings["keepalive"]) > 3600  # outlives Envoy's default 1 h idle timeout
    assert settings["logger_class"] == "<JsonAccessLogger()>"


def test_access_log_is_one_json_object_per_line(serve):
    web = serve("webserver", DELAY_MAX_SECONDS=1)
    tricky = 'id "quoted" \\ back\\slash {}%s caf\xe9'
    raw_request(web.port, "/delay/0.2?x=1", [("X-Request-Id", tricky), ("User-Agent", 'a"b')])

    def record():
        # access_log() json-parses every line starting with "{": a broken line fails here
        return [r for r in web.access_log() if r["x_request_id"] == tricky]

    (entry,) = wait_for(record, DEADLINE, "the access log line of the request", POLL)
    assert entry["method"] == "GET"
    assert entry["target"] == "/delay/0.2?x=1"
    assert entry["status"] == 200
    assert entry["user_agent"] == 'a"b'
    assert 200 <= entry["duration_ms"] < 5000
    assert entry["bytes"] > 0
    others = [line for line in web.log().splitlines() if not line.startswith(("{", "["))]
    assert others == []  # only JSON access lines and gunicorn's own "[date] ..." lines


def test_sigterm_lets_an_in_flight_request_finish(serve, upstream):
    proxy = serve("proxy", PROXYURL=upstream.url)
    result = {}
    client = threading.Thread(target=lambda: result.update(r=raw_request(proxy.port, "/hold")))
    client.start()
    wait_for(
        upstream.arrived.is_set, DEADLINE, "the request to be in flight (at the upstream)", POLL
    )
    proxy.terminate()

    def stopped_accepting():
        # The worker keeps the listening socket open until it exits, so the kernel still
        # queues new connections: a probe left unanswered shows the worker is stopping.
        try:
            raw_request(proxy.port, "/readyz", timeout=0.5)
            return False
        except OSError:
            return True

    wait_for(stopped_accepting, DEADLINE, "the worker to stop accepting after SIGTERM", POLL)
    assert proxy.process.poll() is None  # still running: the request is in flight
    upstream.release.set()
    client.join(DEADLINE)
    assert result["r"].status == 200
    assert result["r"].body.startswith(b"Proxying value: held - Took ")
    assert proxy.process.wait(timeout=DEADLINE) == 0
