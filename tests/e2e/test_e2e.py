"""End to end on the real node: the seed's behaviour through real pods, updates without loss,
self-healing, clean removal. The tests run in file order; the last one undeploys.
"""

import json
import re
import subprocess
import uuid

from e2e_live import IMAGES_VARS, NAMESPACE, PLAYBOOK_ARGS, REPO, Load, get, run
from kubernetes import client
from polling import wait_for
from realnode import istioctl_analyze, namespace_gone
from rollout import rolled_out


def pod_names(core: client.CoreV1Api, selector: str) -> set[str]:
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    return {p.metadata.name for p in pods if p.metadata.deletion_timestamp is None}


def serving_pod(core: client.CoreV1Api, service_name: str) -> str:
    """The pod that answers a new connection to the Service's ClusterIP (kube-proxy picks it)."""
    service = core.read_namespaced_service(service_name, NAMESPACE)
    body = get(f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}/").body
    match = re.search(r" on (\S+) with code ", body)
    return match[1] if match else body


def test_proxy_answers_from_v1_and_v2_pods(core: client.CoreV1Api, proxy_url: str) -> None:
    answers = [get(proxy_url) for _ in range(80)]
    parsed = [a.parsed for a in answers]
    assert all(parsed), [a.body for a in answers if not a.parsed][:3]
    hosts = {"1": set(), "2": set()}
    for match in parsed:
        assert match["path"] == "/" and match["code"] == "200", match.string
        hosts[match["version"]].add(match["host"])
    assert hosts["1"], "no answer from a V1 pod in 80 requests"
    # kube-proxy balances connections, not requests: a proxy that keeps its upstream
    # connections alive forever stays on the pods it first reached.
    assert hosts["2"], f"no answer from a V2 pod in 80 requests (V1 pods: {hosts['1']})"
    # Each answer names the pod that served it: a real pod of that version's Deployment.
    assert hosts["1"] <= pod_names(core, "app=webserver,version=v1")
    assert hosts["2"] <= pod_names(core, "app=webserver,version=v2")


def test_every_app_pod_has_a_ready_sidecar_under_restricted(core: client.CoreV1Api) -> None:
    labels = core.read_namespace(NAMESPACE).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["istio-injection"] == "enabled"
    pods = [
        p
        for p in core.list_namespaced_pod(NAMESPACE, label_selector="app").items
        if p.metadata.deletion_timestamp is None
    ]
    assert {p.metadata.labels["app"] for p in pods} == {"webserver", "proxy", "view"}
    # The live view stays out of the mesh it shows (docs/observe.md): restricted, no sidecar.
    view = [p for p in pods if p.metadata.labels["app"] == "view"]
    assert [c.name for c in view[0].spec.init_containers or []] == []
    assert view[0].metadata.labels["sidecar.istio.io/inject"] == "false"
    for pod in (p for p in pods if p not in view):
        # A native sidecar: an init container that keeps running (restartPolicy Always).
        sidecar = [c for c in pod.spec.init_containers or [] if c.name == "istio-proxy"]
        assert sidecar and sidecar[0].restart_policy == "Always", pod.metadata.name
        assert not [c for c in pod.spec.init_containers if c.name == "istio-init"]
        statuses = {c.name: c for c in pod.status.init_container_statuses or []}
        assert statuses["istio-proxy"].ready, pod.metadata.name
        caps = [
            c.security_context.capabilities.add or []
            for c in pod.spec.init_containers
            if c.security_context and c.security_context.capabilities
        ]
        assert not {"NET_ADMIN", "NET_RAW"} & {cap for add in caps for cap in add}


def test_istioctl_analyze_reports_nothing_on_the_app_namespace(proxy_url: str) -> None:
    output = istioctl_analyze(NAMESPACE)
    assert "Warning [" not in output, output
    assert "No validation issues found" in output, output


def test_failsometimes_through_the_proxy_fails_about_a_third(proxy_url: str) -> None:
    answers = [get(proxy_url + "failsometimes") for _ in range(150)]
    codes = [a.parsed["code"] for a in answers if a.parsed]
    assert len(codes) == len(answers), [a.body for a in answers if not a.parsed][:3]
    # The proxy answers 200 and shows the upstream status (the seed's behaviour).
    assert all(a.status == 200 for a in answers)
    failed = codes.count("500") / len(codes)
    # p = 1/3, n = 150: mean 50, sd 5.8; these bounds are more than 3 sd away.
    assert 0.2 <= failed <= 0.47, f"{codes.count('500')} of {len(codes)} upstream 500s"
    assert set(codes) == {"200", "500"}


