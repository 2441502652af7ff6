""" "Rolled out" for the live suites and benchmarks: the collection's one definition, the
rollout_state filter (plugins/filter/workloads.py), on a Deployment read through the Kubernetes
client. Never a check of its own."""

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from workloads import rollout_state


def deployment_state(apps: client.AppsV1Api, namespace: str, name: str) -> str:
    """'complete', or what the Deployment lacks (also when it cannot be read)."""
    try:
        deployment = apps.read_namespaced_deployment(name, namespace)
    except ApiException as error:
        return f"{name}: not readable ({error.status} {error.reason})"
    return rollout_state(apps.api_client.sanitize_for_serialization(deployment))


def rolled_out(apps: client.AppsV1Api, namespace: str, name: str) -> bool:
    return deployment_state(apps, namespace, name) == "complete"
