"""The local cluster's real node, for the suites whose pods must really serve (tests/e2e,
tests/mesh): the API client, refused unless the cluster runs in real node mode, and namespaces
deleted until they are gone."""

import subprocess
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


def istioctl_analyze(namespace: str) -> str:
    """`istioctl analyze` of `namespace` on the local cluster (istioctl built first when missing:
    no deploy needs it); fails the test on an analyzer error, returns what it printed."""
    build = REPO / "cluster" / "istio-build.sh"
    built = subprocess.run(
        [build, "istioctl"], capture_output=True, text=True, timeout=1800, check=False
    )
    assert built.returncode == 0, f"cluster/istio-build.sh istioctl failed:\n{built.stderr[-4000:]}"
    home = subprocess.run(
        [build, "path", "istio"], capture_output=True, text=True, check=True
    ).stdout.strip()
    result = subprocess.run(
        [
            f"{home}/bin/istioctl",
            "analyze",
            "--kubeconfig",
            str(KUBECONFIG),
            "--context",
            CONTEXT,
            "-n",
            namespace,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Error [" not in output, (
        f"istioctl analyze reported errors:\n{output}"
    )
    return output
