"""The apps pulled from a registry with TLS and a password (docs/own-cluster.md, "A registry of
your own"): the local registry (images/registry.sh start: Debian's docker-registry on
127.0.0.1:5443, its own CA, htpasswd), the app images pushed to it (make images-push), then a
deploy naming them by digest, with the credentials from the inventory. The node's kubelet
really pulls them (other names than the imported localhost/... images), the proxy answers;
then a wrong password fails the deploy at once with the registry's reason, before the rollout's
deadline. The module deploys into a namespace of its own, without the mesh, one replica each,
undeploys at the end and stops the registry if it started it. The tests run in file order.

The real node's containerd must read the registry hosts directory (its config_path, written by
cluster/node-real/supervise.sh): a node started before that setting existed is skipped.
"""

import base64
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_live import STATE_DIR, get, run
from kubernetes import client
from polling import wait_for

pytestmark = pytest.mark.realnode

NAMESPACE = "mesh-registry"
REGISTRY_PORT = 5443
REGISTRY = f"127.0.0.1:{REGISTRY_PORT}"
CONTAINERD_SOCKET = "/run/mesh-playground/containerd/containerd.sock"
REGISTRY_HOSTS_DIR = "/var/lib/mesh-playground/certs.d"
# The rollout's deadline (k8s_apply_wait_timeout); a pull failure must end the deploy well before.
WAIT_TIMEOUT = 300


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def node_images(prefix: str) -> list[str]:
    result = run("ctr", "--address", CONTAINERD_SOCKET, "-n", "k8s.io", "images", "ls", "-q")
    assert result.returncode == 0, "ctr images ls failed (output above)"
    return [name for name in result.stdout.split() if name.startswith(prefix)]


def deploy(tmp_path: Path, name: str, variables: dict) -> tuple:
    """playbooks/deploy.yml (with --diff) into the test's namespace, the mesh off: (result,
    seconds it took)."""
    extra = tmp_path / f"{name}.json"
    extra.write_text(json.dumps(variables))
    extra.chmod(0o600)
    start = time.monotonic()
    result = run(
        "ansible-playbook",
        "playbooks/deploy.yml",
        "--diff",
        "-e",
        f"playground_namespace={NAMESPACE}",
        "-e",
        "playground_mesh=false",
        "-e",
        f"@{extra}",
    )
    return result, time.monotonic() - start


@pytest.fixture(scope="module")
def registry() -> Iterator[dict]:
    """The local registry running, the app images pushed to it: {images, username, password}."""
    containerd_toml = STATE_DIR / "node-real" / "containerd.toml"
    config = containerd_toml.read_text() if containerd_toml.exists() else ""
    if f'config_path = "{REGISTRY_HOSTS_DIR}"' not in config:
        pytest.skip(
            f"the real node's containerd does not read {REGISTRY_HOSTS_DIR} (started before"
            " cluster/node-real/supervise.sh set config_path): make cluster-down, then"
            " CLUSTER_NODE_MODE=real make cluster-up"
        )
    started = not listening(REGISTRY_PORT)
    result = run("images/registry.sh", "start")
    assert result.returncode == 0, "images/registry.sh start failed (output above)"
    result = run("images/build.sh")
    assert result.returncode == 0, "images/build.sh failed (output above)"
    # Pulled afresh: names an earlier run left in the node's containerd are removed first.
    for name in node_images(f"{REGISTRY}/"):
        run("ctr", "--address", CONTAINERD_SOCKET, "-n", "k8s.io", "images", "rm", name)
    result = run("make", "images-push", f"REGISTRY={REGISTRY}/mesh-playground")
    assert result.returncode == 0, "make images-push failed (output above)"
    images = yaml.safe_load(result.stdout[result.stdout.index("app_workloads_images:") :])
    username, password = (STATE_DIR / "registry" / "credentials").read_text().split()
    yield {"images": images["app_workloads_images"], "username": username, "password": password}
    if started:
        run("images/registry.sh", "stop")


