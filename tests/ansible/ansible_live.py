"""Helpers of the "used as its users use it" suite (imported by its tests and conftest)."""

import os
import subprocess
import uuid
from pathlib import Path

import yaml
from k8s_apply import ours_labels
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from workloads import enabled, workload_name, workload_overrides

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = REPO / ".cluster" / "kubeconfig"
CONTEXT = "mesh-playground"
# The label selector of what the collection applies (plugins/filter/k8s_apply.py).
OURS = ",".join(f"{key}={value}" for key, value in ours_labels().items())
# The Deployments of the app_workloads role's default list without the mesh, as these tests
# deploy it (the live view follows playground_observability: off without the mesh).
DEFAULT_DEPLOYMENTS = {
    workload_name(entry)
    for entry in enabled(
        workload_overrides(
            yaml.safe_load((REPO / "roles/app_workloads/defaults/main.yml").read_text())[
                "app_workloads"
            ],
            {"view": {"enabled": False}},
        )
    )
}
# An inventory host that is this machine, run with the playbook's own Python (and its venv).
LOCAL_HOST = {
    "ansible_connection": "local",
    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
}


def run(*argv: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 900):
    """A command's result, output captured; pytest shows it when an assertion fails."""
    full_env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **(env or {}))
    full_env["PATH"] = f"{REPO / '.venv' / 'bin'}:{full_env['PATH']}"
    return subprocess.run(
        argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def built_images() -> dict:
    """The app_workloads_images that make images built for the local cluster, if it did."""
    images = REPO / ".cluster" / "images.yml"
    return (yaml.safe_load(images.read_text()) or {}) if images.exists() else {}


def unique_namespace(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def deployments(api: client.ApiClient, namespace: str) -> set[str]:
    """The names of the namespace's Deployments (none when the namespace does not exist)."""
    try:
        items = client.AppsV1Api(api).list_namespaced_deployment(namespace).items
    except ApiException as error:
        if error.status == 404:
            return set()
        raise
    return {d.metadata.name for d in items}


def namespace_exists(api: client.ApiClient, namespace: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespace(namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def remove_namespace(api: client.ApiClient, namespace: str) -> None:
    try:
        client.CoreV1Api(api).delete_namespace(namespace)
    except ApiException as error:
        if error.status != 404:
            raise


# Written into every namespace, on their own time, by the controller manager and each istiod, and
# istiod's leader elections (a ConfigMap lock renewed every few seconds): not what a playbook did.
CONTROLLER_CONFIGMAPS = {"kube-root-ca.crt", "istio-ca-root-cert", "istio-ca-crl"}
LEADER = "control-plane.alpha.kubernetes.io/leader"


def namespace_versions(api: client.ApiClient, namespaces: list[str]) -> dict[str, str]:
    """resourceVersion of each namespace and of every Secret, ConfigMap (but the controllers'),
    Service, ServiceAccount and Deployment in it: whether anything there was written."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    found = {}
    for name in namespaces:
        found[f"Namespace/{name}"] = core.read_namespace(name).metadata.resource_version
        for kind, items in (
            ("Secret", core.list_namespaced_secret(name).items),
            ("ConfigMap", core.list_namespaced_config_map(name).items),
            ("Service", core.list_namespaced_service(name).items),
            ("ServiceAccount", core.list_namespaced_service_account(name).items),
            ("Deployment", apps.list_namespaced_deployment(name).items),
        ):
            for item in items:
                if kind == "ConfigMap" and (
                    item.metadata.name in CONTROLLER_CONFIGMAPS
                    or LEADER in (item.metadata.annotations or {})
                ):
                    continue
                found[f"{kind}/{name}/{item.metadata.name}"] = item.metadata.resource_version
    return found
