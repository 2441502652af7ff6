"""Istio for real on the real node: the install of roles/istio_mesh (make istio), sidecar injection
under Pod Security `restricted` (the Istio CNI, no NET_ADMIN init container), HTTP between two
pods through their Envoy sidecars, a VirtualService fault abort, the ingress gateway's NodePort.

The module deploys the apps as the roles render them (playbooks/render.yml: the namespace,
labelled for injection with `restricted` enforced, and its NetworkPolicies; webserver v1 and the
proxy, one replica each, no mesh policies) into a namespace of its own, and deletes it at the
end. Traffic goes only to cluster addresses and loopback: a Service's ClusterIP (kube-proxy on
this machine) and the gateway's NodePort on 127.0.0.1. `make test-istio` installs Istio first
(make istio); the tests run in file order.
"""

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from polling import wait_for
from realnode import (
    CONTEXT,
    KUBECONFIG,
    REPO,
    STATE_DIR,
    delete_namespace,
    istioctl_analyze,
    real_node_api,
)
from rollout import rolled_out
from workloads import workload_overrides

pytestmark = pytest.mark.realnode

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
KUBECTL = STATE_DIR / "bin" / "kubectl"
# Where make istio put istiod, the CNI and the gateway: the role's defaults.
ISTIO = yaml.safe_load((REPO / "roles/istio_mesh/defaults/main.yml").read_text())
ISTIO_NAMESPACE = ISTIO["istio_mesh_namespace"]
GATEWAY_NAMESPACE = ISTIO["istio_mesh_gateway_namespace"]
GATEWAY_NAME = ISTIO["istio_mesh_gateway_name"]
# The apps the role ships (its default list), but only webserver v1 behind the proxy and no view.
WORKLOADS = workload_overrides(
    yaml.safe_load((REPO / "roles/app_workloads/defaults/main.yml").read_text())["app_workloads"],
    {"webserverv2": {"enabled": False}, "view": {"enabled": False}},
)
# Istio's bootstrap keeps only a few Envoy stats; these pods also keep their clusters' and the
# fault filter's (added to the pods' proxy.istio.io/config annotation as rendered).
STATS_CONFIG = {
    "proxyStatsMatcher": {
        "inclusionPrefixes": ["cluster.outbound|", "cluster.inbound|"],
        "inclusionRegexps": [".*fault\\..*"],
    }
}
# The webserver's answer as the proxy relays it (seed format).
ANSWER = re.compile(
    r"^Proxying value: WebServer V1 requested from (?P<path>\S+) on (?P<host>\S+)"
    r" with code (?P<code>\d{3}) - Took \d+ milliseconds"
)


