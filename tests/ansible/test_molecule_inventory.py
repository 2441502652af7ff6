"""The Molecule scenarios against another inventory (docs/testing.md): a copy of inventory/local,
built here in a temporary directory, that reaches the local cluster through another kubeconfig
file (a copy of .cluster/kubeconfig) and another context name, whose current context leads
nowhere (127.0.0.1:1): every call must take the inventory's kubeconfig and context. Its host has
another name, it gives no Istio charts or Helm (the scenario checks Istio's CRDs instead of
installing them), and nothing of the local cluster's directory is beside its kubeconfig (no
kubectl, no pki/): `MOLECULE_INVENTORY=<it> molecule test -s mesh_routing` passes, its traffic
through the proxy's port-forward (no NodePort). Needs the real node with Istio (make mesh-up)."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ansible_live import LOCAL_HOST, REPO, built_images, namespace_exists, run
from kubernetes import client
from realnode import KUBECONFIG, real_node_api
from target import ca_fingerprint

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

SCENARIO = "mesh_routing"
CONTEXT = "elsewhere-admin"
HOST = "elsewhere"


@pytest.fixture(scope="module")
def api() -> Iterator[client.ApiClient]:
    yield from real_node_api(
        "Molecule's mesh scenarios need real pods and Istio",
        "run `CLUSTER_NODE_MODE=real make mesh-up` first",
    )


def other_kubeconfig(where: Path) -> Path:
    """.cluster/kubeconfig with its one context renamed CONTEXT, and a current context that
    leads nowhere."""
    kubeconfig = yaml.safe_load(KUBECONFIG.read_text())
    (context,) = kubeconfig["contexts"]
    context["name"] = CONTEXT
    kubeconfig["clusters"].append({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:1"}})
    kubeconfig["contexts"].append(
        {"name": "nowhere", "context": {"cluster": "nowhere", "user": context["context"]["user"]}}
    )
    kubeconfig["current-context"] = "nowhere"
    where.mkdir(parents=True)
    path = where / "config"
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path


def other_inventory(where: Path, kubeconfig: Path) -> Path:
    """inventory/local's hosts.yml and host_vars, for host HOST, with the kubeconfig, context and
    CA fingerprint of the copy, and what make images built given as data (inventory/local reads
    it beside its kubeconfig), without Istio's charts and Helm."""
    settings = yaml.safe_load((REPO / "inventory/local/host_vars/mesh-playground.yml").read_text())
    settings.update(
        playground_kubeconfig=str(kubeconfig),
        playground_context=CONTEXT,
        playground_cluster_ca_fingerprint=ca_fingerprint(
            (REPO / ".cluster" / "pki" / "ca.crt").read_text()
        ),
        playground_local_build={
            **built_images(),
            "istio_mesh_charts_dir": "",
            "istio_mesh_helm_binary": "",
        },
    )
    (where / "host_vars").mkdir(parents=True)
    (where / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {HOST: LOCAL_HOST}}}))
    (where / "host_vars" / f"{HOST}.yml").write_text(yaml.safe_dump(settings))
    return where


def test_mesh_routing_passes_on_another_inventory(tmp_path: Path, api: client.ApiClient) -> None:
    inventory = other_inventory(tmp_path / "inventory", other_kubeconfig(tmp_path / "kube"))
    tested = run(
        "molecule", "test", "-s", SCENARIO,
        env={"MOLECULE_INVENTORY": str(inventory), "KUBECONFIG": ""},
        timeout=2400,
    )  # fmt: skip
    output = tested.stdout + tested.stderr
    assert tested.returncode == 0, tested.stdout[-6000:] + tested.stderr[-3000:]
    # The scenario measured on this inventory's host (an empty inventory would skip every play),
    # and Istio's CRDs were checked, not installed (the inventory gives no charts or Helm).
    for task in ("Measure: requests to /, count 600", "Check Istio's CRDs exist"):
        ran = re.search(rf"TASK \[{re.escape(task)}\][^\n]*\n(?:[^\n]*\n)?ok: \[{HOST}\]", output)
        assert ran, f"no 'ok: [{HOST}]' for task {task!r}: {output[-4000:]}"
    assert not namespace_exists(api, "molecule-mesh-routing")  # destroy removed it
