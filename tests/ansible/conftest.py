"""Fixtures of the "used as its users use it" suite: real ansible-galaxy, real ansible-playbook,
the real local cluster (and a second one), nothing mocked."""

from collections.abc import Iterator

import pytest
from ansible_live import CONTEXT, KUBECONFIG, run
from kubernetes import client, config


@pytest.fixture(scope="session")
def local_api() -> Iterator[client.ApiClient]:
    up = run("cluster/cluster.sh", "up")
    assert up.returncode == 0, up.stderr[-3000:]
    with config.new_client_from_config(str(KUBECONFIG), context=CONTEXT) as api:
        yield api