def run(*cmd: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Runs a command from the repository root; output shown by pytest when a test fails."""
    result = subprocess.run(
        [str(c) for c in cmd],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    shown = " ".join(map(str, cmd))
    print(f"$ {shown} -> {result.returncode}\n{result.stdout[-6000:]}{result.stderr[-4000:]}")
    return result


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str]


def get(url: str, timeout: float = 10, host: str = "") -> Answer:
    """One request on a new connection (Host `host` if given); errors become answers (status 0)."""
    headers = {"Connection": "close"} | ({"Host": host} if host else {})
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (our URL)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Answer(
                response.status, response.read().decode(errors="replace"), dict(response.headers)
            )
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read().decode(errors="replace"), dict(error.headers))
    except OSError as error:  # refused, reset, timed out
        return Answer(0, f"{type(error).__name__}: {error}", {})


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def api() -> Iterator[client.ApiClient]:
    yield from real_node_api("Istio needs the real node", "run `make test-istio`")


@pytest.fixture(scope="module")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture(scope="module")
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """Istio's locally built images (images/build.sh writes .cluster/images.yml)."""
    data = yaml.safe_load((STATE_DIR / "images.yml").read_text())
    return {"istio_hub": data["istio_mesh_hub"], "istio_tag": data["istio_mesh_tag"]}


@pytest.fixture(scope="module")
def istio(apps: client.AppsV1Api) -> None:
    """Istio as make istio installs it: istiod, the CNI DaemonSet and the gateway ready."""
    assert rolled_out(apps, ISTIO_NAMESPACE, "istiod"), "istiod is not ready: run `make istio`"
    ds = apps.read_namespaced_daemon_set("istio-cni-node", ISTIO_NAMESPACE)
    assert ds.status.number_ready == ds.status.desired_number_scheduled >= 1, ds.status
    assert rolled_out(apps, GATEWAY_NAMESPACE, GATEWAY_NAME), "the ingress gateway is not ready"


def rendered(namespace: str, where: Path) -> list[dict]:
    """What playbooks/render.yml renders through the roles for WORKLOADS in `namespace`, one
    replica each: the mesh on (inventory/local), no mesh policies, no observability."""
    settings, dest = where / "settings.json", where / "rendered.yml"
    settings.write_text(
        json.dumps(
            {
                "playground_namespace": namespace,
                "playground_observability": False,
                "mesh_policies_sets": [],
                "mesh_policies_ingress": False,  # no policy at all: the module has its own Gateway
                "app_workloads": WORKLOADS,
                "app_workloads_replicas": 1,
                "playground_render_dest": str(dest),
            }
        )
    )
    result = run(ANSIBLE_PLAYBOOK, "playbooks/render.yml", "-e", f"@{settings}")
    assert result.returncode == 0, "playbooks/render.yml failed (output above)"
    return [o for o in yaml.safe_load_all(dest.read_text()) if o]


def with_stats(obj: dict) -> dict:
    """A Deployment whose pods' sidecars also keep the stats these tests read."""
    if obj["kind"] == "Deployment":
        annotations = obj["spec"]["template"]["metadata"].setdefault("annotations", {})
        config = json.loads(annotations.get("proxy.istio.io/config", "{}"))
        annotations["proxy.istio.io/config"] = json.dumps({**config, **STATS_CONFIG})
    return obj


@pytest.fixture(scope="module")
def deployed(
    core: client.CoreV1Api, istio: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """The rendered objects, applied into a namespace of our own (deleted at the end)."""
    where = tmp_path_factory.mktemp("istio")
    name = f"mesh-istio-test-{uuid.uuid4().hex[:6]}"
    objects = [with_stats(o) for o in rendered(name, where)]
    (where / "objects.yml").write_text(yaml.safe_dump_all(objects))
    try:
        result = run(
            KUBECTL, "--kubeconfig", KUBECONFIG, "--context", CONTEXT, "apply", "--server-side",
            "--field-manager=mesh-playground-tests", "-f", where / "objects.yml", timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, "kubectl apply of the rendered objects failed"
        yield {"namespace": name, "objects": objects}
    finally:
        delete_namespace(core, name)


@pytest.fixture(scope="module")
def namespace(deployed: dict) -> str:
    """Ours, as the app_namespace role renders it: sidecar injection on, `restricted` enforced."""
    return deployed["namespace"]


@pytest.fixture(scope="module")
def workloads(core: client.CoreV1Api, apps: client.AppsV1Api, deployed: dict) -> dict:
    """webserver v1 and the proxy (-> http://webserver) rolled out: their pods, the proxy's
    ClusterIP and the Services' ports as rendered."""
    namespace, objects = deployed["namespace"], deployed["objects"]
    deployments = {
        o["metadata"]["labels"]["app"]: o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Deployment"
    }
    assert sorted(deployments) == ["proxy", "webserver"], deployments
    for name in deployments.values():
        wait_for(
            lambda name=name: rolled_out(apps, namespace, name), 300, f"deployment {name} ready"
        )
    pods = {
        app: core.list_namespaced_pod(namespace, label_selector=f"app={app}").items[0]
        for app in deployments
    }
    ports = {
        o["metadata"]["name"]: o["spec"]["ports"][0] for o in objects if o["kind"] == "Service"
    }
    return {
        "pods": pods,
        "proxy_url": f"http://{core.read_namespaced_service('proxy', namespace).spec.cluster_ip}"
        f":{ports['proxy']['port']}/",
        "ports": ports,
    }


def exec_in(namespace: str, pod: str, container: str, *cmd: str) -> str:
    result = run(
        KUBECTL, "--kubeconfig", KUBECONFIG, "--context", CONTEXT, "-n", namespace,
        "exec", pod, "-c", container, "--", *cmd, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def envoy_stats(namespace: str, pod: str) -> dict[str, int]:
    """The counters of a pod's sidecar Envoy (through pilot-agent, as istioctl does)."""
    out = exec_in(namespace, pod, "istio-proxy", "pilot-agent", "request", "GET", "stats")
    stats = {}
    for line in out.splitlines():
        name, _, value = line.partition(": ")
        # Istio's tag extraction names them e.g. "cluster.outbound|80||host;.upstream_rq_200".
        name = name.replace(";.", ".")
        if value.strip().isdigit():
            stats[name] = int(value)
    return stats


def sidecar(pod: client.V1Pod) -> tuple[client.V1Container, client.V1ContainerStatus | None]:
    """istio-proxy: a native sidecar (init container, restartPolicy Always) or a plain container."""
    for containers, statuses in (
        (pod.spec.init_containers or [], pod.status.init_container_statuses or []),
        (pod.spec.containers, pod.status.container_statuses or []),
    ):
        for c in containers:
            if c.name == "istio-proxy":
                return c, next((s for s in statuses if s.name == c.name), None)
    names = [c.name for c in pod.spec.containers]
    pytest.fail(f"pod {pod.metadata.name} has no istio-proxy sidecar: {names}")


# ---------------------------------------------------------------- the install
def test_istio_cni_is_chained_in_the_nodes_own_directories() -> None:
    bin_dir, conf_dir = (
        Path(p)
        for p in run(REPO / "cluster/istio-build.sh", "path", "node-cni-dirs").stdout.split()
    )
    assert (bin_dir / "istio-cni").is_file(), f"install-cni did not put istio-cni into {bin_dir}"
    conflists = sorted(conf_dir.glob("*.conflist"))
    assert conflists, f"no conflist in {conf_dir}"
    plugins = [p["type"] for p in json.loads(conflists[0].read_text())["plugins"]]
    assert plugins[0] == "bridge" and "istio-cni" in plugins, plugins
    # Nothing went into the system's CNI directories.
    assert not Path("/opt/cni/bin/istio-cni").exists()
    assert not Path("/usr/lib/cni/istio-cni").exists()


def test_the_playbook_changes_nothing_on_a_second_run(istio: None) -> None:
    result = run(ANSIBLE_PLAYBOOK, "playbooks/istio.yml")
    assert result.returncode == 0
    recap = re.search(r"ok=\d+\s+changed=(\d+)", result.stdout)
    assert recap and recap[1] == "0", "playbooks/istio.yml changed something on a second run"


# ---------------------------------------------------------------- injection
def test_restricted_is_enforced_in_the_test_namespace(
    core: client.CoreV1Api, namespace: str
) -> None:
    # A plain pod (root allowed, no seccomp, capabilities kept): fine for baseline, not restricted.
    plain = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "annotations": {"sidecar.istio.io/inject": "false"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, plain, dry_run="All")
    assert refused.value.status == 403 and "restricted" in refused.value.body


def test_pods_get_a_ready_sidecar_without_net_admin(
    workloads: dict, images: dict[str, str]
) -> None:
    for app, pod in workloads["pods"].items():
        container, status = sidecar(pod)
        assert container.image == f"{images['istio_hub']}/proxyv2:{images['istio_tag']}"
        assert status is not None and status.ready, f"{app}: istio-proxy not ready: {status}"
        names = [c.name for c in (pod.spec.init_containers or [])]
        assert "istio-init" not in names, f"{app}: iptables init container despite the CNI: {names}"
        # With the CNI the injector adds an unprivileged check of the redirection instead.
        assert "istio-validation" in names, names
        for c in [*(pod.spec.init_containers or []), *pod.spec.containers]:
            caps = (
                c.security_context
                and c.security_context.capabilities
                and c.security_context.capabilities.add
            ) or []
            assert not {"NET_ADMIN", "NET_RAW"} & set(caps), f"{app}/{c.name} adds {caps}"
        assert pod.metadata.annotations.get("sidecar.istio.io/status"), "no injection record"


def test_sidecar_runs_upstream_envoy_of_the_wheel(namespace: str, workloads: dict) -> None:
    pod = workloads["pods"]["proxy"].metadata.name
    info = json.loads(
        exec_in(namespace, pod, "istio-proxy", "pilot-agent", "request", "GET", "server_info")
    )
    assert info["version"].split("/")[1] == "1.40.0", info["version"]
    assert info["state"] == "LIVE"


# ---------------------------------------------------------------- traffic
def test_http_between_two_pods_goes_through_their_sidecars(namespace: str, workloads: dict) -> None:
    url = workloads["proxy_url"]
    answer = wait_for(
        lambda: (a := get(url)).status == 200 and ANSWER.match(a.body) and a,
        120,
        f"an answer at {url}",
    )
    # The proxy pod's inbound sidecar answered (Envoy names itself), the webserver answered it.
    assert answer.headers.get("server") == "istio-envoy", answer.headers
    webserver = workloads["pods"]["webserver"].metadata.name
    assert ANSWER.match(answer.body)["host"] == webserver
    for _ in range(5):
        assert get(url).status == 200
    port = workloads["ports"]["webserver"]
    outbound = f"cluster.outbound|{port['port']}||webserver.{namespace}.svc.cluster.local"
    out = envoy_stats(namespace, workloads["pods"]["proxy"].metadata.name)
    assert out.get(f"{outbound}.upstream_rq_200", 0) >= 6, {
        k: v for k, v in out.items() if k.startswith(outbound)
    }
    # Sidecar to sidecar is mutual TLS (Istio's auto mTLS, certificates from istiod's CA).
    assert out.get(f"{outbound}.ssl.handshake", 0) >= 1
    inbound = envoy_stats(namespace, webserver)
    assert inbound.get(f"cluster.inbound|{port['targetPort']}||.upstream_rq_200", 0) >= 6


def test_a_virtualservice_fault_abort_acts(
    custom: client.CustomObjectsApi, namespace: str, workloads: dict
) -> None:
    url = workloads["proxy_url"]
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "webserver-abort"},
        "spec": {
            "hosts": ["webserver"],
            "http": [
                {
                    "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
                    "route": [{"destination": {"host": "webserver"}}],
                }
            ],
        },
    }
    group = ("networking.istio.io", "v1", namespace, "virtualservices")
    custom.create_namespaced_custom_object(*group, vs)
    try:
        # The proxy relays what its sidecar answered instead of the webserver: Envoy's abort body.
        wait_for(
            lambda: "fault filter abort" in get(url).body, 60, "the fault abort in the answers"
        )
        stats = envoy_stats(namespace, workloads["pods"]["proxy"].metadata.name)
        assert sum(v for k, v in stats.items() if k.endswith("fault.aborts_injected")) >= 1
    finally:
        custom.delete_namespaced_custom_object(*group, "webserver-abort")
    wait_for(lambda: ANSWER.match(get(url).body), 60, "answers from the webserver again")


def test_the_ingress_gateway_answers_on_its_nodeport(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, workloads: dict
) -> None:
    group = ("networking.istio.io", "v1", namespace)
    # A host of its own: a playground left running (make deploy) has the gateway's "*".
    host = f"{namespace}.mesh-playground.local"
    custom.create_namespaced_custom_object(
        *group,
        "gateways",
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "ingress"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [host]}
                ],
            },
        },
    )
    custom.create_namespaced_custom_object(
        *group,
        "virtualservices",
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "proxy-ingress"},
            "spec": {
                "hosts": [host],
                "gateways": ["ingress"],
                "http": [
                    {
                        "route": [
                            {
                                "destination": {
                                    "host": f"proxy.{namespace}.svc.cluster.local",
                                    "port": {"number": workloads["ports"]["proxy"]["port"]},
                                }
                            }
                        ]
                    }
                ],
            },
        },
    )
    service = core.read_namespaced_service(GATEWAY_NAME, GATEWAY_NAMESPACE)
    assert service.spec.type == "NodePort"
    node_port = next(p.node_port for p in service.spec.ports if p.port == 80)
    url = f"http://127.0.0.1:{node_port}/"
    answer = wait_for(
        lambda: (a := get(url, host=host)).status == 200 and ANSWER.match(a.body) and a,
        120,
        f"an answer at {url} (Host {host})",
    )
    assert answer.headers.get("server") == "istio-envoy"


def test_istioctl_analyze_finds_no_errors(namespace: str, workloads: dict) -> None:
    istioctl_analyze(namespace)
