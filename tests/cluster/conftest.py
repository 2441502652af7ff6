"""Fixtures for the local cluster's tests: they talk to its real API server, nothing is mocked.

`make test-cluster` starts the cluster first; the session fixture also runs the (idempotent)
`cluster/cluster.sh up`, so running pytest directly works too.
"""

import uuid
from collections.abc import Callable, Iterator

import pytest
from cluster_live import new_api_client, run_cluster
from kubernetes import client


@pytest.fixture(scope="session")
def api() -> Iterator[client.ApiClient]:
    result = run_cluster("up")
    assert result.returncode == 0, f"cluster/cluster.sh up failed:\n{result.stderr[-3000:]}"
    with new_api_client() as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def make_namespace(core: client.CoreV1Api) -> Iterator[Callable[..., str]]:
    """Creates throw-away namespaces (deleted after the test): make_namespace(labels={...})."""
    created = []

    def make(labels: dict[str, str] | None = None) -> str:
        name = f"test-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        created.append(name)
        return name

    yield make
    for name in created:
        core.delete_namespace(name)
