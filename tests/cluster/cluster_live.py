"""Helpers for the local cluster's tests: paths, the cluster scripts, polling with a deadline."""

import os
import subprocess
from pathlib import Path

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "cluster" / "cluster.sh"
STATE_DIR = REPO / ".cluster"
KUBECONFIG = STATE_DIR / "kubeconfig"
KUBECTL = STATE_DIR / "bin" / "kubectl"
CONTEXT = "mesh-playground"
# Every process the cluster scripts start carries this environment entry (cluster/lib.sh).
PROCESS_MARKER = f"MESH_PLAYGROUND_CLUSTER_DIR={STATE_DIR}".encode()


def versions() -> dict[str, str]:
    """cluster/versions.env as a dict."""
    pairs = {}
    for line in (REPO / "cluster" / "versions.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def run_cluster(command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """cluster/cluster.sh COMMAND, output captured (shown by pytest when a test fails)."""
    result = subprocess.run(
        [str(CLUSTER_SH), command], capture_output=True, text=True, timeout=timeout, check=False
    )
    print(f"$ cluster.sh {command} -> {result.returncode}\n{result.stdout}{result.stderr}")
    return result


def marked_processes() -> list[int]:
    """Live processes started by the cluster scripts of this checkout."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if PROCESS_MARKER in environ:
            pids.append(int(proc.name))
    return pids


def new_api_client() -> client.ApiClient:
    return config.new_client_from_config(config_file=str(KUBECONFIG), context=CONTEXT)


def readyz(api: client.ApiClient) -> str:
    """The API server's /readyz answer ("ok" when ready)."""
    method, url, headers, _, _ = api.param_serialize("GET", "/readyz")
    response = api.call_api(method, url, headers, _request_timeout=5)
    response.read()
    return response.data.decode()


# Any name works on KWOK nodes (nothing is pulled or run); this one follows the project's scheme.
TEST_IMAGE = "localhost/mesh-playground/webserver:test"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def restricted_container(name: str) -> dict:
    """A container that satisfies Pod Security `restricted` (the project's defaults)."""
    return {
        "name": name,
        "image": TEST_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 3030}],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def env_port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
