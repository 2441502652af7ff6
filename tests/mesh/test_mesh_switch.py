"""The one switch: playground_mesh=false deploys the plain apps (no injection label, no sidecar,
no mesh policy) on the same cluster, and they still answer; then they are removed."""

import os
import re
import subprocess
import urllib.request

import pytest
from kubernetes import client, config
from polling import wait_for
from realnode import CONTEXT, KUBECONFIG, REPO

pytestmark = pytest.mark.realnode
NAMESPACE = "mesh-off"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")
    result = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    print(result.stdout[-3000:], result.stderr[-3000:])
    return result


def answer(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (our NodePort)
            return response.read().decode()
    except OSError:
        return ""


def test_mesh_off_deploys_plain_apps_that_answer() -> None:
    argv = [
        "ansible-playbook",
        "playbooks/deploy.yml",
        "-e",
        f"playground_namespace={NAMESPACE}",
        "-e",
        "playground_mesh=false",
        "-e",
        "app_workloads_replicas=1",
    ]
    with config.new_client_from_config(str(KUBECONFIG), context=CONTEXT) as api:
        core = client.CoreV1Api(api)
        try:
            deployed = run(*argv)
            assert deployed.returncode == 0
            assert "istio-injection" not in (core.read_namespace(NAMESPACE).metadata.labels or {})
            pods = core.list_namespaced_pod(NAMESPACE, label_selector="app").items
            assert pods and all(
                [c.name for c in p.spec.containers] in (["webserver"], ["proxy"])
                and not p.spec.init_containers
                for p in pods
            )
            custom = client.CustomObjectsApi(api)
            assert (
                custom.list_namespaced_custom_object(
                    "networking.istio.io", "v1", NAMESPACE, "virtualservices"
                )["items"]
                == []
            )
            port = core.read_namespaced_service("proxy", NAMESPACE).spec.ports[0].node_port
            url = f"http://127.0.0.1:{port}/"
            body = wait_for(lambda: answer(url) or None, 120, f"an answer at {url}")
            assert re.match(r"^Proxying value: WebServer V[12] requested from / on ", body), body
        finally:
            removed = run(
                "ansible-playbook",
                "playbooks/undeploy.yml",
                "-e",
                f"playground_namespace={NAMESPACE}",
                "-e",
                "playground_mesh=false",
            )
            assert removed.returncode == 0
