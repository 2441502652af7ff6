"""The local cluster's real node, for the suites whose pods must really serve (tests/e2e,
tests/mesh): the API client, refused unless the cluster runs in real node mode, and namespaces
deleted until they are gone."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from polling import wait_for

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = REPO / ".cluster"
KUBECONFIG = STATE_DIR / "kubeconfig"
CONTEXT = "mesh-playground"


def real_node_api(who: str, remedy: str) -> Iterator[client.ApiClient]:
    """An API client of the local cluster (for a fixture to yield from); the test fails, saying
    `who` needs the real node and `remedy`, unless the cluster runs in real node mode."""
    mode_file = STATE_DIR / "run" / "node-mode"
    mode = mode_file.read_text().strip() if mode_file.exists() else "none (cluster not running)"
    if mode != "real":
        pytest.fail(f"{who}, the cluster's node mode is {mode}: {remedy}")
    with config.new_client_from_config(config_file=str(KUBECONFIG), context=CONTEXT) as api_client:
        yield api_client


def namespace_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as error:
        return error.status == 404
    return False


def delete_namespace(core: client.CoreV1Api, name: str, timeout: float = 180) -> None:
    """Deletes namespace `name` (if it is there) and waits until it is gone."""
    try:
        core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise
    wait_for(lambda: namespace_gone(core, name), timeout, f"namespace {name} deleted")
