"""Fixtures of the end-to-end tests: the apps deployed with Ansible onto the real node.

`make test-e2e` brings the cluster up (CLUSTER_NODE_MODE=real) first; the session fixture
builds and imports the images (cached: seconds when nothing changed), deploys with
playbooks/deploy.yml and the image tags of .cluster/images.yml, and finds the proxy's URL.
"""

from collections.abc import Iterator

import pytest
from e2e_live import IMAGES_VARS, NAMESPACE, PLAYBOOK_ARGS, get, run
from kubernetes import client
from polling import wait_for
from realnode import real_node_api


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.realnode)


@pytest.fixture(scope="session")
def api() -> Iterator[client.ApiClient]:
    yield from real_node_api(
        "the end-to-end tests need real pods",
        "run `make cluster-down` then `CLUSTER_NODE_MODE=real make test-e2e`",
    )


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture(scope="session")
def deployed(api: client.ApiClient) -> None:
    """The apps, deployed by the project's playbook with the locally built images."""
    result = run("images/build.sh")
    assert result.returncode == 0, "images/build.sh failed (output above)"
    result = run(
        "ansible-playbook", "playbooks/deploy.yml", "-e", f"@{IMAGES_VARS}", *PLAYBOOK_ARGS
    )
    assert result.returncode == 0, "playbooks/deploy.yml failed (output above)"


@pytest.fixture(scope="session")
def proxy_url(deployed: None) -> str:
    """The proxy Service's URL (`make url` for the tests' namespace), once the proxy answers
    through it. Not the gateway: its catch-all host routes to the playground's namespace."""
    result = run("cluster/node-real/url.sh", "--proxy", env={"PLAYGROUND_NAMESPACE": NAMESPACE})
    assert result.returncode == 0, "cluster/node-real/url.sh failed (output above)"
    url = result.stdout.strip()
    assert url.startswith("http://127.0.0.1:"), url
    wait_for(lambda: get(url).parsed, 120, f"a webserver answer through the proxy at {url}")
    return url
