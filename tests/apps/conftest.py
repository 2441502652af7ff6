"""Fixtures of the app tests: real gunicorn processes and recording upstreams on loopback."""

import pytest
from apps_live import (
    Gunicorn,
    RecordingUpstream,
    SilentServer,
    StubKubernetes,
    StubPrometheus,
    deployments,
    istio_objects,
    split_80_20,
)


@pytest.fixture
def serve(tmp_path):
    """serve(app, **env) starts a real gunicorn serving `app`; all are stopped afterwards."""
    started = []

    def start(app, wait=True, **env):
        server = Gunicorn(app, tmp_path, {k: None if v is None else str(v) for k, v in env.items()})
        started.append(server)
        return server.start(wait=wait)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def upstream():
    """A recording upstream under the base path /base."""
    server = RecordingUpstream(base="/base").start()
    yield server
    server.stop()


@pytest.fixture
def other_upstream():
    server = RecordingUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def prometheus():
    """A stub Prometheus holding the series' 80/20 split (apps_live.split_80_20)."""
    server = StubPrometheus(split_80_20())
    yield server
    server.stop()


@pytest.fixture
def kubernetes(tmp_path):
    """A stub Kubernetes API listing the namespace's Istio objects and Deployments to a bearer
    token, and the view's settings to reach it (KUBE_API_URL, KUBE_TOKEN_FILE)."""
    token = tmp_path / "token"
    token.write_text("view-token\n")
    server = StubKubernetes("view-token", {**istio_objects(), "Deployment": deployments()})
    server.env = {"KUBE_API_URL": server.url, "KUBE_TOKEN_FILE": str(token)}
    yield server
    server.stop()


@pytest.fixture
def silent():
    """A server that accepts connections and never answers."""
    server = SilentServer()
    yield server
    server.stop()
