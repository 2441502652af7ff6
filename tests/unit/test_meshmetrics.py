"""Unit tests of the view's pure computation (apps/view/meshmetrics.py, meshobjects.py)."""

import math

import meshmetrics
import pytest
from meshobjects import on_hop, route_summary, summary, topology

NS = "mesh-playground"


def labels(source, service, workload, version, code=None):
    found = {
        "source_workload": source,
        "source_workload_namespace": "istio-ingress" if source == "istio-ingressgateway" else NS,
        "destination_service_name": service,
        "destination_service_namespace": NS,
        "destination_workload": workload,
        "destination_version": version,
    }
    if code is not None:
        found["response_code"] = code
    return found


def test_queries_select_the_callers_reports_of_the_namespace_over_the_window():
    queries = meshmetrics.queries(NS, "30s")
    assert list(queries) == ["requests", "p50", "p99"]
    assert queries["requests"] == (
        "sum by (source_workload,source_workload_namespace,destination_service_name,"
        "destination_service_namespace,destination_workload,destination_version,response_code) "
        '(rate(istio_requests_total{reporter="source",source_workload_namespace="mesh-playground"}'
        "[30s])) or "
        "sum by (source_workload,source_workload_namespace,destination_service_name,"
        "destination_service_namespace,destination_workload,destination_version,response_code) "
        '(rate(istio_requests_total{reporter="source",destination_service_namespace='
        '"mesh-playground"}[30s]))'
    )
    assert queries["p50"].startswith("histogram_quantile(0.5, sum by (source_workload,")
    assert queries["p99"].startswith("histogram_quantile(0.99, sum by (source_workload,")
    assert (
        "destination_version,le) (rate(istio_request_duration_milliseconds_bucket{"
        in (queries["p99"])
    )


def test_edges_split_success_and_quantiles():
    samples = {
        "requests": [
            (labels("proxy", "webserver", "webserverv1", "v1", "200"), 3.0),
            (labels("proxy", "webserver", "webserverv1", "v1", "400"), 3.0),  # a fault abort
            (labels("proxy", "webserver", "webserverv2", "v2", "0"), 2.0),  # no answer: failed
            (labels("proxy", "webserver", "webserverv2", "v2", "302"), 2.0),
            (labels("proxy", "raw.githubusercontent.com", "unknown", "unknown", "200"), 0.0),
        ],
        "p50": [(labels("proxy", "webserver", "webserverv1", "v1"), 4.25)],
        "p99": [(labels("proxy", "webserver", "webserverv1", "v1"), math.nan)],
    }
    edges = {edge["id"]: edge for edge in meshmetrics.edges(samples, "2m")}
    v1, v2 = edges["proxy->webserver:v1"], edges["proxy->webserver:v2"]
    assert (v1["share"], v1["success_rate"], v1["p50_ms"], v1["p99_ms"]) == (0.6, 0.5, 4.25, None)
    assert (v2["share"], v2["success_rate"], v2["p50_ms"], v2["requests"]) == (0.4, 0.5, None, 480)
    external = edges["proxy->raw.githubusercontent.com"]
    assert (external["target"], external["external"]) == ("raw.githubusercontent.com", True)
    assert (external["rps"], external["share"], external["success_rate"]) == (0.0, None, None)
    nodes = {node["id"]: node for node in meshmetrics.nodes(list(edges.values()))}
    assert nodes["raw.githubusercontent.com"]["kind"] == "external"
    assert nodes["proxy"]["column"] == 1 and nodes["webserverv1"]["column"] == 2


def test_nodes_are_placed_by_hops_from_the_gateway():
    samples = {
        "requests": [
            (labels("istio-ingressgateway", "proxy", "proxy", "v1", "200"), 1.0),
            (labels("proxy", "webserver", "webserverv1", "v1", "200"), 1.0),
        ]
    }
    skeleton = (
        ("istio-ingressgateway", "ingress gateway", "", 0),
        ("webserverv2", "webserver", "v2", 2),
    )
    nodes = meshmetrics.nodes(meshmetrics.edges(samples, "1m"), skeleton)
    assert [(n["id"], n["column"], n["kind"]) for n in nodes] == [
        ("istio-ingressgateway", 0, "gateway"),
        ("proxy", 1, "workload"),
        ("webserverv1", 2, "workload"),
        ("webserverv2", 2, "workload"),
    ]


