"""The live view (apps/view/view.py) under real gunicorn, against a stub Prometheus and a stub
Kubernetes API that are real HTTP servers on loopback (apps_live.StubPrometheus, StubKubernetes)
answering the series' 80/20 split, the collection's Istio objects and the Deployments of the
app_workloads role's default list."""

import json
import threading
import time

import pytest
from apps_live import DEADLINE, StubPrometheus, deployment, free_port, raw_request


def graph(view, target="/api/graph"):
    response = raw_request(view.port, target)
    assert response.status == 200, response
    assert response.headers["content-type"] == "application/json"
    return json.loads(response.body)


@pytest.fixture
def view(serve, prometheus, kubernetes):
    return serve("view", PROMETHEUS_URL=prometheus.url, **kubernetes.env)


def test_edges_hold_rate_split_success_and_latency_from_prometheus(view, prometheus):
    data = graph(view)
    assert (data["namespace"], data["window"]) == ("mesh-playground", "1m")
    assert data["errors"] == {"prometheus": None, "kubernetes": None}
    edges = {edge["id"]: edge for edge in data["edges"]}
    # The decoys (the servers' own reports, another namespace) are not edges.
    assert list(edges) == [
        "istio-ingressgateway->proxy:v1",
        "proxy->webserver:v1",
        "proxy->webserver:v2",
    ]
    gateway, v1, v2 = edges.values()
    figures = ("rps", "share", "success_rate", "p50_ms", "p99_ms", "requests")
    assert [gateway[f] for f in figures] == [10.0, 1.0, 0.98, 14.0, 95.0, 600]
    assert [v1[f] for f in figures] == [8.0, 0.8, 0.95, 4.2, 24.5, 480]  # 0.4 rps of 503
    assert [v2[f] for f in figures] == [2.0, 0.2, 1.0, 5.5, 48.0, 120]
    assert (v1["source"], v1["destination"], v1["version"], v1["target"]) == (
        "proxy", "webserver", "v1", "webserverv1",
    )  # fmt: skip
    assert v1["codes"] == {"200": 7.6, "503": 0.4}
    nodes = {node["id"]: node for node in data["nodes"]}
    assert list(nodes) == ["istio-ingressgateway", "proxy", "webserverv1", "webserverv2"]
    assert [nodes[n]["column"] for n in nodes] == [0, 1, 2, 2]
    assert nodes["webserverv1"]["rps"] == 8.0
    # three instant queries, each over the window, each on the callers' reports only
    assert len(prometheus.queries) == 3
    assert all("[1m])" in q and 'reporter="source"' in q for q in prometheus.queries)


def test_the_window_can_be_chosen_per_request(view, prometheus):
    data = graph(view, "/api/graph?window=5m")
    assert data["window"] == "5m"
    assert {edge["id"]: edge["requests"] for edge in data["edges"]}["proxy->webserver:v2"] == 600
    assert all("[5m])" in q for q in prometheus.queries)


def test_objects_in_force_are_summarised_per_hop(view, kubernetes):
    objects = graph(view)["objects"]
    summary = {hop: [(o["kind"], o["name"], o["summary"]) for o in found]
               for hop, found in objects.items()}  # fmt: skip
    assert summary == {
        "istio-ingressgateway->proxy": [
            ("VirtualService", "proxy", "via gateway mesh-playground/default-gateway: to proxy"),
            ("Gateway", "default-gateway", "port 80 HTTP, hosts *"),
        ],
        "proxy->webserver": [
            (
                "VirtualService",
                "webserver",
                "split v1 80 / v2 20, fault abort 50% 400, retries 3 x 2s, timeout 10s",
            ),
            ("DestinationRule", "webserver", "subsets v1, v2, load balancer ROUND_ROBIN"),
        ],
        "proxy->raw.githubusercontent.com": [
            ("DestinationRule", "github", "TLS SIMPLE"),
            (
                "ServiceEntry",
                "github",
                "MESH_EXTERNAL raw.githubusercontent.com port 443 TLS, resolution DNS",
            ),
        ],
    }
    paths = {path for path, _ in kubernetes.seen}
    assert paths == {
        f"/apis/networking.istio.io/v1/namespaces/mesh-playground/{plural}"
        for plural in ("virtualservices", "destinationrules", "gateways", "serviceentries")
    } | {"/apis/apps/v1/namespaces/mesh-playground/deployments"}
    assert {auth for _, auth in kubernetes.seen} == {"Bearer view-token"}


