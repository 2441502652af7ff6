"""Your own cluster, as README's "Your own cluster" describes it, shown on the local cluster: an
inventory of one's own whose kubeconfig is the client's default (empty playground_kubeconfig,
$KUBECONFIG set), a `~` path, or a path relative to the inventory each deploys; a FILL-IN CA
fingerprint refuses before anything is touched and prints the sha256: value that, pasted into
the inventory, then deploys. The kubeconfig is a copy of the local cluster's (its CA and
credentials are inline), so only the way the path is written differs."""

import re
import shutil
from pathlib import Path

import pytest
import yaml
from ansible_live import (
    CONTEXT,
    DEFAULT_DEPLOYMENTS,
    KUBECONFIG,
    LOCAL_HOST,
    REPO,
    built_images,
    deployments,
    namespace_exists,
    remove_namespace,
    run,
    unique_namespace,
)
from kubernetes import client
from target import ca_fingerprint

pytestmark = pytest.mark.cluster

FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


def expected_fingerprint() -> str:
    return ca_fingerprint((REPO / ".cluster" / "pki" / "ca.crt").read_text())


def inventory(where: Path, namespace: str, kubeconfig: str, fingerprint: str = "") -> Path:
    """inventory/<yours>: hosts.yml and host_vars/<host>.yml, the plain apps, one replica each;
    the CA fingerprint the local cluster's unless given."""
    (where / "host_vars").mkdir(parents=True, exist_ok=True)
    (where / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"my-cluster": LOCAL_HOST}}}))
    settings = {
        "playground_context": CONTEXT,
        "playground_namespace": namespace,
        "playground_mesh": False,
        "app_workloads_replicas": 1,
        "playground_kubeconfig": kubeconfig,
        "playground_cluster_ca_fingerprint": fingerprint or expected_fingerprint(),
        **built_images(),  # what make images built (as test_collection)
    }
    (where / "host_vars" / "my-cluster.yml").write_text(yaml.safe_dump(settings))
    return where


def playbook(name: str, inventory_dir: Path, *extra: str, **env: str):
    # KUBECONFIG and HOME as the case sets them (empty KUBECONFIG: not set, for the client).
    return run(
        "ansible-playbook", "-i", str(inventory_dir), f"playbooks/{name}", *extra,
        env={"KUBECONFIG": "", **env},
    )  # fmt: skip


def deploys_and_undeploys(api, inventory_dir: Path, namespace: str, **env: str) -> None:
    try:
        deployed = playbook("deploy.yml", inventory_dir, **env)
        assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-2000:]
        assert deployments(api, namespace) == DEFAULT_DEPLOYMENTS
        proxy = client.CoreV1Api(api).read_namespaced_service("proxy", namespace)
        assert proxy.spec.type == "NodePort"  # not a load balancer unless asked
        undeployed = playbook("undeploy.yml", inventory_dir, **env)
        assert undeployed.returncode == 0, undeployed.stdout[-4000:] + undeployed.stderr[-2000:]
        assert deployments(api, namespace) == set()
    finally:
        remove_namespace(api, namespace)


def test_an_empty_kubeconfig_is_kubeconfigs_first_entry(tmp_path: Path, local_api) -> None:
    shutil.copy(KUBECONFIG, tmp_path / "kubeconfig")
    namespace = unique_namespace("own-env")
    inv = inventory(tmp_path / "inventory", namespace, "")
    kubeconfig = f"{tmp_path / 'kubeconfig'}:{tmp_path / 'absent'}"
    deploys_and_undeploys(local_api, inv, namespace, KUBECONFIG=kubeconfig)


def test_a_tilde_kubeconfig_is_in_home(tmp_path: Path, local_api) -> None:
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    shutil.copy(KUBECONFIG, home / ".kube" / "config")
    namespace = unique_namespace("own-home")
    inv = inventory(tmp_path / "inventory", namespace, "~/.kube/config")
    deploys_and_undeploys(local_api, inv, namespace, HOME=str(home))


def test_a_relative_kubeconfig_is_the_inventorys(tmp_path: Path, local_api) -> None:
    namespace = unique_namespace("own-rel")
    inv = inventory(tmp_path / "inventory", namespace, "secrets/kubeconfig")
    (inv / "secrets").mkdir()
    shutil.copy(KUBECONFIG, inv / "secrets" / "kubeconfig")
    # ansible-playbook runs from the repository: relative to the inventory, not the cwd.
    deploys_and_undeploys(local_api, inv, namespace)


def test_a_fill_in_fingerprint_refuses_and_prints_the_one_that_works(
    tmp_path: Path, local_api
) -> None:
    shutil.copy(KUBECONFIG, tmp_path / "kubeconfig")
    namespace = unique_namespace("own-fill")
    fill_in = "FILL-IN: sha256:<hex> of the cluster's CA"
    inv = inventory(tmp_path / "inventory", namespace, "", fingerprint=fill_in)
    env = {"KUBECONFIG": str(tmp_path / "kubeconfig")}
    try:
        refused = playbook("deploy.yml", inv, **env)
        assert refused.returncode == 2, refused.stdout[-4000:]
        assert "Fill in playground_cluster_ca_fingerprint" in refused.stdout
        # Before anything was read or touched: the namespace (the first object any apply
        # creates) does not exist.
        assert "Look up the target namespace" not in refused.stdout
        assert not namespace_exists(local_api, namespace)
        printed = set(FINGERPRINT.findall(refused.stdout))
        assert printed == {expected_fingerprint()}, refused.stdout[-4000:]

        # Pasted into the inventory, as the message says.
        host_vars = inv / "host_vars" / "my-cluster.yml"
        settings = yaml.safe_load(host_vars.read_text())
        settings["playground_cluster_ca_fingerprint"] = printed.pop()
        host_vars.write_text(yaml.safe_dump(settings))
        deploys_and_undeploys(local_api, inv, namespace, **env)
    finally:
        remove_namespace(local_api, namespace)


def test_a_play_without_the_connection_block_is_refused(tmp_path: Path, local_api) -> None:
    """A user's play that forgets the module_defaults block (README): its kubernetes.core calls
    would go to the client's default cluster (here: none), not the one the guards checked."""
    shutil.copy(KUBECONFIG, tmp_path / "kubeconfig")
    namespace = unique_namespace("own-nomd")
    inv = inventory(tmp_path / "inventory", namespace, str(tmp_path / "kubeconfig"))
    play = tmp_path / "site.yml"
    play.write_text(
        yaml.safe_dump([{
            "name": "Deploy without module_defaults",
            "hosts": "all",
            "gather_facts": False,
            "roles": [f"mesh_playground.playground.{role}" for role in ("target", "app_namespace")],
        }])
    )  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    refused = run(
        "ansible-playbook", "-i", str(inv), str(play), env={"KUBECONFIG": "", "HOME": str(home)}
    )
    assert refused.returncode == 2, refused.stdout[-4000:]
    assert "do not reach the cluster the guards checked" in refused.stdout, refused.stdout[-4000:]
    assert "group/kubernetes.core.k8s" in refused.stdout
    assert not namespace_exists(local_api, namespace)
