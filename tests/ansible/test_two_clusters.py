"""One inventory per cluster, shown on two real clusters: the local one and a second local
cluster beside it (its own API server, etcd data, ports, kubeconfig; KWOK nodes). A deploy to
one leaves every object of the other unchanged (resourceVersions compared), and `-i a -i b`
deploys each inventory to its own cluster."""

from collections.abc import Iterator

import pytest
import yaml
from ansible_live import DEFAULT_DEPLOYMENTS, LOCAL_HOST, OURS, REPO, deployments, run
from kubernetes import client, config

pytestmark = pytest.mark.cluster

NAMESPACE = "two-clusters"
# Both clusters without the mesh: the second has KWOK nodes and no Istio.
NO_MESH = ["-e", "playground_mesh=false", "-e", "app_workloads_replicas=1"]


@pytest.fixture(scope="module")
def second_api() -> Iterator[client.ApiClient]:
    up = run("cluster/cluster.sh", "--name", "second", "up", env={"CLUSTER_NODE_MODE": "kwok"})
    assert up.returncode == 0, up.stderr[-3000:]
    try:
        kubeconfig = str(REPO / ".cluster-second" / "kubeconfig")
        with config.new_client_from_config(kubeconfig, context="mesh-playground-second") as api:
            yield api
    finally:
        down = run("cluster/cluster.sh", "--name", "second", "down")
        assert down.returncode == 0, down.stderr[-3000:]


def snapshot(api: client.ApiClient) -> dict[str, str]:
    """Every object a deploy could touch (ours, by label), kind/ns/name -> resourceVersion.

    Objects of namespaces being deleted are left out: their status churns on its own (as do
    controllers' leader-election ConfigMaps, which are not ours)."""
    core, apps, net = client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api)
    terminating = {
        n.metadata.name for n in core.list_namespace().items if n.metadata.deletion_timestamp
    }
    seen = {
        f"Namespace/{n.metadata.name}": n.metadata.resource_version
        for n in core.list_namespace(label_selector=OURS).items
        if n.metadata.name not in terminating
    }
    for kind, listing in (
        ("Deployment", apps.list_deployment_for_all_namespaces),
        ("Service", core.list_service_for_all_namespaces),
        ("ConfigMap", core.list_config_map_for_all_namespaces),
        ("ServiceAccount", core.list_service_account_for_all_namespaces),
        ("NetworkPolicy", net.list_network_policy_for_all_namespaces),
    ):
        for item in listing(label_selector=OURS).items:
            if item.metadata.namespace not in terminating:
                key = f"{kind}/{item.metadata.namespace}/{item.metadata.name}"
                seen[key] = item.metadata.resource_version
    return seen


def playbook(name: str, *inventories: str, namespace: str = NAMESPACE):
    argv = ["ansible-playbook", f"playbooks/{name}"]
    for inventory in inventories:
        argv += ["-i", f"inventory/{inventory}"]
    return run(*argv, "-e", f"playground_namespace={namespace}", *NO_MESH)


def test_a_deploy_to_one_cluster_leaves_the_other_unchanged(local_api, second_api) -> None:
    before = snapshot(local_api)
    try:
        deployed = playbook("deploy.yml", "second")
        assert deployed.returncode == 0, deployed.stdout[-4000:]
        assert deployments(second_api, NAMESPACE) == DEFAULT_DEPLOYMENTS
        after = snapshot(local_api)
        assert after == before, {
            k: (before.get(k), after.get(k))
            for k in set(before) | set(after)
            if before.get(k) != after.get(k)
        }
        assert deployments(local_api, NAMESPACE) == set()
    finally:
        undeployed = playbook("undeploy.yml", "second")
        assert undeployed.returncode == 0, undeployed.stdout[-4000:]


def test_two_inventories_deploy_each_to_its_own_cluster(local_api, second_api) -> None:
    namespace = f"{NAMESPACE}-both"
    try:
        deployed = playbook("deploy.yml", "local", "second", namespace=namespace)
        assert deployed.returncode == 0, deployed.stdout[-4000:]
        assert (
            "mesh-playground-second" in deployed.stdout
            and "ok: [mesh-playground]" in deployed.stdout
        )
        for api in (local_api, second_api):
            assert deployments(api, namespace) == DEFAULT_DEPLOYMENTS
        # Each cluster holds its own objects: the records of the two are different objects.
        uids = {
            client.CoreV1Api(api).read_namespace(namespace).metadata.uid
            for api in (local_api, second_api)
        }
        assert len(uids) == 2
    finally:
        undeployed = playbook("undeploy.yml", "local", "second", namespace=namespace)
        assert undeployed.returncode == 0, undeployed.stdout[-4000:]
    for api in (local_api, second_api):
        assert deployments(api, namespace) == set()


def test_two_inventories_merged_into_one_target_are_refused(
    local_api, second_api, tmp_path
) -> None:
    """Inventories that keep their settings in group_vars/all merge into one target: refused."""
    for name, context in (("a", "mesh-playground"), ("b", "mesh-playground")):
        (tmp_path / name / "group_vars").mkdir(parents=True)
        (tmp_path / name / "hosts.yml").write_text(
            yaml.safe_dump({"all": {"hosts": {f"cluster-{name}": LOCAL_HOST}}})
        )
        (tmp_path / name / "group_vars" / "all.yml").write_text(
            f"playground_kubeconfig: {REPO / '.cluster' / 'kubeconfig'}\n"
            f"playground_context: {context}\n"
        )
    refused = run(
        "ansible-playbook",
        "playbooks/deploy.yml",
        "-i",
        str(tmp_path / "a"),
        "-i",
        str(tmp_path / "b"),
        "-e",
        f"playground_namespace={NAMESPACE}-merged",
    )
    assert refused.returncode != 0
    assert "all target context" in refused.stdout and "host_vars" in refused.stdout
    assert deployments(local_api, f"{NAMESPACE}-merged") == set()