@pytest.fixture
def no_traffic():
    """A Prometheus that answers, with no request in the window."""
    server = StubPrometheus([])
    yield server
    server.stop()


def placed(data):
    return [(node["id"], node["service"], node["version"], node["column"], node["kind"])
            for node in data["nodes"]]  # fmt: skip


def test_before_any_traffic_the_graph_is_what_is_deployed(serve, no_traffic, kubernetes):
    """The role's default list as Deployments: a node each but the view's (out of the mesh), the
    gateway's route to the proxy (its VirtualService), the proxy's PROXYURL to the webserver."""
    view = serve("view", PROMETHEUS_URL=no_traffic.url, **kubernetes.env)
    data = graph(view)
    assert data["errors"] == {"prometheus": None, "kubernetes": None}
    assert data["edges"] == []
    assert placed(data) == [
        ("istio-ingressgateway", "ingress gateway", "", 0, "gateway"),
        ("proxy", "proxy", "v1", 1, "workload"),
        ("webserverv1", "webserver", "v1", 2, "workload"),
        ("webserverv2", "webserver", "v2", 2, "workload"),
    ]
    assert all(node["rps"] == 0 for node in data["nodes"])
    assert set(data["objects"]) == {
        "istio-ingressgateway->proxy", "proxy->webserver", "proxy->raw.githubusercontent.com",
    }  # fmt: skip
    assert data["objects"]["proxy->webserver"]


def test_a_deployment_added_appears_and_one_without_app_is_left_out(serve, no_traffic, kubernetes):
    """Read at each request: a webserver v3 joins v1 and v2 (the proxy's PROXYURL names their
    service), a Deployment on no hop comes last, one without an app label is no node."""
    view = serve("view", PROMETHEUS_URL=no_traffic.url, **kubernetes.env)
    assert len(graph(view)["nodes"]) == 4
    kubernetes.objects["Deployment"] += [
        deployment("webserverv3", {"app": "webserver", "version": "v3"}),
        deployment("cache", {"app": "cache", "version": "v1"}),
        deployment("batch", {"version": "v1"}),
        deployment("unversioned", {"app": "unversioned"}),
    ]
    assert placed(graph(view))[1:] == [
        ("proxy", "proxy", "v1", 1, "workload"),
        ("webserverv1", "webserver", "v1", 2, "workload"),
        ("webserverv2", "webserver", "v2", 2, "workload"),
        ("webserverv3", "webserver", "v3", 2, "workload"),
        ("cache", "cache", "v1", 3, "workload"),
    ]


def test_a_proxyurl_naming_the_full_service_name_is_the_same_hop(serve, no_traffic, kubernetes):
    (proxy,) = [d for d in kubernetes.objects["Deployment"] if d["metadata"]["name"] == "proxy"]
    (env,) = [v for v in proxy["spec"]["template"]["spec"]["containers"][0]["env"]
              if v["name"] == "PROXYURL"]  # fmt: skip
    env["value"] = "http://webserver.mesh-playground.svc.cluster.local:3031"
    view = serve("view", PROMETHEUS_URL=no_traffic.url, **kubernetes.env)
    data = graph(view)
    assert "proxy->webserver" in data["objects"]
    assert [node["column"] for node in data["nodes"]] == [0, 1, 2, 2]


def test_with_the_api_down_the_graph_is_what_prometheus_saw(
    serve, prometheus, no_traffic, kubernetes
):
    down = f"http://127.0.0.1:{free_port()}"
    env = {**kubernetes.env, "KUBE_API_URL": down}
    refused = f"cannot connect to {down}: Connection refused"
    view = serve("view", PROMETHEUS_URL=prometheus.url, **env)
    data = graph(view)
    assert data["errors"] == {"prometheus": None, "kubernetes": refused}
    assert [(node["id"], node["column"]) for node in data["nodes"]] == [
        ("istio-ingressgateway", 0), ("proxy", 1), ("webserverv1", 2), ("webserverv2", 2),
    ]  # fmt: skip
    quiet = serve("view", PROMETHEUS_URL=no_traffic.url, **env)
    data = graph(quiet)  # nothing to draw: the banner says why
    assert (data["nodes"], data["edges"], data["objects"]) == ([], [], {})
    assert data["errors"] == {"prometheus": None, "kubernetes": refused}
    assert raw_request(quiet.port, "/").status == 200


