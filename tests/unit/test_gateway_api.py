"""The Gateway API twin of the mesh policies (mesh_policies_api gateway-api,
plugins/module_utils/gateway_api.py): each Istio route as an HTTPRoute rule, the series' Gateway
bound to the existing gateway, and the sets with no Gateway API form refused, saying why."""

from k8s_apply import gateway_service
from mesh_policies import mesh_policies_objects, mesh_policies_problems
from policy_settings import mesh_policies_defaults


def twin(sets, **settings):
    s = mesh_policies_defaults(sets=sets, api="gateway-api", **settings)
    assert mesh_policies_problems(s) == []
    return mesh_policies_objects(s)


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_a_split_routes_to_the_versions_services_by_weight_from_the_hosts_service():
    objects = twin(["subsets", "split"], split_weights={"v1": 80, "v2": 20})
    (route,) = by_kind(objects, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["name"] == "webserver" and route["metadata"]["namespace"] == "ns"
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "webserver"}]
    assert route["spec"]["rules"] == [
        {
            "backendRefs": [
                {"name": "webserverv1", "port": 80, "weight": 80},
                {"name": "webserverv2", "port": 80, "weight": 20},
            ]
        }
    ]
    assert not by_kind(objects, "VirtualService")


def test_the_hosts_traffic_policy_stays_istios_on_each_versions_service():
    objects = twin(["subsets", "split", "mtls"], load_balancer="LEAST_CONN")
    rules = {o["metadata"]["name"]: o["spec"] for o in by_kind(objects, "DestinationRule")}
    policy = {"loadBalancer": {"simple": "LEAST_CONN"}, "tls": {"mode": "ISTIO_MUTUAL"}}
    assert rules == {
        "webserverv1": {"host": "webserverv1", "trafficPolicy": policy},
        "webserverv2": {"host": "webserverv2", "trafficPolicy": policy},
    }


def test_redirect_rewrite_header_and_timeout_have_their_filters_and_fields():
    objects = twin(
        ["subsets", "split", "header-route", "redirect", "rewrite", "timeout"],
        redirect_match_uri="/", rewrite_match_uri="/old",
    )  # fmt: skip
    (route,) = by_kind(objects, "HTTPRoute")
    rules = route["spec"]["rules"]
    header = next(r for r in rules if "headers" in r.get("matches", [{}])[0])
    assert header["matches"] == [
        {"headers": [{"name": "end-user", "value": "jason", "type": "Exact"}]}
    ]
    assert header["backendRefs"] == [{"name": "webserverv2", "port": 80}]
    redirect = next(r for r in rules if r.get("filters", [{}])[0].get("type") == "RequestRedirect")
    assert redirect["matches"] == [{"path": {"type": "Exact", "value": "/"}}]
    assert redirect["filters"][0]["requestRedirect"] == {
        "path": {"type": "ReplaceFullPath", "replaceFullPath": "/redirected"},
        "statusCode": 301,
        "hostname": "webserverv1",
    }
    assert "backendRefs" not in redirect
    rewrite = next(r for r in rules if r.get("filters", [{}])[0].get("type") == "URLRewrite")
    assert rewrite["filters"][0]["urlRewrite"]["path"]["replaceFullPath"] == "/rewritten"
    assert rewrite["backendRefs"] == [{"name": "webserverv1", "port": 80}]
    assert all(r["timeouts"] == {"request": "1s"} for r in rules if "backendRefs" in r)


def test_the_gateway_is_bound_to_the_existing_gateway_service():
    objects = twin(["gateway"], gateway_hosts=["shop.example.com"])
    (gateway,) = by_kind(objects, "Gateway")
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["spec"]["gatewayClassName"] == "istio"
    assert gateway["spec"]["addresses"] == [
        {"type": "Hostname", "value": "istio-ingressgateway.istio-ingress.svc.cluster.local"}
    ]
    # Manual deployment: beside the gateway's Service, admitting routes of the app namespace.
    assert gateway["metadata"]["namespace"] == "istio-ingress"
    assert gateway["metadata"]["name"] == "ns-default-gateway"  # one per app namespace
    app_namespace = {"matchLabels": {"kubernetes.io/metadata.name": "ns"}}
    assert gateway["spec"]["listeners"] == [
        {
            "name": "http-80",
            "port": 80,
            "protocol": "HTTP",
            "allowedRoutes": {"namespaces": {"from": "Selector", "selector": app_namespace}},
        }
    ]
    (route,) = by_kind(objects, "HTTPRoute")
    assert route["metadata"]["namespace"] == "ns"
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "ns-default-gateway",
            "namespace": "istio-ingress",
        }
    ]
    assert route["spec"]["hostnames"] == ["shop.example.com"]
    assert route["spec"]["rules"] == [{"backendRefs": [{"name": "proxy", "port": 80}]}]


def test_a_gateway_service_in_the_app_namespace_admits_routes_of_the_same_namespace():
    objects = twin(["gateway"], gateway_service="gw.ns.svc.cluster.local")
    (gateway,) = by_kind(objects, "Gateway")
    assert gateway["metadata"] == dict(gateway["metadata"], namespace="ns", name="default-gateway")
    assert gateway["spec"]["listeners"][0]["allowedRoutes"] == {"namespaces": {"from": "Same"}}
    (route,) = by_kind(objects, "HTTPRoute")
    assert "hostnames" not in route["spec"]  # hosts: "*"


def test_the_same_settings_render_istio_objects_with_api_istio():
    s = mesh_policies_defaults(sets=["subsets", "split", "gateway"])
    kinds = {(o["apiVersion"], o["kind"]) for o in mesh_policies_objects(s)}
    assert ("networking.istio.io/v1", "VirtualService") in kinds
    assert not any(api.startswith("gateway.networking.k8s.io") for api, _ in kinds)


def test_sets_with_no_gateway_api_form_are_refused_saying_why():
    s = mesh_policies_defaults(
        sets=["subsets", "split", "fault-abort", "retry-5xx", "external-service"],
        api="gateway-api",
        external_route_webserver=False,
    )
    problems = " ".join(mesh_policies_problems(s))
    assert "the fault-abort set has no twin (fault injection has no Gateway API form)" in problems
    assert (
        "retry-5xx set has no twin (HTTPRoute retries are in the experimental channel" in problems
    )
    assert "external-service set has no twin (a route to a ServiceEntry host" in problems
    assert mesh_policies_problems(dict(s, api="istio")) == []


def test_the_gateway_service_is_the_found_gateway_the_selector_picks_else_ours():
    found = {
        "gateways": [
            {"name": "gw", "namespace": "theirs", "selector": {"istio": "ingress"}},
            {"name": "other", "namespace": "x", "selector": {"istio": "other"}},
        ]
    }
    assert gateway_service(found, {"istio": "ingress"}) == "gw.theirs.svc.cluster.local"
    assert gateway_service(None, {"istio": "ingressgateway"}) == (
        "istio-ingressgateway.istio-ingress.svc.cluster.local"
    )
