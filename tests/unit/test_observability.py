"""Unit tests of the observability settings' checks and the workload switches the view uses."""

import pytest
from observability import observability_problems
from test_filters import DEFAULTS, ENTRIES, IMAGES
from workloads import workload_problems, workloads

GOOD = {
    "sampling": 100.0,
    "prometheus_url": "http://prometheus.mesh-observability:9090",
    "tracing_provider": "zipkin",
    "scrape_interval": "5s",
    "retention": "2h",
    "namespace": "mesh-observability",
}


def test_the_defaults_have_no_problems():
    assert observability_problems(GOOD) == []
    assert observability_problems(dict(GOOD, sampling="0", retention="1h30m")) == []


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"sampling": 101}, "mesh_observability_sampling=101: use a percentage from 0 to 100"),
        ({"sampling": -1}, "mesh_observability_sampling=-1"),
        ({"sampling": "lots"}, "mesh_observability_sampling='lots'"),
        ({"sampling": True}, "mesh_observability_sampling=True"),
        ({"prometheus_url": "prometheus:9090"}, "playground_prometheus_url='prometheus:9090'"),
        ({"prometheus_url": "http://p:99999"}, "the port must be from 1 to 65535"),
        ({"prometheus_url": "http://p q"}, "use http(s)://host[:port]"),
        ({"tracing_provider": ""}, "mesh_observability_tracing_provider"),
        ({"scrape_interval": "5"}, "mesh_observability_scrape_interval='5'"),
        ({"namespace": "Mesh_Obs"}, "playground_observability_namespace='Mesh_Obs'"),
    ],
)
def test_bad_settings_name_what_to_change(overrides, says):
    problems = observability_problems(dict(GOOD, **overrides))
    assert len(problems) == 1 and says in problems[0], problems


VIEW = {
    "app": "view",
    "version": "v1",
    "name": "view",
    "sidecar": False,
    "api_read": [{"group": "networking.istio.io", "resources": ["virtualservices"]}],
}
IMAGES_WITH_VIEW = dict(IMAGES, view="localhost/mp/view:1")


def test_a_disabled_entry_is_left_out_and_not_checked():
    entries = [*ENTRIES, dict(VIEW, enabled="False", replicas=-1)]
    assert workload_problems(entries, DEFAULTS, IMAGES) == []
    assert [w["name"] for w in workloads(entries, DEFAULTS, IMAGES)] == [
        "webserverv1",
        "webserverv2",
        "proxy",
    ]


def test_sidecar_and_api_read_reach_the_expanded_entry():
    entries = [*ENTRIES, dict(VIEW, enabled=True)]
    assert workload_problems(entries, DEFAULTS, IMAGES_WITH_VIEW) == []
    view = workloads(entries, DEFAULTS, IMAGES_WITH_VIEW)[-1]
    assert view["sidecar"] is False and view["api_read"] == VIEW["api_read"]
    assert workloads(ENTRIES, DEFAULTS, IMAGES)[0]["sidecar"] is True


@pytest.mark.parametrize(
    "api_read",
    [{"group": "x"}, [{"group": "x", "resources": []}], [{"resources": ["pods"]}], ["pods"]],
)
def test_bad_api_read_is_refused(api_read):
    problems = workload_problems(
        [*ENTRIES, dict(VIEW, api_read=api_read)], DEFAULTS, IMAGES_WITH_VIEW
    )
    assert len(problems) == 1 and "app_workloads[view].api_read=" in problems[0], problems


def test_no_workload_left_is_a_problem():
    assert workload_problems([dict(VIEW, enabled=False)], DEFAULTS, IMAGES_WITH_VIEW) == [
        "app_workloads: list at least one workload, e.g. {app: webserver, version: v1}."
    ]