def test_a_role_without_deployments_still_shows_the_istio_objects(serve, prometheus, kubernetes):
    """A view whose Role predates the Deployments (403): the hops Prometheus saw keep their
    objects, and the banner names the missing permission."""
    kubernetes.forbidden = {"deployments"}
    view = serve("view", PROMETHEUS_URL=prometheus.url, **kubernetes.env)
    data = graph(view)
    assert data["errors"]["kubernetes"] == (
        f"{kubernetes.url} answered HTTP 403 for deployments "
        "(RBAC: may this ServiceAccount list deployments in mesh-playground?)"
    )
    assert len(data["nodes"]) == 4
    assert data["objects"]["proxy->webserver"]


def test_the_page_is_one_self_contained_html_document(view):
    response = raw_request(view.port, "/")
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "'unsafe-inline'" not in csp  # the inline script and style are allowed by hash
    page = response.body.decode()
    assert 'id="banner-prometheus"' in page and 'id="graph"' in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # no external asset
    assert "src=" not in page and page.count("<link") == 1  # the icon: none (data:,)
    assert '<link rel="icon" href="data:,">' in page


def _down(view_port):
    started = time.monotonic()
    response = raw_request(view_port, "/api/graph")
    took = time.monotonic() - started
    assert response.status == 200
    return json.loads(response.body), took


def test_prometheus_refusing_connections_is_named_and_the_rest_still_answers(serve, kubernetes):
    down = f"http://127.0.0.1:{free_port()}"
    view = serve("view", PROMETHEUS_URL=down, **kubernetes.env)
    data, _ = _down(view.port)
    assert data["errors"]["prometheus"] == f"cannot connect to {down}: Connection refused"
    assert data["errors"]["kubernetes"] is None
    assert data["edges"] == []
    assert len(data["nodes"]) == 4  # the playground's topology is drawn anyway
    assert data["objects"]["proxy->webserver"]  # the API still answered
    assert raw_request(view.port, "/").status == 200


def test_a_hanging_prometheus_times_out_after_2s(serve, kubernetes, silent):
    view = serve("view", PROMETHEUS_URL=silent.url, **kubernetes.env)
    data, took = _down(view.port)
    assert data["errors"]["prometheus"] == f"{silent.url} did not answer within 2 s"
    assert data["objects"]["proxy->webserver"]
    assert 2.0 <= took < 2.0 + 3.0  # one timeout, not one per query (3 s: a loaded machine)


def test_the_api_down_or_hanging_or_refusing_the_token_is_named(
    serve, prometheus, silent, tmp_path
):
    token = tmp_path / "token"
    token.write_text("other")
    cases = {
        f"http://127.0.0.1:{free_port()}": "cannot connect to {url}: Connection refused",
        silent.url: "{url} did not answer within 2 s",
    }
    for url, message in cases.items():
        view = serve("view", PROMETHEUS_URL=prometheus.url, KUBE_API_URL=url,
                     KUBE_TOKEN_FILE=str(token))  # fmt: skip
        data, took = _down(view.port)
        assert data["errors"] == {"prometheus": None, "kubernetes": message.format(url=url)}
        assert len(data["edges"]) == 3  # Prometheus still answered
        assert all(found == [] for found in data["objects"].values())
        assert took < 2.0 + 3.0  # the API's timeout ran beside Prometheus' queries
        view.stop()


def test_a_refused_token_is_named(serve, prometheus, kubernetes, tmp_path):
    token = tmp_path / "wrong"
    token.write_text("wrong")
    env = {**kubernetes.env, "KUBE_TOKEN_FILE": str(token)}
    view = serve("view", PROMETHEUS_URL=prometheus.url, **env)
    error = graph(view)["errors"]["kubernetes"]
    assert error == (
        f"{kubernetes.url} answered HTTP 401 for virtualservices "
        "(the ServiceAccount token was refused)"
    )


