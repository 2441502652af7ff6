"""Helpers for the local cluster's tests: paths, the cluster scripts and its processes, the
pinned versions, an API client, a container that passes Pod Security `restricted` (polling with
a deadline is tests/polling.py's)."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "cluster" / "cluster.sh"


@dataclass(frozen=True)
class Instance:
    """One local cluster of this checkout, as cluster/lib.sh lays it out: the default one, or a
    named one beside it (.cluster-<name>/, context mesh-playground-<name>, ports + 10000)."""

    name: str = "default"

    @property
    def default(self) -> bool:
        return self.name == "default"

    @property
    def state_dir(self) -> Path:
        return REPO / (".cluster" if self.default else f".cluster-{self.name}")

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def context(self) -> str:
        return "mesh-playground" if self.default else f"mesh-playground-{self.name}"

    @property
    def marker(self) -> bytes:
        """The environment entry every process of this instance carries (cluster/lib.sh)."""
        return f"MESH_PLAYGROUND_CLUSTER_DIR={self.state_dir}".encode()

    def env(self) -> dict[str, str]:
        """The environment of cluster.sh for this instance. The instance under test takes the
        CLUSTER_* settings it was given; another one only its name (so its documented ports)."""
        if self == INSTANCE:
            return dict(os.environ)
        own = {"CLUSTER_NAME", "CLUSTER_NODE_MODE", "CLUSTER_PORT_OFFSET"}
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in own and not (key.startswith("CLUSTER_") and key.endswith("_PORT"))
        }
        return env | {"CLUSTER_NAME": self.name}

    def port(self, variable: str, default_port: int) -> int:
        """A port of this instance: its CLUSTER_*_PORT, else the default plus the offset."""
        env = self.env()
        if variable in env:
            return int(env[variable])
        offset = env.get("CLUSTER_PORT_OFFSET") or (0 if self.default else 10000)
        return default_port + int(offset)

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig), context=self.context)


# The instance the cluster tests run against: CLUSTER_NAME, as for cluster/cluster.sh.
INSTANCE = Instance(os.environ.get("CLUSTER_NAME") or "default")
STATE_DIR = INSTANCE.state_dir
KUBECONFIG = INSTANCE.kubeconfig
KUBECTL = STATE_DIR / "bin" / "kubectl"
CONTEXT = INSTANCE.context
PROCESS_MARKER = INSTANCE.marker


def versions() -> dict[str, str]:
    """cluster/versions.env as a dict."""
    pairs = {}
    for line in (REPO / "cluster" / "versions.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def run_cluster(
    command: str,
    timeout: float = 900,
    instance: Instance = INSTANCE,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """cluster/cluster.sh COMMAND on an instance, output captured (shown when a test fails)."""
    result = subprocess.run(
        [str(CLUSTER_SH), command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=instance.env() | (env or {}),
    )
    print(
        f"$ CLUSTER_NAME={instance.name} cluster.sh {command} -> {result.returncode}\n"
        f"{result.stdout}{result.stderr}"
    )
    return result


def marked_processes(marker: bytes = PROCESS_MARKER) -> list[int]:
    """Live processes started by the cluster scripts for one instance of this checkout."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if marker in environ:
            pids.append(int(proc.name))
    return pids


def new_api_client() -> client.ApiClient:
    return INSTANCE.api_client()


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
