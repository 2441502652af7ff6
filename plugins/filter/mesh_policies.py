"""Render the Istio objects of the chosen mesh policy sets (filter `mesh_policies_objects`).

Several policy sets contribute to the SAME objects: one VirtualService and one DestinationRule
per host is what Istio expects, so the sets are merged as data here instead of templating one
file per blog post. Inputs were validated by the role (argument spec + tasks/validate.yml)
before this runs; this module only shapes data.
"""

API_VERSION = "networking.istio.io/v1"
SECURITY_API_VERSION = "security.istio.io/v1"
MANAGED_LABELS = {
    "app.kubernetes.io/part-of": "mesh-playground",
    "app.kubernetes.io/component": "mesh-policies",
    "app.kubernetes.io/managed-by": "ansible",
}
# Sets that decide where the catch-all route of the webserver VirtualService goes.
DEFAULT_ROUTE_SETS = ("route-v1", "split", "external-service")


def _metadata(s, name, namespace):
    labels = dict(MANAGED_LABELS, **{"app.kubernetes.io/instance": s["namespace"]})
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "annotations": {"mesh-playground/policy-sets": ",".join(s["sets"])},
    }


def _obj(s, kind, name, spec, namespace=None, api_version=API_VERSION):
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": _metadata(s, name, namespace or s["namespace"]),
        "spec": spec,
    }


def _fault(s):
    fault = {}
    if "fault-abort" in s["sets"]:
        fault["abort"] = {
            "percentage": {"value": s["fault_abort_percent"]},
            "httpStatus": s["fault_abort_status"],
        }
    if "fault-delay" in s["sets"]:
        fault["delay"] = {
            "percentage": {"value": s["fault_delay_percent"]},
            "fixedDelay": s["fault_delay_duration"],
        }
    return fault


def _forwarding(s, route):
    """Decorate a route that forwards traffic with the fault and retry sets."""
    fault = _fault(s)
    if fault:
        route["fault"] = fault
    if "retry-5xx" in s["sets"]:
        route["retries"] = {
            "attempts": s["retry_attempts"],
            "perTryTimeout": s["retry_per_try_timeout"],
            "retryOn": s["retry_on"],
        }
        route["timeout"] = s["retry_timeout"]
    if "timeout" in s["sets"]:
        route["timeout"] = s["timeout"]
    return route


def _default_route(s):
    """The catch-all route: where traffic goes when no match route took it."""
    sets = s["sets"]
    if "route-v1" in sets:
        return {"name": "route-v1", "route": [{"destination": {"host": s["route_v1_host"]}}]}
    if "split" in sets:
        return {
            "name": "split",
            "route": [
                {"destination": {"host": s["host"], "subset": subset}, "weight": int(weight)}
                for subset, weight in s["split_weights"].items()
            ],
        }
    if "external-service" in sets and s["external_route_webserver"]:
        return {
            "name": "external-service",
            "rewrite": {"uri": s["external_path"], "authority": s["external_host"]},
            "route": [
                {
                    "destination": {
                        "host": s["external_host"],
                        "port": {"number": s["external_port"]},
                    }
                }
            ],
        }
    return {"name": "default", "route": [{"destination": {"host": s["host"]}}]}


def _webserver_http_routes(s):
    """Match routes first (Istio picks the first match), the catch-all route last."""
    sets = s["sets"]
    routes = []
    if "redirect" in sets:
        routes.append(
            {
                "name": "redirect",
                "match": [{"uri": {"exact": s["redirect_match_uri"]}}],
                "redirect": {"uri": s["redirect_uri"], "authority": s["redirect_authority"]},
            }
        )
    if "rewrite" in sets:
        routes.append(
            _forwarding(
                s,
                {
                    "name": "rewrite",
                    "match": [{"uri": {"exact": s["rewrite_match_uri"]}}],
                    "rewrite": {"uri": s["rewrite_uri"]},
                    "route": [{"destination": {"host": s["rewrite_host"]}}],
                },
            )
        )
    if "header-route" in sets:
        header = {s["header_route_match"]: s["header_route_value"]}
        routes.append(
            _forwarding(
                s,
                {
                    "name": "header-route",
                    "match": [{"headers": {s["header_route_name"]: header}}],
                    "route": [
                        {"destination": {"host": s["host"], "subset": s["header_route_subset"]}}
                    ],
                },
            )
        )
    routes.append(_forwarding(s, _default_route(s)))
    return routes


# Sets that shape the webserver VirtualService when present; without any of them it is not
# rendered (a VirtualService that only repeats Kubernetes' default routing adds nothing).
VIRTUALSERVICE_SETS = frozenset(
    {"route-v1", "split", "header-route", "fault-abort", "fault-delay", "retry-5xx", "timeout"}
    | {"redirect", "rewrite"}
)


