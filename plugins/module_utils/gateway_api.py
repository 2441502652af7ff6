"""The Kubernetes Gateway API twin of the mesh policies (mesh_policies_api gateway-api): the
objects plugins/filter/mesh_policies.py renders for Istio's API, translated route by route, so
that both APIs come from one rendering and can be measured on the same traffic.

- the host's VirtualService (mesh traffic) becomes an HTTPRoute whose parent is the host's
  Service (GAMMA: `parentRefs: [{group: "", kind: Service}]`): each Istio HTTP route one rule,
  in order; a destination with a subset goes to the version's own Service (`<host><subset>`,
  the apps' naming rule: webserverv1), since the Gateway API routes to Services, not subsets;
- the series' Gateway and the VirtualService bound to it become a Gateway of class `istio`
  whose address is the existing ingress gateway's Service (Istio's manual deployment: istiod
  programs those gateway pods, it deploys none), in that Service's namespace as manual
  deployment requires, and an HTTPRoute attached to it;
- the host's DestinationRule becomes one per version's Service (webserverv1, ...), each with the
  host's traffic policy (load balancer, TLS, connection pool, outlier detection have no Gateway
  API form: they stay Istio's, on the Services the HTTPRoute sends traffic to); ServiceEntries
  and security policies stay as they are. Which sets have no twin at all (faults, retries, the
  external service's route) is the policy sets' own knowledge (mesh_policies.py): the role
  refuses them before anything is rendered.
"""

import copy

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"


def _backend(destination, port):
    name = destination["host"] + destination.get("subset", "")
    return {"name": name, "port": destination.get("port", {}).get("number", port)}


def _full_path(value):
    return {"type": "ReplaceFullPath", "replaceFullPath": value}


def _match(match):
    twin = {}
    if "uri" in match:
        (kind, value), *_ = match["uri"].items()
        twin["path"] = {"type": {"exact": "Exact", "prefix": "PathPrefix"}[kind], "value": value}
    if "headers" in match:
        twin["headers"] = [
            {
                "name": name,
                "value": value,
                "type": {"exact": "Exact", "regex": "RegularExpression"}[kind],
            }
            for name, how in match["headers"].items()
            for kind, value in how.items()
        ]
    return twin


def _rule(route, port):
    """One Istio HTTP route as an HTTPRoute rule."""
    rule = {}
    if "match" in route:
        rule["matches"] = [_match(m) for m in route["match"]]
    filters = []
    if "redirect" in route:
        redirect = {"path": _full_path(route["redirect"]["uri"]), "statusCode": 301}
        if "authority" in route["redirect"]:
            redirect["hostname"] = route["redirect"]["authority"]
        filters.append({"type": "RequestRedirect", "requestRedirect": redirect})
    if "rewrite" in route:
        rewrite = {"path": _full_path(route["rewrite"]["uri"])}
        if "authority" in route["rewrite"]:
            rewrite["hostname"] = route["rewrite"]["authority"]
        filters.append({"type": "URLRewrite", "urlRewrite": rewrite})
    if filters:
        rule["filters"] = filters
    if "route" in route:
        rule["backendRefs"] = [
            dict(
                _backend(d["destination"], port),
                **({"weight": d["weight"]} if "weight" in d else {}),
            )
            for d in route["route"]
        ]
    if "timeout" in route:
        rule["timeouts"] = {"request": route["timeout"]}
    return rule


def _http_route(virtual_service, parent, port, hostnames=()):
    spec = {"parentRefs": [parent]}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    spec["rules"] = [_rule(r, port) for r in virtual_service["spec"]["http"]]
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": copy.deepcopy(virtual_service["metadata"]),
        "spec": spec,
    }


def _gateway(gateway, gateway_service):
    """The twin of the series' Gateway. Istio's manual deployment takes the address only from a
    Service in the Gateway's own namespace, so the twin lives beside the gateway's Service (named
    after the app namespace too: every app namespace has its own) and admits routes from the app
    namespace alone."""
    meta = copy.deepcopy(gateway["metadata"])
    app_namespace = meta["labels"]["app.kubernetes.io/instance"]
    meta["namespace"] = gateway_service.split(".")[1]  # <name>.<namespace>.svc...
    if meta["namespace"] != app_namespace:
        meta["name"] = f"{app_namespace}-{meta['name']}"
    admitted = {"from": "Same"}
    if meta["namespace"] != app_namespace:
        selector = {"matchLabels": {"kubernetes.io/metadata.name": app_namespace}}
        admitted = {"from": "Selector", "selector": selector}
    listeners = [
        {
            "name": f"http-{server['port']['number']}",
            "port": server["port"]["number"],
            "protocol": "HTTP",
            "allowedRoutes": {"namespaces": admitted},
        }
        for server in gateway["spec"]["servers"]
    ]
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "Gateway",
        "metadata": meta,
        "spec": {
            "gatewayClassName": "istio",
            "addresses": [{"type": "Hostname", "value": gateway_service}],
            "listeners": listeners,
        },
    }


def _per_version(rule):
    """The host's DestinationRule as one per version's Service, with its traffic policy."""
    for subset in rule["spec"]["subsets"]:
        twin = copy.deepcopy(rule)
        twin["metadata"]["name"] = twin["spec"]["host"] = rule["spec"]["host"] + subset["name"]
        del twin["spec"]["subsets"]
        yield twin


def gateway_api_twin(objects, service_port, gateway_service):
    """The Gateway API twin of `objects` (rendered for Istio's API). `service_port`: the apps'
    Services' port (backendRefs name one); `gateway_service`: the in-cluster host name of the
    existing ingress gateway's Service (the twin Gateway's address)."""
    # The series' one Gateway (the gateway set), and the route bound to it attaches to its twin.
    gateway = next((_gateway(o, gateway_service) for o in objects if o["kind"] == "Gateway"), None)
    twins = []
    for obj in objects:
        spec = obj["spec"]
        if obj["kind"] == "Gateway":
            twins.append(gateway)
        elif obj["kind"] == "VirtualService" and spec.get("gateways"):
            hosts = [h for h in spec["hosts"] if h != "*"]
            parent = {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": gateway["metadata"]["name"],
                "namespace": gateway["metadata"]["namespace"],
            }
            twins.append(_http_route(obj, parent, service_port, hosts))
        elif obj["kind"] == "VirtualService":
            parent = {"group": "", "kind": "Service", "name": spec["hosts"][0]}
            twins.append(_http_route(obj, parent, service_port))
        elif obj["kind"] == "DestinationRule" and "subsets" in spec:
            twins.extend(_per_version(obj))
        else:
            twins.append(obj)
    return twins
