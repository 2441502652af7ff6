"""Render the Istio objects of the chosen mesh policy sets (filter `mesh_policies_objects`).

Several policy sets contribute to the SAME objects: one VirtualService and one DestinationRule
per host is what Istio expects, so the sets are merged as data here instead of templating one
file per blog post. Inputs were validated by the role (argument spec + tasks/validate.yml)
before this runs; this module only shapes data.
"""

import re

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
        entry = {
            "hosts": [s["external_host"]],
            "location": "MESH_EXTERNAL",
            "ports": [{"number": s["external_port"], "name": "tls", "protocol": "TLS"}],
            "resolution": "DNS",
        }
        tls = {"mode": "SIMPLE"}
        if s.get("external_endpoint"):
            # Connections go to the endpoint; SNI and the certificate check keep the host.
            entry["endpoints"] = [{"address": s["external_endpoint"]}]
            tls["sni"] = s["external_host"]
        origination = {"host": s["external_host"], "trafficPolicy": {"tls": tls}}
        if s.get("external_ca_secret"):
            tls["credentialName"] = s["external_ca_secret"]
            # Istio reads credentialName in sidecars only from a DestinationRule with a
            # workloadSelector; without one it drops the TLS settings (plaintext).
            origination["workloadSelector"] = {
                "matchLabels": dict(s.get("external_client_labels") or {"app": "proxy"})
            }
        objects.append(_obj(s, "ServiceEntry", s["external_name"], entry))
        objects.append(_obj(s, "DestinationRule", s["external_name"], origination))
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


DURATION = re.compile(r"^(?!0+(\.0+)?[a-z]+$)[0-9]+(\.[0-9]+)?(ms|s|m|h)$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$"
)
GATEWAY_HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$")
HEADER = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DURATIONS = (
    "fault_delay_duration",
    "retry_per_try_timeout",
    "retry_timeout",
    "connection_pool_connect_timeout",
    "connection_pool_keepalive_time",
    "connection_pool_keepalive_interval",
    "timeout",
    "outlier_interval",
    "outlier_base_ejection_time",
)
PATHS = ("redirect_match_uri", "redirect_uri", "rewrite_match_uri", "rewrite_uri", "external_path")
NAMES = (
    "host",
    "route_v1_host",
    "rewrite_host",
    "redirect_authority",
    "gateway_route_host",
    "external_name",
    "denied_caller",
)
# (setting, lowest, highest): whole numbers and percentages the policies need in range.
RANGES = (
    ("fault_abort_percent", 0, 100),
    ("fault_delay_percent", 0, 100),
    ("fault_abort_status", 200, 599),
    ("retry_attempts", 1, None),
    ("connection_pool_max_connections", 1, None),
    ("connection_pool_http_max_pending", 1, None),
    ("connection_pool_http_max_requests", 1, None),
    ("outlier_consecutive_5xx", 1, None),
    ("outlier_max_ejection_percent", 0, 100),
    ("external_port", 1, 65535),
    ("gateway_port", 1, 65535),
    ("rollout_timeout", 1, None),
)