@pytest.fixture(scope="module")
def undeployed_at_end() -> Iterator[None]:
    yield
    result = run(
        "ansible-playbook",
        "playbooks/undeploy.yml",
        "-e",
        f"playground_namespace={NAMESPACE}",
        "-e",
        "playground_mesh=false",
    )
    assert result.returncode == 0, "playbooks/undeploy.yml failed (output above)"


def variables(registry: dict, password: str, **more: object) -> dict:
    return {
        "app_workloads_images": registry["images"],
        "app_workloads_registry_credentials": [
            {"registry": REGISTRY, "username": registry["username"], "password": password}
        ],
        "app_workloads_replicas": 1,
        **more,
    }


def test_push_names_every_app_by_tag_and_digest(registry: dict) -> None:
    for app, ref in registry["images"].items():
        assert ref.startswith(f"{REGISTRY}/mesh-playground/{app}:"), ref
        assert "@sha256:" in ref, ref


def test_the_node_pulls_from_the_registry_and_the_apps_answer(
    registry: dict, undeployed_at_end: None, core: client.CoreV1Api, tmp_path: Path
) -> None:
    result, _ = deploy(tmp_path, "deploy", variables(registry, registry["password"]))
    assert result.returncode == 0, "playbooks/deploy.yml failed (output above)"
    # Never shown, not even by --diff: the password, nor the Secret's data.
    auth = base64.b64encode(f"{registry['username']}:{registry['password']}".encode()).decode()
    output = result.stdout + result.stderr
    assert registry["password"] not in output
    assert auth not in output

    secret = core.read_namespaced_secret("mesh-playground-registry", NAMESPACE)
    assert secret.type == "kubernetes.io/dockerconfigjson"
    pods = core.list_namespaced_pod(NAMESPACE).items
    assert pods and all(
        [s.name for s in p.spec.image_pull_secrets] == ["mesh-playground-registry"] for p in pods
    )
    # kubelet's events: each image pulled from the registry (not found on the node).
    pulled = [
        e.message
        for e in core.list_namespaced_event(NAMESPACE).items
        if e.reason == "Pulled" and e.involved_object.kind == "Pod"
    ]
    for app in ("webserver", "proxy"):
        ref = registry["images"][app]
        assert any(f'Successfully pulled image "{ref}"' in m for m in pulled), (app, pulled)

    result = run("cluster/node-real/url.sh", "--proxy", env={"PLAYGROUND_NAMESPACE": NAMESPACE})
    assert result.returncode == 0, "cluster/node-real/url.sh failed (output above)"
    url = result.stdout.strip()
    wait_for(lambda: get(url).parsed, 120, f"a webserver answer through the proxy at {url}")


def test_a_wrong_password_fails_at_once_with_the_registrys_reason(
    registry: dict, undeployed_at_end: None, tmp_path: Path
) -> None:
    # Always: the node holds the images since the test above, so only a pull policy that asks
    # the registry each time meets the wrong password (and the new policy rolls new pods).
    wrong = variables(
        registry,
        "wrong-" + registry["password"],
        app_workloads_image_pull_policy="Always",
        k8s_apply_wait_timeout=WAIT_TIMEOUT,
    )
    result, seconds = deploy(tmp_path, "wrong", wrong)
    output = result.stdout + result.stderr
    assert result.returncode != 0, "a deploy with a wrong password succeeded"
    assert "Pods cannot get their images" in output
    assert "401" in output or "unauthorized" in output.lower(), output[-3000:]
    assert seconds < WAIT_TIMEOUT / 2, f"the deploy took {seconds:.0f}s to fail"
    assert wrong["app_workloads_registry_credentials"][0]["password"] not in output


def catalog(username: str, password: str) -> tuple[int, str]:
    """The registry's catalog over TLS (its CA), with basic auth: (status, body)."""
    context = ssl.create_default_context(cafile=STATE_DIR / "registry" / "pki" / "ca.crt")
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"https://{REGISTRY}/v2/_catalog", headers={"Authorization": f"Basic {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_registry_refuses_a_wrong_password(registry: dict) -> None:
    status, body = catalog(registry["username"], registry["password"])
    assert status == 200 and "mesh-playground/webserver" in body, (status, body)
    status, body = catalog(registry["username"], "wrong")
    assert status == 401 and "UNAUTHORIZED" in body, (status, body)