@pytest.mark.parametrize(
    ("target", "status", "reason"),
    [
        ("/api/graph?window=abc", 400, b"window='abc': expected a duration like 30s"),
        ("/?window=0m", 400, b"window='0m'"),
        ("/api/graph?window=1m&window=2x", 400, b"window='2x'"),
        ("/api/graph?window=", 400, b"window=''"),
        ("/api/graph?namespace=kube-system", 400, b"unknown query parameter 'namespace'"),
        ("/api/graph?a&b&c&d&e", 400, b"too many query parameters"),
        ("/nope", 404, b"not found: '/nope'"),
        ("/api/graph/", 404, b"not found"),
        ("/api", 404, b"not found"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(view, target, status, reason):
    response = raw_request(view.port, target)
    assert (response.status, response.headers["content-type"]) == (
        status, "text/plain; charset=utf-8",
    )  # fmt: skip
    assert reason in response.body
    assert response.headers["x-content-type-options"] == "nosniff"


def test_methods_other_than_get_and_head_are_405(view):
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        response = raw_request(view.port, "/api/graph", method=method)
        assert response.status == 405, method
        assert response.headers["allow"] == "GET, HEAD"
    head = raw_request(view.port, "/api/graph", method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 0
    head = raw_request(view.port, "/nope", method="HEAD")
    assert head.status == 404 and head.body == b""
    assert raw_request(view.port, "/healthz").body == b"ok"
    assert raw_request(view.port, "/readyz").body == b"ok"


def test_no_request_target_or_method_gives_a_5xx(view):
    targets = ["*", "/", "x:1", "http://[::1/x", "https://e/", "//", "/;", "/%00", "/?window=1m#x",
               "/api/graph?window=%ff", "/api/graph?%zz=1", "/api/graph?="]  # fmt: skip
    for method in ("GET", "HEAD", "POST", "OPTIONS", "CONNECT"):
        for target in targets:
            response = raw_request(view.port, target, method=method)
            assert response.status < 500, (method, target, response)


def test_probes_answer_while_every_thread_waits_on_a_hung_prometheus(serve, kubernetes, silent):
    view = serve("view", PROMETHEUS_URL=silent.url, GUNICORN_THREADS=2, **kubernetes.env)
    waiting = [
        threading.Thread(target=raw_request, args=(view.port, "/api/graph"), daemon=True)
        for _ in range(4)
    ]
    for client in waiting:
        client.start()
    time.sleep(0.3)  # the clients' pace: let them take the threads
    started = time.monotonic()
    assert raw_request(view.port, "/healthz", timeout=DEADLINE).status == 200
    assert time.monotonic() - started < 1.0
    for client in waiting:
        client.join(DEADLINE)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROMETHEUS_URL": None}, "PROMETHEUS_URL='': expected http://host[:port]"),
        ({"PROMETHEUS_URL": "https://p:9090"}, "PROMETHEUS_URL='https://p:9090': expected http"),
        ({"PROMETHEUS_URL": "http://p:9090/x"}, "PROMETHEUS_URL='http://p:9090/x'"),
        ({"PROMETHEUS_URL": "http://p:99999"}, "PROMETHEUS_URL='http://p:99999'"),
        ({"PROMETHEUS_URL": "http://u@p"}, "PROMETHEUS_URL='http://u@p'"),
        ({"VIEW_WINDOW": "1e3"}, "VIEW_WINDOW='1e3': expected a duration like 30s"),
        ({"VIEW_NAMESPACE": "Mesh"}, "VIEW_NAMESPACE='Mesh': expected a Kubernetes namespace"),
        ({"KUBE_API_URL": "ftp://x"}, "KUBE_API_URL='ftp://x': expected http(s)://host[:port]"),
        ({"KUBE_TOKEN_FILE": "/nonexistent"}, "KUBE_TOKEN_FILE='/nonexistent': cannot read it"),
        ({"KUBE_CA_FILE": "relative"}, "KUBE_CA_FILE='relative': expected an absolute path"),
        ({"KUBERNETES_SERVICE_HOST": "a b"}, "KUBERNETES_SERVICE_HOST='a b'"),
    ],
)
def test_bad_settings_stop_the_start_naming_the_variable(serve, env, message):
    view = serve("view", wait=False, **{"PROMETHEUS_URL": "http://127.0.0.1:9090", **env})
    assert view.process.wait(timeout=DEADLINE) != 0
    log = view.log()
    assert message in log and "Traceback" not in log


def test_in_a_pod_the_api_is_the_service_accounts(serve, prometheus, kubernetes):
    """KUBERNETES_SERVICE_HOST/_PORT and the mounted token lead to https://<host>:<port>."""
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(free_port())}
    view = serve("view", PROMETHEUS_URL=prometheus.url,
                 KUBE_TOKEN_FILE=kubernetes.env["KUBE_TOKEN_FILE"], **env)  # fmt: skip
    error = graph(view)["errors"]["kubernetes"]
    url = f"https://127.0.0.1:{env['KUBERNETES_SERVICE_PORT']}"
    assert error in (
        f"cannot connect to {url}: Connection refused",  # the CA file was readable
        "cannot read /var/run/secrets/kubernetes.io/serviceaccount/ca.crt: No such file or "
        "directory",
    )
