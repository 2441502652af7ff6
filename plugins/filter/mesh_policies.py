"""Render the Istio objects of the chosen mesh policy sets (filter `mesh_policies_objects`) and
find what is wrong with their settings (filter `mesh_policies_problems`).

Several policy sets contribute to the SAME objects: one VirtualService and one DestinationRule
per host is what Istio expects, so the sets are merged as data here instead of templating one
file per blog post. Inputs were validated by the role (argument spec + tasks/validate.yml)
before this runs; this module only shapes data.
"""

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field

try:  # as an Ansible filter plugin, and imported by the unit tests
    from ansible_collections.mesh_playground.playground.plugins.module_utils.gateway_api import (
        gateway_api_twin,
    )
except ImportError:
    from gateway_api import gateway_api_twin

API_VERSION = "networking.istio.io/v1"
SECURITY_API_VERSION = "security.istio.io/v1"
# The role's own labels; the k8s_apply role adds ours (part-of, managed-by) to every object.
MANAGED_LABELS = {"app.kubernetes.io/component": "mesh-policies"}


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


def _forward(build, route):
    """A route that forwards traffic, with what the fault, retry and timeout sets add to each."""
    return dict(route, **copy.deepcopy(build.forwarding))


class _Build:
    """The objects the chosen sets shape together, filled in by each set's render(s, build)."""

    def __init__(self):
        self.first = []  # before the host's DestinationRule (the external host's objects)
        self.policy = {}  # the host's DestinationRule trafficPolicy ({} = no DestinationRule)
        self.subsets = None  # the host's DestinationRule subsets
        self.objects = []  # after the host's DestinationRule, before its VirtualService
        self.routes = []  # (route, forwards) match routes of the host's VirtualService, in order
        self.catch_all = None  # where all other traffic goes (the first set to say so wins)
        self.forwarding = {}  # fields added to every forwarding route (fault, retries, timeout)


def _redirect(s, b):
    route = {
        "name": "redirect",
        "match": [{"uri": {"exact": s["redirect_match_uri"]}}],
        "redirect": {"uri": s["redirect_uri"], "authority": s["redirect_authority"]},
    }
    b.routes.append((route, False))


def _rewrite(s, b):
    route = {
        "name": "rewrite",
        "match": [{"uri": {"exact": s["rewrite_match_uri"]}}],
        "rewrite": {"uri": s["rewrite_uri"]},
        "route": [{"destination": {"host": s["rewrite_host"]}}],
    }
    b.routes.append((route, True))


def _header_route(s, b):
    header = {s["header_route_match"]: s["header_route_value"]}
    route = {
        "name": "header-route",
        "match": [{"headers": {s["header_route_name"]: header}}],
        "route": [{"destination": {"host": s["host"], "subset": s["header_route_subset"]}}],
    }
    b.routes.append((route, True))


def _route_v1(s, b):
    if b.catch_all is None:
        b.catch_all = {
            "name": "route-v1",
            "route": [{"destination": {"host": s["route_v1_host"]}}],
        }


def _split(s, b):
    if b.catch_all is None:
        b.catch_all = {
            "name": "split",
            "route": [
                {"destination": {"host": s["host"], "subset": subset}, "weight": int(weight)}
                for subset, weight in s["split_weights"].items()
            ],
        }