def test_rolling_update_of_v2_under_load_loses_no_request(
    core: client.CoreV1Api, apps: client.AppsV1Api, proxy_url: str
) -> None:
    before = pod_names(core, "app=webserver,version=v2")
    deployment = apps.read_namespaced_deployment("webserverv2", NAMESPACE)
    container = deployment.spec.template.spec.containers[0].name
    with Load(proxy_url) as load:
        wait_for(lambda: len(load.answers) >= 20, 30, "traffic before the update")
        # A new environment value: a new ReplicaSet replaces every V2 pod, one at a time.
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": container, "env": [{"name": "E2E_ROLLOUT", "value": uuid.uuid4().hex}]}
        ]}}}}  # fmt: skip
        apps.patch_namespaced_deployment("webserverv2", NAMESPACE, patch)
        wait_for(lambda: rolled_out(apps, NAMESPACE, "webserverv2"), 240, "webserverv2 rolled out")
        after = pod_names(core, "app=webserver,version=v2")
        assert not after & before, "old V2 pods are still running"
    failures = load.failures()
    print(f"{len(load.answers)} requests during the update, {len(failures)} failed")
    assert len(load.answers) >= 100
    assert failures == [], [f.body for f in failures[:5]]
    # The new pods serve (asked through their Service: every new connection is balanced).
    served = {serving_pod(core, "webserverv2") for _ in range(20)}
    assert served & after, f"no answer from the new V2 pods {after}, got {served}"


def test_deleted_webserver_pod_is_replaced_and_traffic_recovers(
    core: client.CoreV1Api, apps: client.AppsV1Api, proxy_url: str
) -> None:
    before = pod_names(core, "app=webserver,version=v1")
    victim = sorted(before)[0]
    core.delete_namespaced_pod(victim, NAMESPACE)
    replacement = wait_for(
        lambda: pod_names(core, "app=webserver,version=v1") - before, 120, "a replacement pod"
    )
    wait_for(
        lambda: rolled_out(apps, NAMESPACE, "webserverv1"), 120, "webserverv1 back to full strength"
    )
    assert victim not in pod_names(core, "app=webserver,version=v1")

    # Traffic recovers: a run of consecutive good answers through the proxy.
    streak = 0

    def recovered() -> bool:
        nonlocal streak
        answer = get(proxy_url)
        streak = streak + 1 if answer.parsed and answer.parsed["code"] == "200" else 0
        return streak >= 30

    wait_for(recovered, 60, "30 consecutive good answers through the proxy")
    # The new pod serves (asked through its version's Service).
    wait_for(
        lambda: serving_pod(core, "webserverv1") in replacement, 60, "an answer from the new pod"
    )


PROBE = """
import socket, sys
socket.gethostbyname("webserver")  # cluster DNS answers (else this raises and the pod fails)
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
except (TimeoutError, ConnectionRefusedError):
    # Refused by the namespace's default-deny egress (kube-router rejects), or else dropped
    # by the node's firewall: either way, not reachable, as it should be.
    sys.exit(0)
sys.exit("the kubelet port on the node's address is reachable from a pod")
"""


