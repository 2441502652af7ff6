"""Fixtures of the app tests: real gunicorn processes and recording upstreams on loopback."""

import pytest
from apps_live import Gunicorn, RecordingUpstream


@pytest.fixture
def serve(tmp_path):
    """serve(app, **env) starts a real gunicorn serving `app`; all are stopped afterwards."""
    started = []

    def start(app, wait=True, **env):
        server = Gunicorn(app, tmp_path, {k: str(v) for k, v in env.items()})
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
