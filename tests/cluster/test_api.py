"""The local cluster serves a real Kubernetes API: workloads, Pod Security, RBAC, tokens."""

import json
import subprocess

import pytest
from cluster_live import (
    KUBECONFIG,
    KUBECTL,
    RESTRICTED,
    TEST_IMAGE,
    readyz,
    restricted_container,
    run_cluster,
    versions,
)
from kubernetes import client
from kubernetes.client.rest import ApiException
from polling import wait_for
from rollout import rolled_out

pytestmark = pytest.mark.cluster


def test_cluster_comes_up_with_ready_nodes_and_the_pinned_version(api, core):
    result = run_cluster("up")  # idempotent: the cluster already runs
    assert result.returncode == 0
    assert f"kubeconfig: {KUBECONFIG}" in result.stdout
    assert readyz(api) == "ok"

    nodes = core.list_node().items
    assert nodes, "no nodes registered"
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}.get("Ready")
        assert ready == "True", f"node {node.metadata.name} is not Ready"

    wanted = versions()["KUBERNETES_VERSION"]
    assert client.VersionApi(api).get_code().git_version == wanted
    kubectl = subprocess.run(
        [str(KUBECTL), "version", "--client"], capture_output=True, text=True, check=True
    )
    assert f"Client Version: {wanted}" in kubectl.stdout


def test_deployment_becomes_available(apps, core, make_namespace):
    namespace = make_namespace(labels=RESTRICTED)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [restricted_container("web")]},
                },
            },
        },
    )

    wait_for(
        lambda: rolled_out(apps, namespace, "web"),
        timeout=90,
        what="Deployment web to roll out, Available with 2 replicas",
    )
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.spec.node_name, "pod was not scheduled"
        assert pod.status.pod_ip, "pod got no IP"


def test_pod_violating_restricted_is_refused_only_where_enforced(core, make_namespace):
    root_pod = {
        "metadata": {"name": "runs-as-root"},
        "spec": {"containers": [{"name": "c", "image": TEST_IMAGE}]},
    }
    enforced = make_namespace(labels=RESTRICTED)
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(enforced, root_pod)
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]

    # The same namespace takes a compliant pod, and an unlabelled namespace the root pod:
    # the refusal above is Pod Security admission at work, not something else.
    compliant = {
        "metadata": {"name": "compliant"},
        "spec": {"containers": [restricted_container("c")]},
    }
    assert core.create_namespaced_pod(enforced, compliant).metadata.uid
    assert core.create_namespaced_pod(make_namespace(), root_pod).metadata.uid


def test_service_account_tokens_authenticate_and_rbac_limits_them(api, core, make_namespace):
    namespace = make_namespace()
    wait_for(
        lambda: core.list_namespaced_service_account(namespace).items,
        timeout=60,
        what="the default ServiceAccount (controller-manager)",
    )
    token = core.create_namespaced_service_account_token(
        "default", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token

    # Only the cluster CA and the token: no client certificate.
    as_sa_config = client.Configuration()
    as_sa_config.host = api.configuration.host
    as_sa_config.ssl_ca_cert = api.configuration.ssl_ca_cert
    as_sa_config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(as_sa_config) as as_sa:
        review = client.AuthenticationV1Api(as_sa).create_self_subject_review({})
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:default"
        with pytest.raises(ApiException) as forbidden:
            client.CoreV1Api(as_sa).list_namespaced_secret(namespace)
        assert forbidden.value.status == 403
