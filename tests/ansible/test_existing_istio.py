"""An Istio somebody else installed (playground_istio: existing) is found, used and never changed.

On the local cluster, beside the playground's own Istio, a second one is installed by hand the way
its users install theirs: Istio's Helm charts, a revision of its own (`theirs`, injected through
`istio.io/rev`), its own namespaces and labels, a Helm-style gateway (`istio: ingress`). It signs
with the local mesh's CA (Istio's plug-in `cacerts`), so that both istiods write the same
`istio-ca-root-cert` into every namespace and the playground keeps working beside it. Then, with
the inventory saying Istio exists: deploy.yml finds that revision, its CNI and its gateway,
labels the namespace for it, and an 80/20 split through its gateway acts (1,000 requests, v1's
share 0.80 +- 0.05); istio.yml with `absent` refuses, naming what it found; undeploy.yml removes
the apps; and every object of that Istio keeps its resourceVersion throughout."""

import json
import re
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml
from ansible_live import (
    CONTEXT,
    KUBECONFIG,
    REPO,
    built_images,
    namespace_versions,
    remove_namespace,
    run,
    unique_namespace,
)
from kubernetes import client
from polling import wait_for

pytestmark = pytest.mark.realnode

REVISION = "theirs"
REQUESTS, SHARE, TOLERANCE = 1000, 0.80, 0.05
ANSWER = re.compile(r"^Proxying value: WebServer (V\d) requested from / on ")
SMALL = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}


def helm(*args: str, check: bool = True):
    result = run(
        built_images()["istio_mesh_helm_binary"], *args,
        "--kubeconfig", str(KUBECONFIG), "--kube-context", CONTEXT,
    )  # fmt: skip
    assert result.returncode == 0 or not check, result.stdout + result.stderr
    return result


def install_their_istio(api: client.ApiClient, control: str, ingress: str, tmp: Path) -> None:
    """istiod and a gateway from Istio's charts, by Helm, as their own revision."""
    core = client.CoreV1Api(api)
    build = built_images()
    charts = Path(build["istio_mesh_charts_dir"])
    labels = {"team": "platform"}  # theirs, not ours
    for name in (control, ingress):
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
        )
    ours = core.read_namespaced_secret("istio-ca-secret", "istio-system").data
    core.create_namespaced_secret(
        control,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="cacerts"),
            data={
                "ca-cert.pem": ours["ca-cert.pem"],
                "ca-key.pem": ours["ca-key.pem"],
                "root-cert.pem": ours["ca-cert.pem"],
                "cert-chain.pem": ours["ca-cert.pem"],
            },
        ),
    )
    # What a user of upstream Envoy must set (roles/istio_mesh/defaults/main.yml says why).
    pilot_env = yaml.safe_load((REPO / "roles/istio_mesh/defaults/main.yml").read_text())[
        "istio_mesh_pilot_env"
    ]
    image = {
        "hub": build["istio_mesh_hub"],
        "tag": build["istio_mesh_tag"],
        "imagePullPolicy": "IfNotPresent",  # built on the node, never pulled
    }
    istiod = {
        "revision": REVISION,
        "global": {**image, "istioNamespace": control, "proxy": {"resources": SMALL}},
        "pilot": {
            "autoscaleEnabled": False,
            "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}},
            "env": pilot_env,
            "cni": {"enabled": True},  # the node's Istio CNI (the local one's DaemonSet)
        },
        "meshConfig": {"defaultProviders": {"metrics": []}},
    }
    gateway = {
        "revision": REVISION,
        "global": image,
        "autoscaling": {"enabled": False},
        "resources": SMALL,
        "service": {"type": "NodePort"},
    }
    for name, values in (("istiod", istiod), ("gateway", gateway)):
        (tmp / f"{name}.yml").write_text(json.dumps(values))
    helm("install", f"istiod-{REVISION}", str(charts / "istio-control/istio-discovery"),
         "-n", control, "-f", str(tmp / "istiod.yml"), "--wait", "--timeout", "5m")  # fmt: skip
    helm("install", "istio-ingress", str(charts / "gateway"),
         "-n", ingress, "-f", str(tmp / "gateway.yml"), "--wait", "--timeout", "5m")  # fmt: skip


def versions(api: client.ApiClient, namespaces: list[str]) -> dict[str, str]:
    """What their namespaces store, and their revision's webhooks: resourceVersions."""
    found = namespace_versions(api, namespaces)
    admission = client.AdmissionregistrationV1Api(api)
    selector = f"istio.io/rev={REVISION}"
    for kind, items in (
        ("Mutating", admission.list_mutating_webhook_configuration(label_selector=selector).items),
        (
            "Validating",
            admission.list_validating_webhook_configuration(label_selector=selector).items,
        ),
    ):
        for item in items:
            found[f"{kind}WebhookConfiguration/{item.metadata.name}"] = (
                item.metadata.resource_version
            )
    return found


