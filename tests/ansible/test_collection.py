"""The repository as a collection: built and installed with ansible-galaxy into a temporary
directory, then used from a temporary user repository that holds only an inventory and a
two-line playbook of FQCN roles, deploying to the local cluster."""

import json
import tarfile
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
    remove_namespace,
    run,
    unique_namespace,
)
from kubernetes import client
from polling import wait_for
from rollout import rolled_out

pytestmark = pytest.mark.cluster

PLAYBOOK = """\
- hosts: all
  module_defaults:  # the kubeconfig and context (roles/target/README.md)
    group/kubernetes.core.k8s: "{{ playground_k8s_connection }}"
    group/kubernetes.core.helm: "{{ playground_k8s_connection }}"
  roles: [mesh_playground.playground.app_namespace, mesh_playground.playground.app_workloads]
"""


def test_build_install_and_deploy_from_a_user_repository(tmp_path: Path, local_api) -> None:
    built = run("ansible-galaxy", "collection", "build", "--output-path", str(tmp_path))
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = tmp_path.glob("mesh_playground-playground-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "roles/app_workloads/tasks/main.yml" in names and "plugins/filter/workloads.py" in names
    assert not [n for n in names if n.startswith(("apps/", "cluster/", "tests/", ".venv"))]

    collections = tmp_path / "collections"
    # --no-deps: Galaxy is unreachable here; kubernetes.core comes with the `ansible` package.
    # From outside the repository, whose own link (.collections) must not count as installed.
    installed = run(
        "ansible-galaxy",
        "collection",
        "install",
        "--no-deps",
        "-p",
        str(collections),
        str(tarball),
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    user = tmp_path / "user-repo"
    namespace = unique_namespace("user")
    host_vars = {
        **LOCAL_HOST,
        "playground_kubeconfig": str(KUBECONFIG),
        "playground_context": CONTEXT,
        "playground_cluster_ca_fingerprint": "{{ lookup('file', '%s') | "
        "mesh_playground.playground.ca_fingerprint }}" % (REPO / ".cluster" / "pki" / "ca.crt"),
        "playground_namespace": namespace,
        "playground_mesh": False,
        "app_workloads_replicas": 1,
        **built_images(),
    }
    (user / "inventory").mkdir(parents=True)
    (user / "inventory" / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"hosts": {"my-cluster": host_vars}}})
    )
    (user / "deploy.yml").write_text(PLAYBOOK)
    # The very playbook README.md shows under "Use it from your own repository".
    assert PLAYBOOK in (REPO / "README.md").read_text()

    def user_deploy():
        # Only the installed collection: not the repository's ansible.cfg or .collections.
        return run(
            "ansible-playbook",
            "-i",
            "inventory/hosts.yml",
            "deploy.yml",
            cwd=user,
            env={"ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_CONFIG": ""},
        )

    try:
        deployed = user_deploy()
        assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-2000:]
        assert "mesh_playground.playground.app_workloads" in deployed.stdout
        apps = client.AppsV1Api(local_api)
        names = {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items}
        assert names == DEFAULT_DEPLOYMENTS

        def available() -> bool:
            return all(rolled_out(apps, namespace, name) for name in names)

        wait_for(available, 180, "the user repository's deployments rolled out")
        again = user_deploy()
        assert again.returncode == 0 and " changed=0 " in again.stdout, again.stdout[-3000:]
        assert (
            collections / "ansible_collections/mesh_playground/playground/galaxy.yml"
        ).exists() or (
            collections / "ansible_collections/mesh_playground/playground/MANIFEST.json"
        ).exists()
    finally:
        remove_namespace(local_api, namespace)


def test_galaxy_metadata_declares_kubernetes_core_with_a_range() -> None:
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("mesh_playground", "playground")
    assert galaxy["dependencies"]["kubernetes.core"].startswith(">=")
    requirements = yaml.safe_load((REPO / "requirements.yml").read_text())
    assert requirements["collections"][0]["name"] == "kubernetes.core"
    assert json.dumps(yaml.safe_load((REPO / "meta" / "runtime.yml").read_text()))
