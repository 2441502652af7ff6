"""A second local cluster beside the first, from the same checkout: its own API server, etcd
data, ports, kubeconfig and context (cluster.sh --name), KWOK nodes only; `down` of one leaves
the other running."""

from pathlib import Path

import pytest
from cluster_live import (
    INSTANCE,
    Instance,
    marked_processes,
    readyz,
    run_cluster,
)
from kubernetes import client

pytestmark = pytest.mark.cluster

# The instance this test starts and stops beside the one under test (CLUSTER_NAME, default).
SECOND = Instance("second" if INSTANCE.name != "second" else "third")


def identity(api: client.ApiClient) -> str:
    """A cluster's identity: the UID of namespace kube-system (made once, with its etcd data)."""
    return client.CoreV1Api(api).read_namespace("kube-system").metadata.uid


def component_pids(instance: Instance) -> dict[str, int]:
    run = instance.state_dir / "run"
    return {pid_file.stem: int(pid_file.read_text()) for pid_file in run.glob("*.pid")}


def test_a_named_cluster_refuses_the_real_node():
    result = run_cluster("up", instance=SECOND, env={"CLUSTER_NODE_MODE": "real"})
    assert result.returncode != 0
    assert "one real node per machine" in result.stderr
    assert not marked_processes(SECOND.marker)


def test_second_cluster_beside_the_first_and_down_of_it_leaves_the_first(api):
    first_identity = identity(api)
    first_pids = component_pids(INSTANCE)
    assert {"etcd", "kube-apiserver"} <= first_pids.keys()
    was_running = run_cluster("status", instance=SECOND).returncode == 0

    try:
        up = run_cluster("up", instance=SECOND)
        assert up.returncode == 0, up.stderr[-3000:]
        assert f"kubeconfig: {SECOND.kubeconfig} (context {SECOND.context})" in up.stdout
        api_port = SECOND.port("CLUSTER_APISERVER_PORT", 6443)
        with SECOND.api_client() as second_api:
            assert second_api.configuration.host == f"https://127.0.0.1:{api_port}"
            assert second_api.configuration.host != api.configuration.host
            assert readyz(second_api) == "ok"
            second_identity = identity(second_api)
            nodes = client.CoreV1Api(second_api).list_node().items
        assert second_identity != first_identity, "both kubeconfigs reach the same cluster"
        # Each has its own CA too (the identity the inventories check).
        first_ca = (INSTANCE.state_dir / "pki" / "ca.crt").read_bytes()
        assert (SECOND.state_dir / "pki" / "ca.crt").read_bytes() != first_ca
        assert nodes
        assert {node.metadata.labels.get("type") for node in nodes} == {"kwok"}
        second_processes = marked_processes(SECOND.marker)
        assert second_processes
        assert not set(second_processes) & set(marked_processes(INSTANCE.marker))
        assert readyz(api) == "ok"

        down = run_cluster("down", instance=SECOND)
        assert down.returncode == 0
        assert not marked_processes(SECOND.marker), "processes of the second cluster left"
        assert not list((SECOND.state_dir / "run").glob("*.pid"))
        # The first cluster was not touched: same processes, same cluster, still serving.
        assert component_pids(INSTANCE) == first_pids
        assert all(Path(f"/proc/{pid}").exists() for pid in first_pids.values())
        assert readyz(api) == "ok"
        assert identity(api) == first_identity
    finally:  # the second cluster is left as it was found
        run_cluster("up" if was_running else "down", instance=SECOND)
