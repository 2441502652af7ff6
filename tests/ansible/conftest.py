"""Fixtures of the "used as its users use it" suite: real ansible-galaxy, real ansible-playbook,
the real local cluster (and a second one), nothing mocked."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = REPO / ".cluster" / "kubeconfig"
CONTEXT = "mesh-playground"


def run(*argv: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 900):
    """A command's result, output captured; pytest shows it when an assertion fails."""
    full_env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **(env or {}))
    full_env["PATH"] = f"{REPO / '.venv' / 'bin'}:{full_env['PATH']}"
    return subprocess.run(
        argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def local_api() -> Iterator[client.ApiClient]:
    up = run("cluster/cluster.sh", "up")
    assert up.returncode == 0, up.stderr[-3000:]
    with config.new_client_from_config(str(KUBECONFIG), context=CONTEXT) as api:
        yield api