@pytest.fixture(scope="module")
def their_istio(local_api: client.ApiClient, tmp_path_factory):
    control, ingress = unique_namespace("their-istio"), unique_namespace("their-ingress")
    try:
        install_their_istio(local_api, control, ingress, tmp_path_factory.mktemp("values"))
        apps = client.AppsV1Api(local_api)
        admission = client.AdmissionregistrationV1Api(local_api)
        selector = f"istio.io/rev={REVISION}"

        def settled() -> bool:
            """Before any snapshot: the controllers' status updates, and istiod's own patches of
            its webhooks (their CA bundle; the validator's failurePolicy Ignore -> Fail)."""
            for d in (
                apps.list_namespaced_deployment(control).items
                + apps.list_namespaced_deployment(ingress).items
            ):
                if (d.status.observed_generation or 0) < d.metadata.generation:
                    return False
            mutating = admission.list_mutating_webhook_configuration(label_selector=selector)
            validating = admission.list_validating_webhook_configuration(label_selector=selector)
            hooks = [w for c in mutating.items + validating.items for w in c.webhooks]
            return (
                bool(mutating.items and validating.items)
                and all(w.client_config.ca_bundle for w in hooks)
                and all(w.failure_policy == "Fail" for c in validating.items for w in c.webhooks)
            )

        wait_for(settled, 120, "their Deployments and webhooks settled")
        yield control, ingress
    finally:
        # Each step on its own: one that fails must not keep the others from cleaning up.
        for namespace, release in ((ingress, "istio-ingress"), (control, f"istiod-{REVISION}")):
            helm("uninstall", "-n", namespace, release, "--ignore-not-found", check=False)
        for namespace in (control, ingress):
            remove_namespace(local_api, namespace)
        core = client.CoreV1Api(local_api)
        wait_for(
            lambda: not {n.metadata.name for n in core.list_namespace().items} & {control, ingress},
            180,
            "their namespaces deleted",
        )


def answer(url: str, host: str) -> str | None:
    request = urllib.request.Request(url, headers={"Host": host})  # noqa: S310 (our NodePort)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.read().decode()
    except OSError:
        return None


def test_the_apps_use_an_istio_they_did_not_install_and_change_nothing_of_it(
    local_api: client.ApiClient, their_istio: tuple[str, str], tmp_path: Path
) -> None:
    control, ingress = their_istio
    namespace = unique_namespace("on-their-istio")
    host = f"{namespace}.mesh-playground.local"
    settings = tmp_path / "existing.yml"
    settings.write_text(
        json.dumps(
            {
                "playground_kubeconfig": str(KUBECONFIG),
                "playground_context": CONTEXT,
                "playground_namespace": namespace,
                "playground_istio": "existing",
                "playground_istio_revision": REVISION,
                "playground_observability": False,
                "mesh_policies_sets": ["subsets", "split", "gateway"],
                "mesh_policies_split_weights": {"v1": 80, "v2": 20},
                "app_workloads_images": built_images()["app_workloads_images"],
            }
        )
    )
    before = versions(local_api, [control, ingress])
    deployed = run("ansible-playbook", "playbooks/deploy.yml", "-e", f"@{settings}")
    output = deployed.stdout + deployed.stderr
    try:
        assert deployed.returncode == 0, output
        # Their revision's gateway first; the playground's own follows, as another revision's.
        assert (
            f"Istio found: istiod of revision {REVISION} in {control} (by Helm), with the Istio"
            f" CNI; ingress gateways: istio=ingress in {ingress}, istio=ingressgateway in"
            " istio-ingress (revision default)." in " ".join(output.split())
        ), output
        core = client.CoreV1Api(local_api)
        labels = core.read_namespace(namespace).metadata.labels
        assert labels.get("istio.io/rev") == REVISION and "istio-injection" not in labels, labels
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", labels
        for pod in core.list_namespaced_pod(namespace).items:
            status = json.loads(pod.metadata.annotations["sidecar.istio.io/status"])
            assert status["revision"] == REVISION, (pod.metadata.name, status)

        port = next(
            p.node_port
            for p in core.read_namespaced_service("istio-ingress", ingress).spec.ports
            if p.port == 80
        )
        url = f"http://127.0.0.1:{port}/"
        wait_for(
            lambda: ANSWER.match(answer(url, host) or ""), 120, f"an answer at {url} for {host}"
        )
        versions_seen = Counter(
            (ANSWER.match(answer(url, host) or "") or [None, "failed"])[1] for _ in range(REQUESTS)
        )
        share = versions_seen["V1"] / REQUESTS
        print(f"{REQUESTS} requests through their gateway: {dict(versions_seen)}, v1 {share:.3f}")
        assert versions_seen["failed"] == 0 and abs(share - SHARE) <= TOLERANCE, versions_seen
        assert versions(local_api, [control, ingress]) == before

        refused = run(
            "ansible-playbook", "playbooks/istio.yml", "-e", f"@{settings}",
            "-e", "istio_mesh_state=absent", "-e", "istio_mesh_uninstall_crds=true",
        )  # fmt: skip
        said = " ".join((refused.stdout + refused.stderr).split())
        assert refused.returncode != 0, said
        assert "playground_istio is existing" in said, said
        assert f"istiod of revision {REVISION} in {control} (by Helm)" in said, said
        assert versions(local_api, [control, ingress]) == before
    finally:
        removed = run("ansible-playbook", "playbooks/undeploy.yml", "-e", f"@{settings}")
        if removed.returncode != 0:  # never leave a namespace injected by their istiod behind
            remove_namespace(local_api, namespace)
        assert removed.returncode == 0, removed.stdout + removed.stderr
    wait_for(
        lambda: (
            namespace
            not in {n.metadata.name for n in client.CoreV1Api(local_api).list_namespace().items}
        ),
        180,
        f"namespace {namespace} deleted by undeploy.yml",
    )
    assert versions(local_api, [control, ingress]) == before