def mesh_policies_problems(settings):
    """Every problem of the settings, one message each naming what to change (the argument spec
    checked types and choices before this runs)."""
    s, sets, problems = settings, settings["sets"], []
    if len(set(sets)) != len(sets):
        problems.append(f"mesh_policies_sets {sets} lists a set twice: list each set once.")
    catch_all = [x for x in sets if x in ("route-v1", "split")]
    if "external-service" in sets and s["external_route_webserver"]:
        catch_all.append("external-service")
    if len(catch_all) > 1:
        problems.append(
            f"mesh_policies_sets: {' and '.join(catch_all)} each decide where all traffic for"
            f" {s['host']} goes: choose at most one of route-v1, split, external-service (or set"
            " mesh_policies_external_route_webserver: false to keep only its ServiceEntry)."
        )
    needs_subsets = [x for x in sets if x in ("split", "header-route")]
    if needs_subsets and "subsets" not in sets:
        problems.append(
            f"mesh_policies_sets: {' and '.join(needs_subsets)} route to subsets of the"
            " DestinationRule: add the subsets set."
        )
    if (
        "redirect" in sets
        and "rewrite" in sets
        and s["redirect_match_uri"] == s["rewrite_match_uri"]
    ):
        problems.append(
            f"redirect and rewrite both match {s['redirect_match_uri']} (only the first would ever"
            " apply): give mesh_policies_redirect_match_uri or mesh_policies_rewrite_match_uri"
            " another path."
        )
    if "gateway" in sets and s["gateway_route_host"] == s["host"]:
        problems.append(
            f"mesh_policies_gateway_route_host and mesh_policies_host are both {s['host']}: their"
            " VirtualServices would be one object; route the gateway to another Service."
        )
    names = [sub["name"] for sub in s["subsets"]]
    if (
        not names
        or len(set(names)) != len(names)
        or any(not sub.get("labels") for sub in s["subsets"])
        or s["header_route_subset"] not in names
        or s["denied_subset"] not in names
    ):
        problems.append(
            f"mesh_policies_subsets {names}: give at least one subset, unique names and non-empty"
            f" labels; mesh_policies_header_route_subset ({s['header_route_subset']}) and"
            f" mesh_policies_denied_subset ({s['denied_subset']}) must be one of them."
        )
    weights = s["split_weights"]
    unknown = sorted(set(weights) - set(names))
    whole = all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in weights.values())
    if not weights or unknown or not whole or (whole and sum(weights.values()) != 100):
        known = f"unknown subsets {unknown} (subsets are {names}); " if unknown else ""
        problems.append(
            f"mesh_policies_split_weights {weights}: {known}weights must be whole numbers from 0"
            " that add up to 100."
        )
    out_of_range = []
    for key, low, high in RANGES:
        value = s[key]
        if value < low or (high is not None and value > high):
            out_of_range.append(f"mesh_policies_{key}={value} ({low}-{high or 'any'})")
    if out_of_range:
        problems.append(
            "Out of range (fault percentages must be 0-100, the abort status an HTTP status"
            f" 200-599, ports 1-65535, counts at least 1): {', '.join(out_of_range)}."
        )
    bad = {f"mesh_policies_{k}": s[k] for k in DURATIONS if not DURATION.match(str(s[k]))}
    if bad:
        problems.append(f"Not a duration above zero like 5s, 250ms, 1.5s or 2m: {bad}")
    bad = {f"mesh_policies_{k}": s[k] for k in PATHS if not str(s[k]).startswith("/")}
    if bad:
        problems.append(f"Paths must start with / (not: {bad}).")
    if not HEADER.match(s["header_route_name"]):
        problems.append(
            f"mesh_policies_header_route_name ({s['header_route_name']!r}) must be a lowercase"
            " header name."
        )
    bad = {f"mesh_policies_{k}": s[k] for k in NAMES if not NAME.match(str(s[k]))}
    if bad:
        problems.append(f"Not a Kubernetes name (lowercase letters, digits, -): {bad}.")
    endpoint = s.get("external_endpoint", "")
    if endpoint and not DNS_NAME.match(str(endpoint)):
        problems.append(
            f"mesh_policies_external_endpoint {endpoint!r} is not a DNS name like"
            " standin.example.svc.cluster.local ('' sends connections to the host itself)."
        )
    secret = s.get("external_ca_secret", "")
    if secret and not s.get("external_client_labels", {"app": "proxy"}):
        problems.append(
            "mesh_policies_external_client_labels is empty: with mesh_policies_external_ca_secret"
            " give the labels of the pods that call the external host (e.g. {app: proxy})."
        )
    if secret and not NAME.match(str(secret)):
        problems.append(
            f"mesh_policies_external_ca_secret {secret!r} is not a Secret name (lowercase"
            " letters, digits, -; '' trusts the default roots)."
        )
    if not DNS_NAME.match(str(s["external_host"])):
        problems.append(
            f"mesh_policies_external_host {s['external_host']!r} is not a DNS name like"
            " api.example.com."
        )
    bad_hosts = [h for h in s["gateway_hosts"] if not GATEWAY_HOST.match(str(h))]
    if bad_hosts:
        problems.append(
            f"mesh_policies_gateway_hosts {bad_hosts}: use * or host names like shop.example.com."
        )
    return problems


class FilterModule:
    def filters(self):
        return {
            "mesh_policies_objects": mesh_policies_objects,
            "mesh_policies_problems": mesh_policies_problems,
        }