def test_stat_rows_add_the_callers_of_a_workload():
    edges = [
        {"target": "webserverv1", "version": "v1", "rps": 3.0, "success_rate": 1.0,
         "p50_ms": 1.0, "p99_ms": 9.0, "requests": 180},
        {"target": "webserverv1", "version": "v1", "rps": 1.0, "success_rate": 0.0,
         "p50_ms": 2.0, "p99_ms": 8.0, "requests": 60},
    ]  # fmt: skip
    (row,) = meshmetrics.stat_rows(edges)
    assert row == {"workload": "webserverv1", "version": "v1", "rps": 4.0, "success_rate": 0.75,
                   "p50_ms": 1.0, "p99_ms": 9.0, "requests": 240}  # fmt: skip


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ({"route": [{"destination": {"host": "webserverv1"}}]}, "to webserverv1"),
        (
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
             "route": [{"destination": {"host": "webserver", "subset": "v2"}}]},
            "when header end-user exact jason, to webserver v2",
        ),
        (
            {"route": [{"destination": {"host": "webserver", "subset": "v1"}, "weight": 100}],
             "fault": {"delay": {"percentage": {"value": 10.5}, "fixedDelay": "5s"}}},
            "split v1 100, fault delay 10.5% 5s",
        ),
        (
            {"match": [{"uri": {"exact": "/redirect"}}],
             "redirect": {"uri": "/x", "authority": "webserverv1"}},
            "when uri exact /redirect, redirect to webserverv1/x",
        ),
        (
            {"rewrite": {"uri": "/kubernetes/x", "authority": "raw.githubusercontent.com"},
             "route": [{"destination": {"host": "raw.githubusercontent.com",
                                        "port": {"number": 443}}}],
             "retries": {"attempts": 2}},
            "rewrite uri /kubernetes/x authority raw.githubusercontent.com, "
            "to raw.githubusercontent.com:443, retries 2",
        ),
    ],
)  # fmt: skip
def test_route_summaries(route, expected):
    assert route_summary(route, NS) == expected


def test_object_summaries():
    rule = {"host": "webserver", "trafficPolicy": {
        "tls": {"mode": "ISTIO_MUTUAL"},
        "connectionPool": {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}},
        "outlierDetection": {"consecutive5xxErrors": 5, "baseEjectionTime": "30s"}}}  # fmt: skip
    assert summary("DestinationRule", rule, NS) == (
        "TLS ISTIO_MUTUAL, max 1 connections, max 1 pending, eject after 5 x 5xx for 30s"
    )
    assert summary("VirtualService", {"hosts": ["w"]}, NS) == "no http routes"
    assert summary("Gateway", {}, NS) == "no servers"


def test_objects_apply_to_the_gateways_hop_or_the_sidecars_hop():
    mesh_vs = {
        "kind": "VirtualService",
        "metadata": {"name": "webserver"},
        "spec": {
            "hosts": ["webserver.mesh-playground.svc.cluster.local"],
            "http": [{"route": [{"destination": {"host": "webserver"}}]}],
        },
    }
    gateway_vs = {
        "kind": "VirtualService",
        "metadata": {"name": "edge"},
        "spec": {
            "hosts": ["*"],
            "gateways": ["istio-ingress/gw"],
            "http": [{"route": [{"destination": {"host": "webserver"}}]}],
        },
    }
    objects = {"VirtualService": [mesh_vs, gateway_vs]}  # fmt: skip
    assert [o["name"] for o in on_hop("proxy", "webserver", objects, NS)] == ["webserver"]
    assert [o["name"] for o in on_hop("istio-ingressgateway", "webserver", objects, NS)] == ["edge"]
    assert on_hop("proxy", "other", objects, NS) == []


def deployed(name, app, version, proxyurl=None, **pod_metadata):
    env = [{"name": "PROXYURL", "value": proxyurl}] if proxyurl else []
    return {
        "metadata": {"name": name, "labels": {"app": app, "version": version}},
        "spec": {"template": {"metadata": pod_metadata,
                              "spec": {"containers": [{"name": app, "env": env}]}}},
    }  # fmt: skip


def test_the_topology_follows_proxyurl_without_a_gateway_route():
    """No VirtualService bound to a Gateway: no gateway node, the caller starts at column 1; a
    PROXYURL naming one workload's Service (webserverv2) leads there only; pods out of the mesh
    by annotation, and a PROXYURL that is no URL, give nothing."""
    objects = {
        "Deployment": [
            deployed("caller", "caller", "v1", "http://webserverv2.mesh-playground:3030/base"),
            deployed("webserverv1", "webserver", "v1"),
            deployed("webserverv2", "webserver", "v2"),
            deployed("odd", "odd", "v1", "http://[broken"),
            deployed("outside", "outside", "v1", annotations={"sidecar.istio.io/inject": "false"}),
        ]
    }
    nodes, hops = topology(objects, NS)
    assert hops == [("caller", "webserverv2")]
    assert sorted(nodes, key=lambda node: (node[3], node[0])) == [
        ("caller", "caller", "v1", 1),
        ("webserverv2", "webserver", "v2", 2),
        ("odd", "odd", "v1", 3),
        ("webserverv1", "webserver", "v1", 3),
    ]