def _external_service(s, b):
    entry = {
        "hosts": [s["external_host"]],
        "location": "MESH_EXTERNAL",
        "ports": [{"number": s["external_port"], "name": "tls", "protocol": "TLS"}],
        "resolution": "DNS",
    }
    clients = {"matchLabels": dict(s.get("external_client_labels") or {"app": "proxy"})}
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
        origination["workloadSelector"] = clients
    b.first.append(_obj(s, "ServiceEntry", s["external_name"], entry))
    b.first.append(_obj(s, "DestinationRule", s["external_name"], origination))
    # The namespace default-denies egress (role app_namespace): its clients may leave for the
    # host's port, to the peers external_egress_to names.
    egress = {
        "podSelector": copy.deepcopy(clients),
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": list(s.get("external_egress_to") or [{"ipBlock": {"cidr": "0.0.0.0/0"}}]),
                "ports": [{"protocol": "TCP", "port": int(s["external_port"])}],
            }
        ],
    }
    b.first.append(
        _obj(
            s,
            "NetworkPolicy",
            f"external-{s['external_name']}",
            egress,
            api_version="networking.k8s.io/v1",
        )
    )
    if s["external_route_webserver"] and b.catch_all is None:
        b.catch_all = {
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


def _fault_abort(s, b):
    b.forwarding.setdefault("fault", {})["abort"] = {
        "percentage": {"value": s["fault_abort_percent"]},
        "httpStatus": s["fault_abort_status"],
    }


def _fault_delay(s, b):
    b.forwarding.setdefault("fault", {})["delay"] = {
        "percentage": {"value": s["fault_delay_percent"]},
        "fixedDelay": s["fault_delay_duration"],
    }


def _retry_5xx(s, b):
    b.forwarding["retries"] = {
        "attempts": s["retry_attempts"],
        "perTryTimeout": s["retry_per_try_timeout"],
        "retryOn": s["retry_on"],
    }
    b.forwarding["timeout"] = s["retry_timeout"]


def _timeout(s, b):
    b.forwarding["timeout"] = s["timeout"]  # after retry-5xx: this one bounds the request


def _subsets(s, b):
    b.policy["loadBalancer"] = {"simple": s["load_balancer"]}
    b.subsets = [{"name": sub["name"], "labels": dict(sub["labels"])} for sub in s["subsets"]]


def _mtls(s, b):
    b.policy["tls"] = {"mode": s["mtls_mode"]}


def _connection_pool(s, b):
    b.policy["connectionPool"] = {
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


def _outlier_detection(s, b):
    b.policy["outlierDetection"] = {
        "consecutive5xxErrors": s["outlier_consecutive_5xx"],
        "interval": s["outlier_interval"],
        "baseEjectionTime": s["outlier_base_ejection_time"],
        "maxEjectionPercent": s["outlier_max_ejection_percent"],
    }


def _gateway(s, b):
    gateway_namespace = s["gateway_namespace"] or s["namespace"]
    server = {
        "port": {"number": s["gateway_port"], "name": "http", "protocol": "HTTP"},
        "hosts": list(s["gateway_hosts"]),
    }
    b.objects.append(
        _obj(
            s,
            "Gateway",
            s["gateway_name"],
            {"selector": dict(s["gateway_selector"]), "servers": [server]},
            namespace=gateway_namespace,
        )
    )
    b.objects.append(
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


def _strict_mtls(s, b):
    b.objects.append(
        _obj(
            s,
            "PeerAuthentication",
            "default",
            {"mtls": {"mode": "STRICT"}},
            api_version=SECURITY_API_VERSION,
        )
    )


def _outbound_traffic_policy(s, b):
    b.objects.append(
        _obj(
            s,
            "Sidecar",
            "default",
            {"outboundTrafficPolicy": {"mode": s["outbound_traffic_policy"]}},
        )
    )


def _deny_v2_caller(s, b):
    subset = next(sub for sub in s["subsets"] if sub["name"] == s["denied_subset"])
    principal = f"cluster.local/ns/{s['namespace']}/sa/{s['denied_caller']}"
    b.objects.append(
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


def _check_rewrite(s):
    """redirect on the same path (only the first would apply)"""
    if "redirect" in s["sets"] and s["redirect_match_uri"] == s["rewrite_match_uri"]:
        return [
            f"redirect and rewrite both match {s['redirect_match_uri']} (only the first would ever"
            " apply): give mesh_policies_redirect_match_uri or mesh_policies_rewrite_match_uri"
            " another path."
        ]
    return []


def _check_gateway(s):
    """a mesh_policies_gateway_route_host equal to mesh_policies_host, or (playground_istio
    existing) a mesh_policies_gateway_selector that selects none of that Istio's ingress
    gateways"""
    problems = []
    if s["gateway_route_host"] == s["host"]:
        problems.append(
            f"mesh_policies_gateway_route_host and mesh_policies_host are both {s['host']}: their"
            " VirtualServices would be one object; route the gateway to another Service."
        )
    found, wanted = s.get("istio"), dict(s["gateway_selector"])
    if found and not any(wanted.items() <= dict(g["labels"]).items() for g in found["gateways"]):
        choices = "; ".join(
            f"{g['selector']} ({g['namespace']}/{g['name']})" for g in found["gateways"]
        )
        problems.append(
            f"mesh_policies_gateway_selector {wanted} selects none of the ingress gateways of"
            f" the Istio found ({found['summary']}): "
            + (
                f"set it to one of {choices}."
                if choices
                else "leave the gateway set out of mesh_policies_sets and turn"
                " mesh_policies_ingress off, or install a gateway."
            )
        )
    return problems


def _check_gateway_api(s, chosen):
    """With mesh_policies_api gateway-api: the chosen sets that have no Gateway API form."""
    return [
        f"mesh_policies_api gateway-api: the {name} set has no twin ({p.no_gateway_api}):"
        " leave it out or use mesh_policies_api istio."
        for name, p in chosen.items()
        if p.no_gateway_api
    ]


@dataclass(frozen=True)
class PolicySet:
    """One policy set: what it renders, the settings it reads, how it renders, what it needs."""

    renders: str  # what it renders, one line (docs/policy-sets.md)
    shapes: str  # the objects it contributes to (roles/mesh_policies/README.md)
    render: Callable  # render(settings, build): adds the set's part to the objects
    # Settings it reads, without the mesh_policies_ prefix (besides namespace, sets and host).
    reads: tuple = ()
    needs: dict = field(default_factory=dict)  # {set: why}: sets it does not work without
    check: Callable | None = None  # check(settings) -> problems of its combination with others
    # decides_all_traffic(settings): the set takes the catch-all route (at most one may).
    decides_all_traffic: Callable | None = None
    # Why it has no form with mesh_policies_api gateway-api (None: it has one, or it stays
    # Istio's: the DestinationRule's traffic policies, the security policies).
    no_gateway_api: str | None = None


_VS = "VirtualService `<host>`"
_DR = "DestinationRule `<host>`"
_SUBSETS_WHY = "route to subsets of the DestinationRule"


def _on_every_route(what, render, reads, no_gateway_api=None):
    """A set that adds `what` to every forwarding route of the host's VirtualService."""
    return PolicySet(
        renders="on every forwarding route: " + what,
        shapes=_VS,
        render=render,
        reads=reads,
        no_gateway_api=no_gateway_api,
    )


def _on_the_destination_rule(what, render, reads):
    """A set that shapes `what` of the host's DestinationRule (its trafficPolicy, subsets).
    Traffic policies have no Gateway API form: with gateway-api they stay Istio's, on a
    DestinationRule per version's Service (gateway_api.py)."""
    return PolicySet(
        renders="the DestinationRule's " + what, shapes=_DR, render=render, reads=reads
    )


# Every policy set, in the order they are rendered: match routes first (Istio picks the first
# match), the catch-all route (the first set that takes it wins; validation allows one), what is
# added to every forwarding route (timeout after retry-5xx: it bounds the request), the
# DestinationRule's policies, the other objects. `make docs` writes the argument spec's choices
# of mesh_policies_sets and the table of docs/policy-sets.md from it.
POLICY_SETS = {
    "redirect": PolicySet(
        renders="a match route answering requests for one exact path with a redirect",
        shapes=_VS,
        render=_redirect,
        reads=("redirect_match_uri", "redirect_uri", "redirect_authority"),
    ),
    "rewrite": PolicySet(
        renders="a match route sending requests for one exact path to another host and path",
        shapes=_VS,
        render=_rewrite,
        reads=("rewrite_match_uri", "rewrite_uri", "rewrite_host"),
        check=_check_rewrite,
    ),
    "header-route": PolicySet(
        renders="a match route sending requests with a header value to one subset",
        shapes=_VS,
        render=_header_route,
        reads=(
            "header_route_name",
            "header_route_value",
            "header_route_match",
            "header_route_subset",
        ),
        needs={"subsets": _SUBSETS_WHY},
    ),
    "route-v1": PolicySet(
        renders="the catch-all route: all traffic to one Service",
        shapes=_VS,
        render=_route_v1,
        reads=("route_v1_host",),
        decides_all_traffic=lambda s: True,
    ),
    "split": PolicySet(
        renders="the catch-all route: traffic split across subsets by weight",
        shapes=_VS,
        render=_split,
        reads=("split_weights",),
        needs={"subsets": _SUBSETS_WHY},
        decides_all_traffic=lambda s: True,
    ),
    "external-service": PolicySet(
        renders="a ServiceEntry (TLS, DNS) and a TLS-originating DestinationRule for a host"
        " outside the mesh, and the NetworkPolicy that lets its clients out to it; with"
        " external_route_webserver the catch-all route rewrites every request to a file there",
        shapes="ServiceEntry + DestinationRule `<external_name>`, NetworkPolicy"
        " `external-<external_name>`; " + _VS,
        render=_external_service,
        reads=(
            "external_name",
            "external_host",
            "external_port",
            "external_path",
            "external_route_webserver",
            "external_endpoint",
            "external_ca_secret",
            "external_client_labels",
            "external_egress_to",
        ),
        decides_all_traffic=lambda s: bool(s["external_route_webserver"]),
        no_gateway_api="a route to a ServiceEntry host with TLS origination has no"
        " standard-channel form (backends are Services; BackendTLSPolicy originates TLS only"
        " from a Gateway)",
    ),
    "fault-abort": _on_every_route(
        "a share of requests answered with an HTTP status",
        _fault_abort,
        ("fault_abort_percent", "fault_abort_status"),
        "fault injection has no Gateway API form",
    ),
    "fault-delay": _on_every_route(
        "a share of requests held back before forwarding",
        _fault_delay,
        ("fault_delay_percent", "fault_delay_duration"),
        "fault injection has no Gateway API form",
    ),
    "retry-5xx": _on_every_route(
        "retries and an overall timeout",
        _retry_5xx,
        ("retry_attempts", "retry_per_try_timeout", "retry_on", "retry_timeout"),
        "HTTPRoute retries are in the experimental channel only (sigs.k8s.io/gateway-api v1.6,"
        " which istiod pins; the standard channel is installed)",
    ),
    "timeout": _on_every_route(
        "a timeout for the whole request (then 504)",
        _timeout,
        ("timeout",),
    ),
    "subsets": _on_the_destination_rule(
        "subsets (pods by labels) and its load balancer",
        _subsets,
        ("subsets", "load_balancer"),
    ),
    "mtls": _on_the_destination_rule(
        "TLS mode for traffic to the host",
        _mtls,
        ("mtls_mode",),
    ),
    "connection-pool": _on_the_destination_rule(
        "TCP and HTTP connection limits (overflow answered 503)",
        _connection_pool,
        (
            "connection_pool_max_connections",
            "connection_pool_connect_timeout",
            "connection_pool_keepalive_time",
            "connection_pool_keepalive_interval",
            "connection_pool_http_max_pending",
            "connection_pool_http_max_requests",
        ),
    ),
    "outlier-detection": _on_the_destination_rule(
        "outlier detection: endpoints answering 5xx are ejected",
        _outlier_detection,
        (
            "outlier_consecutive_5xx",
            "outlier_interval",
            "outlier_base_ejection_time",
            "outlier_max_ejection_percent",
        ),
    ),
    "gateway": PolicySet(
        renders="a Gateway on the ingress gateway pods and a VirtualService binding a Service"
        " to it",
        shapes="Gateway `<gateway_name>` + VirtualService `<gateway_route_host>`",
        render=_gateway,
        reads=(
            "gateway_name",
            "gateway_namespace",
            "gateway_selector",
            "gateway_port",
            "gateway_hosts",
            "gateway_route_host",
            "gateway_service",
        ),
        check=_check_gateway,
    ),
    "strict-mtls": PolicySet(
        renders="a PeerAuthentication STRICT for the namespace: plaintext from outside the"
        " mesh is refused",
        shapes="PeerAuthentication `default` (`security.istio.io/v1`)",
        render=_strict_mtls,
    ),
    "deny-v2-caller": PolicySet(
        renders="an AuthorizationPolicy DENY for one caller's ServiceAccount (its mTLS"
        " identity) on one subset's pods",
        shapes="AuthorizationPolicy `deny-<caller>-to-<subset>` (`security.istio.io/v1`)",
        render=_deny_v2_caller,
        reads=("denied_caller", "denied_subset", "subsets"),
    ),
    "outbound-traffic-policy": PolicySet(
        renders="a Sidecar for the namespace with its own outbound traffic policy: REGISTRY_ONLY"
        " refuses a host no Service or ServiceEntry names, ALLOW_ANY passes it through",
        shapes="Sidecar `default`",
        render=_outbound_traffic_policy,
        reads=("outbound_traffic_policy",),
    ),
}


def mesh_policies_objects(settings):
    """Return the list of Istio objects for `settings` (the role's variables, unprefixed).

    Order matters for a make-before-break apply: ServiceEntry and DestinationRules (subsets)
    exist before the VirtualServices that reference them.
    """
    s = _with_ingress(settings)
    build = _Build()
    for name, policy_set in POLICY_SETS.items():
        if name in s["sets"]:
            policy_set.render(s, build)
    objects = list(build.first)
    if build.policy:
        spec = {"host": s["host"], "trafficPolicy": build.policy}
        if build.subsets is not None:
            spec["subsets"] = build.subsets
        objects.append(_obj(s, "DestinationRule", s["host"], spec))
    objects.extend(build.objects)
    # Without a route or a forwarding field the VirtualService would only repeat Kubernetes'
    # default routing: it is not rendered.
    if build.routes or build.catch_all or build.forwarding:
        default = {"name": "default", "route": [{"destination": {"host": s["host"]}}]}
        http = [_forward(build, r) if forwards else r for r, forwards in build.routes]
        http.append(_forward(build, build.catch_all or default))
        objects.append(_obj(s, "VirtualService", s["host"], {"hosts": [s["host"]], "http": http}))
    if s.get("api") == "gateway-api":
        return gateway_api_twin(objects, s["service_port"], s["gateway_service"])
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


def _with_ingress(settings):
    """The settings with the gateway set added when mesh_policies_ingress asks for the ingress
    whatever mesh_policies_sets lists (trying other sets then never drops it)."""
    if settings.get("ingress") and "gateway" not in settings["sets"]:
        return dict(settings, sets=[*settings["sets"], "gateway"])
    return settings


def mesh_policies_problems(settings):
    """Every problem of the settings, one message each naming what to change (the argument spec
    checked types and choices before this runs)."""
    s = _with_ingress(settings)
    sets, problems = s["sets"], []
    unknown = [x for x in sets if x not in POLICY_SETS]
    if unknown:
        problems.append(f"mesh_policies_sets: unknown sets {unknown}; known: {list(POLICY_SETS)}.")
    if len(set(sets)) != len(sets):
        problems.append(f"mesh_policies_sets {sets} lists a set twice: list each set once.")
    chosen = {name: p for name, p in POLICY_SETS.items() if name in sets}
    catch_all = [n for n, p in chosen.items() if p.decides_all_traffic and p.decides_all_traffic(s)]
    if len(catch_all) > 1:
        deciders = [n for n, p in POLICY_SETS.items() if p.decides_all_traffic]
        problems.append(
            f"mesh_policies_sets: {' and '.join(catch_all)} each decide where all traffic for"
            f" {s['host']} goes: choose at most one of {', '.join(deciders)} (or set"
            " mesh_policies_external_route_webserver: false to keep only its ServiceEntry)."
        )
    for needed in POLICY_SETS:
        lacking = [x for x in sets if needed in getattr(POLICY_SETS.get(x), "needs", {})]
        if lacking and needed not in sets:
            why = POLICY_SETS[lacking[0]].needs[needed]
            problems.append(
                f"mesh_policies_sets: {' and '.join(lacking)} {why}: add the {needed} set."
            )
    for policy_set in chosen.values():
        if policy_set.check:
            problems.extend(policy_set.check(s))
    if s.get("api") == "gateway-api":
        problems.extend(_check_gateway_api(s, chosen))
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