def _webserver_destination_rule(s):
    sets = s["sets"]
    policy = {}
    if "subsets" in sets:
        policy["loadBalancer"] = {"simple": s["load_balancer"]}
    if "mtls" in sets:
        policy["tls"] = {"mode": s["mtls_mode"]}
    if "connection-pool" in sets:
        policy["connectionPool"] = {
            "tcp": {
                "maxConnections": s["connection_pool_max_connections"],
                "connectTimeout": s["connection_pool_connect_timeout"],
                "tcpKeepalive": {
                    "time": s["connection_pool_keepalive_time"],
                    "interval": s["connection_pool_keepalive_interval"],
                },
            },
            "http": {
                "http1MaxPendingRequests": s["connection_pool_http_max_pending"],
                "http2MaxRequests": s["connection_pool_http_max_requests"],
            },
        }
    if "outlier-detection" in sets:
        policy["outlierDetection"] = {
            "consecutive5xxErrors": s["outlier_consecutive_5xx"],
            "interval": s["outlier_interval"],
            "baseEjectionTime": s["outlier_base_ejection_time"],
            "maxEjectionPercent": s["outlier_max_ejection_percent"],
        }
    if not policy:
        return None
    spec = {"host": s["host"], "trafficPolicy": policy}
    if "subsets" in sets:
        spec["subsets"] = [
            {"name": sub["name"], "labels": dict(sub["labels"])} for sub in s["subsets"]
        ]
    return _obj(s, "DestinationRule", s["host"], spec)


def mesh_policies_objects(settings):
    """Return the list of Istio objects for `settings` (the role's variables, unprefixed).

    Order matters for a make-before-break apply: ServiceEntry and DestinationRules (subsets)
    exist before the VirtualServices that reference them.
    """
    s = settings
    sets = s["sets"]
    objects = []
    external = "external-service" in sets
    if external:
        objects.append(
            _obj(
                s,
                "ServiceEntry",
                s["external_name"],
                {
                    "hosts": [s["external_host"]],
                    "location": "MESH_EXTERNAL",
                    "ports": [{"number": s["external_port"], "name": "tls", "protocol": "TLS"}],
                    "resolution": "DNS",
                },
            )
        )
        objects.append(
            _obj(
                s,
                "DestinationRule",
                s["external_name"],
                {"host": s["external_host"], "trafficPolicy": {"tls": {"mode": "SIMPLE"}}},
            )
        )
    destination_rule = _webserver_destination_rule(s)
    if destination_rule:
        objects.append(destination_rule)
    if "gateway" in sets:
        gateway_namespace = s["gateway_namespace"] or s["namespace"]
        objects.append(
            _obj(
                s,
                "Gateway",
                s["gateway_name"],
                {
                    "selector": dict(s["gateway_selector"]),
                    "servers": [
                        {
                            "port": {
                                "number": s["gateway_port"],
                                "name": "http",
                                "protocol": "HTTP",
                            },
                            "hosts": list(s["gateway_hosts"]),
                        }
                    ],
                },
                namespace=gateway_namespace,
            )
        )
        objects.append(
            _obj(
                s,
                "VirtualService",
                s["gateway_route_host"],
                {
                    "hosts": list(s["gateway_hosts"]),
                    "gateways": [f"{gateway_namespace}/{s['gateway_name']}"],
                    "http": [{"route": [{"destination": {"host": s["gateway_route_host"]}}]}],
                },
            )
        )
    if "strict-mtls" in sets:
        objects.append(
            _obj(
                s,
                "PeerAuthentication",
                "default",
                {"mtls": {"mode": "STRICT"}},
                api_version=SECURITY_API_VERSION,
            )
        )
    if "deny-v2-caller" in sets:
        subset = next(sub for sub in s["subsets"] if sub["name"] == s["denied_subset"])
        principal = f"cluster.local/ns/{s['namespace']}/sa/{s['denied_caller']}"
        objects.append(
            _obj(
                s,
                "AuthorizationPolicy",
                f"deny-{s['denied_caller']}-to-{s['denied_subset']}",
                {
                    "selector": {"matchLabels": {"app": s["host"], **subset["labels"]}},
                    "action": "DENY",
                    "rules": [{"from": [{"source": {"principals": [principal]}}]}],
                },
                api_version=SECURITY_API_VERSION,
            )
        )
    if VIRTUALSERVICE_SETS & set(sets) or (external and s["external_route_webserver"]):
        objects.append(
            _obj(
                s,
                "VirtualService",
                s["host"],
                {"hosts": [s["host"]], "http": _webserver_http_routes(s)},
            )
        )
    return objects


class FilterModule:
    def filters(self):
        return {
            "mesh_policies_objects": mesh_policies_objects,
        }
