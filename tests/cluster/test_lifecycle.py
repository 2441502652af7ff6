"""cluster-down stops every process it started; the next cluster-up brings the same cluster back."""

import socket
from pathlib import Path

import pytest
from cluster_live import (
    INSTANCE,
    STATE_DIR,
    marked_processes,
    new_api_client,
    readyz,
    run_cluster,
)
from kubernetes import client

pytestmark = pytest.mark.cluster


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_down_leaves_no_process_and_up_restores_the_cluster(core, make_namespace):
    namespace = make_namespace()
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "survivor"}})
    component_pids = {
        pid_file.stem: int(pid_file.read_text()) for pid_file in (STATE_DIR / "run").glob("*.pid")
    }
    assert {"etcd", "kube-apiserver", "kube-controller-manager"} <= component_pids.keys()
    assert all(Path(f"/proc/{pid}").exists() for pid in component_pids.values())
    ports = [
        INSTANCE.port("CLUSTER_APISERVER_PORT", 6443),
        INSTANCE.port("CLUSTER_ETCD_CLIENT_PORT", 2379),
    ]

    # The cluster is brought back up whatever the assertions say, for the tests that follow.
    down = run_cluster("down")
    left = marked_processes()
    still_listening = [port for port in ports if listening(port)]
    pid_files_left = list((STATE_DIR / "run").glob("*.pid"))
    up = run_cluster("up")

    assert down.returncode == 0
    assert not left, f"processes left after cluster-down: {left}"
    assert not [name for name, pid in component_pids.items() if Path(f"/proc/{pid}").exists()]
    assert not still_listening, f"ports still open after cluster-down: {still_listening}"
    assert not pid_files_left

    assert up.returncode == 0
    with new_api_client() as api:
        assert readyz(api) == "ok"
        # State lives in etcd's data directory, so it survives the restart.
        assert client.CoreV1Api(api).read_namespaced_config_map("survivor", namespace)