def run_python_pod(
    core: client.CoreV1Api, namespace: str, labels: dict[str, str], script: str, *args: str
) -> tuple[str, str]:
    """Runs `script` with python3 in a pod of `namespace` with `labels`, the webserver's image and
    no sidecar (it probes the network, not the mesh: a sidecar would accept every connection),
    until it ends: its phase and log."""
    name = f"e2e-probe-{uuid.uuid4().hex[:6]}"
    image = (
        core.read_namespaced_pod(sorted(pod_names(core, "app=webserver"))[0], NAMESPACE)
        .spec.containers[0]
        .image
    )
    secure = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": name, "labels": {**labels, "sidecar.istio.io/inject": "false"}},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "probe", "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", script, *args],
                            "securityContext": secure}],
        },
    })  # fmt: skip

    def finished() -> str | None:
        phase = core.read_namespaced_pod(name, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    try:
        phase = wait_for(finished, 120, f"the probe pod in {namespace} to finish")
        return phase, core.read_namespaced_pod_log(name, namespace)
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def test_pods_reach_cluster_dns_but_not_the_hosts_other_ports(core: client.CoreV1Api) -> None:
    node = core.list_node(label_selector="mesh-playground.io/node-mode=real").items[0]
    node_ip = next(a.address for a in node.status.addresses if a.type == "InternalIP")
    kubelet_port = node.status.daemon_endpoints.kubelet_endpoint.port
    phase, log = run_python_pod(core, NAMESPACE, {}, PROBE, node_ip, str(kubelet_port))
    assert phase == "Succeeded", log


# 20 TCP connections to host:port, each given 2 s; prints how many opened.
CONNECT = """
import socket, sys
opened = 0
for _ in range(20):
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
        opened += 1
    except OSError:
        pass
print(opened)
"""


def connections_opened(
    core: client.CoreV1Api, namespace: str, labels: dict[str, str], ip: str, port: int
) -> int:
    """How many of 20 TCP connections a pod of `namespace` with `labels` opens to ip:port."""
    phase, log = run_python_pod(core, namespace, labels, CONNECT, ip, str(port))
    assert phase == "Succeeded", log
    return int(log.strip())


def test_network_policies_admit_only_the_proxy_to_a_webserver(core: client.CoreV1Api) -> None:
    """Enforced by the real node's kube-router: a pod without the proxy's labels, in the app
    namespace or another one, opens none of 20 connections to a webserver pod's port; with the
    namespace's NetworkPolicies removed, the same pod opens all 20 (so the check can fail).
    That the proxy, the gateway, DNS, istiod, scraping and tracing still pass is what the rest of
    `make test` shows."""
    pod = core.read_namespaced_pod(sorted(pod_names(core, "app=webserver"))[0], NAMESPACE)
    ip, port = pod.status.pod_ip, pod.spec.containers[0].ports[0].container_port
    other = f"{NAMESPACE}-other-{uuid.uuid4().hex[:6]}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted", "istio-injection": "disabled"}
    core.create_namespace({"metadata": {"name": other, "labels": labels}})
    policies = client.NetworkingV1Api(core.api_client)
    try:
        assert connections_opened(core, NAMESPACE, {"app": "intruder"}, ip, port) == 0
        assert connections_opened(core, other, {"app": "proxy"}, ip, port) == 0
        for policy in policies.list_namespaced_network_policy(NAMESPACE).items:
            policies.delete_namespaced_network_policy(policy.metadata.name, NAMESPACE)
        assert connections_opened(core, NAMESPACE, {"app": "intruder"}, ip, port) == 20
    finally:
        core.delete_namespace(other)
        # The policies back, as the playbook writes them.
        result = run(
            "ansible-playbook", "playbooks/deploy.yml", "-e", f"@{IMAGES_VARS}", *PLAYBOOK_ARGS
        )
        assert result.returncode == 0, "playbooks/deploy.yml failed (output above)"
    assert connections_opened(core, NAMESPACE, {"app": "intruder"}, ip, port) == 0


def test_undeploy_leaves_nothing_running(core: client.CoreV1Api) -> None:
    result = run("ansible-playbook", "playbooks/undeploy.yml", *PLAYBOOK_ARGS)
    assert result.returncode == 0, "playbooks/undeploy.yml failed (output above)"

    wait_for(lambda: namespace_gone(core, NAMESPACE), 120, f"namespace {NAMESPACE} deleted")
    # And on the node itself: no container (pod sandbox or app) of the namespace is left.
    socket = "/run/mesh-playground/containerd/containerd.sock"

    def containers_left() -> list[str]:
        listing = subprocess.run(
            ["ctr", "--address", socket, "--namespace", "k8s.io", "containers", "list", "--quiet"],
            capture_output=True, text=True, check=True, cwd=REPO,
        )  # fmt: skip
        left = []
        for cid in listing.stdout.split():
            info = subprocess.run(
                ["ctr", "--address", socket, "--namespace", "k8s.io", "containers", "info", cid],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            labels = (
                json.loads(info.stdout or "{}").get("Labels", {}) if info.returncode == 0 else {}
            )
            if labels.get("io.kubernetes.pod.namespace") == NAMESPACE:
                left.append(cid)
        return left

    wait_for(lambda: not containers_left(), 120, f"no container of {NAMESPACE} on the node")
