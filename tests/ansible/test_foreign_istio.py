"""An Istio that mesh-playground did not install is never changed: on the local cluster, a
stand-in for one made by hand (namespaces without our label, holding a Helm release and an
istiod Deployment "managed-by: Helm") and pointed at by istio_mesh_namespace /
istio_mesh_gateway_namespace; playbooks/istio.yml installing (present), uninstalling (absent,
with the CRDs) and playbooks/istio_crds.yml each refuse, naming what they found, and every object
there, and every Istio CRD of the cluster, keeps its resourceVersion. The stand-in has no pods
(replicas 0): what is checked is that nothing is touched, not what it would run."""

import base64

import pytest
from ansible_live import CONTEXT, KUBECONFIG, namespace_versions, run, unique_namespace
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from polling import wait_for

pytestmark = pytest.mark.realnode

HELM_LABELS = {"app.kubernetes.io/managed-by": "Helm"}


def foreign_istio(api: client.ApiClient, control: str, ingress: str) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for name in (control, ingress):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_secret(
        control,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="sh.helm.release.v1.istiod.v1",
                labels={"owner": "helm", "name": "istiod", "status": "deployed", "version": "1"},
            ),
            type="helm.sh/release.v1",
            data={"release": base64.b64encode(b"stand-in").decode()},
        ),
    )
    labels = {"app": "istiod", "istio.io/rev": "default", **HELM_LABELS}
    apps.create_namespaced_deployment(
        control,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="istiod", labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=0,
                selector=client.V1LabelSelector(match_labels={"app": "istiod"}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="discovery", image="stand-in")]
                    ),
                ),
            ),
        ),
    )


def versions(api: client.ApiClient, namespaces: list[str]) -> dict[str, str]:
    """What the namespaces store, and every Istio CRD of the cluster: resourceVersions."""
    found = namespace_versions(api, namespaces)
    crds = client.ApiextensionsV1Api(api).list_custom_resource_definition(
        label_selector="app.kubernetes.io/part-of=istio"
    )
    for crd in crds.items:
        found[f"CRD/{crd.metadata.name}"] = crd.metadata.resource_version
    return found


@pytest.fixture
def foreign(local_api: client.ApiClient):
    control, ingress = unique_namespace("handmade-istio"), unique_namespace("handmade-ingress")
    foreign_istio(local_api, control, ingress)
    apps = client.AppsV1Api(local_api)

    def settled() -> bool:  # the Deployment controller's status update, before any snapshot
        deployment = apps.read_namespaced_deployment("istiod", control)
        return (deployment.status.observed_generation or 0) >= deployment.metadata.generation

    wait_for(settled, 60, "the stand-in istiod Deployment observed by its controller")
    yield control, ingress
    core = client.CoreV1Api(local_api)
    for name in (control, ingress):
        try:
            core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise

    def gone() -> bool:
        names = {ns.metadata.name for ns in core.list_namespace().items}
        return not names & {control, ingress}

    wait_for(gone, 120, "the stand-in's namespaces deleted")


@pytest.mark.parametrize(
    "playbook, extra, says",
    [
        ("istio.yml", [], "would install over it"),
        (
            "istio.yml",
            ["-e", "istio_mesh_state=absent", "-e", "istio_mesh_uninstall_crds=true"],
            "would uninstall it",
        ),
        ("istio_crds.yml", [], "would install over it"),
    ],
    ids=["install", "uninstall", "crds"],
)
def test_istio_refuses_an_istio_it_did_not_install_and_touches_nothing(
    local_api: client.ApiClient, foreign: tuple[str, str], playbook: str, extra: list, says: str
) -> None:
    control, ingress = foreign
    before = versions(local_api, [control, ingress])
    result = run(
        "ansible-playbook", f"playbooks/{playbook}",
        "-e", f"playground_kubeconfig={KUBECONFIG}", "-e", f"playground_context={CONTEXT}",
        "-e", "playground_mesh=true",
        "-e", f"istio_mesh_namespace={control}", "-e", f"istio_mesh_gateway_namespace={ingress}",
        *extra,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"namespace {control} exists and mesh-playground did not create it" in output, output
    assert "Helm releases istiod; Deployments istiod (by Helm)" in output, output
    assert f"namespace {ingress} exists" in output and says in output, output
    assert versions(local_api, [control, ingress]) == before
