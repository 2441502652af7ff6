"""The Istio objects in force on each hop of the mesh, as one-line summaries, and the graph's
topology before any traffic (pure functions, standard library only; view.py reads the objects
from the Kubernetes API).

A hop is (source workload, destination service), e.g. ("proxy", "webserver"). On it are:
the VirtualServices that route to the service (by their hosts or their routes' destinations)
and apply to that client (the gateway's when bound to a Gateway, the sidecars' otherwise), the
DestinationRules and ServiceEntries of the service's host, and on the gateway's hop the
Gateways its VirtualServices are bound to.
"""

import urllib.parse

from meshmetrics import GATEWAY_WORKLOAD


def _short(host, namespace):
    """A host as the metrics name it: webserver.ns.svc.cluster.local -> webserver."""
    for suffix in (f".{namespace}.svc.cluster.local", f".{namespace}.svc", f".{namespace}"):
        if host.endswith(suffix):
            return host.removesuffix(suffix)
    return host


def _matches(host, service, namespace):
    host = _short(host or "", namespace)
    if host == "*":
        return True
    if host.startswith("*."):
        return service.endswith(host[1:])
    return host == service


def _percent(percentage):
    value = (percentage or {}).get("value", 100)
    return f"{value:g}%" if isinstance(value, int | float) else f"{value}%"


def _destination(destination, namespace):
    host = _short(destination.get("host", "?"), namespace)
    subset = destination.get("subset")
    port = (destination.get("port") or {}).get("number")
    return host + (f":{port}" if port else "") + (f" {subset}" if subset else "")


def _split(destinations, namespace):
    return "split " + " / ".join(
        f"{d['destination'].get('subset') or _destination(d['destination'], namespace)} "
        f"{d.get('weight', 0)}"
        for d in destinations
    )


def _abort(abort):
    code = abort.get("httpStatus") or abort.get("grpcStatus") or "?"
    return f"fault abort {_percent(abort.get('percentage'))} {code}"


def _delay(delay):
    return f"fault delay {_percent(delay.get('percentage'))} {delay.get('fixedDelay')}"


def _retries(retries):
    per_try = retries.get("perTryTimeout")
    return f"retries {retries.get('attempts', 0)}" + (f" x {per_try}" if per_try else "")


def _redirect(redirect):
    return f"redirect to {redirect.get('authority', '')}{redirect.get('uri', '')}"


def _rewrite(rewrite):
    return "rewrite " + " ".join(f"{key} {value}" for key, value in rewrite.items())


def route_summary(route, namespace):
    """One http route of a VirtualService, e.g. 'split v1 80 / v2 20, retries 3 x 2s'."""
    parts = []
    for match in route.get("match") or []:
        for what, value in match.get("uri", {}).items():
            parts.append(f"when uri {what} {value}")
        for name, value in (match.get("headers") or {}).items():
            for what, text in value.items():
                parts.append(f"when header {name} {what} {text}")
    destinations = route.get("route") or []
    if len(destinations) > 1 or (destinations and "weight" in destinations[0]):
        destinations_part = _split(destinations, namespace)
    elif destinations:
        destinations_part = f"to {_destination(destinations[0]['destination'], namespace)}"
    else:
        destinations_part = None
    fault = route.get("fault") or {}
    # What the route does, in this order; each part only when its field is there.
    for present, describe in (
        (route.get("redirect"), _redirect),
        (route.get("rewrite"), _rewrite),
        (destinations_part, str),
        (fault.get("abort"), _abort),
        (fault.get("delay"), _delay),
        (route.get("retries"), _retries),
        (route.get("timeout"), "timeout {}".format),
    ):
        if present is not None:
            parts.append(describe(present))
    return ", ".join(parts) or "no route"


def summary(kind, spec, namespace):
    """One line saying what an object does."""
    if kind == "VirtualService":
        text = "; ".join(route_summary(route, namespace) for route in spec.get("http") or [])
        gateways = [g for g in spec.get("gateways") or [] if g != "mesh"]
        prefix = f"via gateway {', '.join(gateways)}: " if gateways else ""
        return prefix + (text or "no http routes")
    if kind == "DestinationRule":
        parts = []
        subsets = [subset.get("name", "?") for subset in spec.get("subsets") or []]
        if subsets:
            parts.append("subsets " + ", ".join(subsets))
        policy = spec.get("trafficPolicy") or {}
        if "loadBalancer" in policy:
            parts.append(f"load balancer {policy['loadBalancer'].get('simple', 'custom')}")
        if "tls" in policy:
            parts.append(f"TLS {policy['tls'].get('mode', '?')}")
        pool = policy.get("connectionPool") or {}
        if "maxConnections" in pool.get("tcp", {}):
            parts.append(f"max {pool['tcp']['maxConnections']} connections")
        if "http1MaxPendingRequests" in pool.get("http", {}):
            parts.append(f"max {pool['http']['http1MaxPendingRequests']} pending")
        outlier = policy.get("outlierDetection") or {}
        if outlier:
            errors = outlier.get("consecutive5xxErrors", outlier.get("consecutiveErrors", "?"))
            ejection = outlier.get("baseEjectionTime", "?")
            parts.append(f"eject after {errors} x 5xx for {ejection}")
        return ", ".join(parts) or "defaults"
    if kind == "Gateway":
        return (
            "; ".join(
                f"port {server.get('port', {}).get('number', '?')} "
                f"{server.get('port', {}).get('protocol', '?')}, hosts "
                + ", ".join(server.get("hosts") or [])
                for server in spec.get("servers") or []
            )
            or "no servers"
        )
    if kind == "ServiceEntry":
        ports = ", ".join(
            f"{port.get('number')} {port.get('protocol', '')}".strip()
            for port in spec.get("ports") or []
        )
        return (
            f"{spec.get('location', 'MESH_EXTERNAL')} {', '.join(spec.get('hosts') or [])}"
            + (f" port {ports}" if ports else "")
            + f", resolution {spec.get('resolution', 'NONE')}"
        )
    return ""


def _routes_to(spec, service, namespace):
    return any(
        _matches(destination.get("destination", {}).get("host"), service, namespace)
        for route in spec.get("http") or []
        for destination in route.get("route") or []
    )


def on_hop(source, service, objects, namespace):
    """[{kind, name, summary}] of `objects` ({kind: [object]}) in force on the hop."""
    from_gateway = source == GATEWAY_WORKLOAD
    found, gateways = [], set()
    for item in objects.get("VirtualService", []):
        spec = item.get("spec") or {}
        bound = [g for g in spec.get("gateways") or [] if g != "mesh"]
        applies = bool(bound) if from_gateway else (not bound or "mesh" in spec["gateways"])
        hosts = spec.get("hosts") or []
        routed = any(_matches(h, service, namespace) for h in hosts if h != "*")
        if applies and (routed or _routes_to(spec, service, namespace)):
            found.append(item)
            gateways |= {g.removeprefix(f"{namespace}/") for g in bound}
    for item in objects.get("DestinationRule", []):
        if _matches((item.get("spec") or {}).get("host"), service, namespace):
            found.append(item)
    if from_gateway:
        found += [item for item in objects.get("Gateway", []) if _name(item) in gateways]
    for item in objects.get("ServiceEntry", []):
        hosts = (item.get("spec") or {}).get("hosts") or []
        if any(_matches(host, service, namespace) for host in hosts):
            found.append(item)
    return [
        {
            "kind": item.get("kind", "?"),
            "name": _name(item),
            "summary": summary(item.get("kind"), item.get("spec") or {}, namespace),
        }
        for item in found
    ]


def _name(item):
    return (item.get("metadata") or {}).get("name", "?")


def external_hosts(objects):
    """The hosts of the namespace's ServiceEntries (hops its callers may take out of the mesh)."""
    return sorted(
        {
            host
            for item in objects.get("ServiceEntry", [])
            for host in (item.get("spec") or {}).get("hosts") or []
            if "*" not in host
        }
    )


# ---------------------------------------------------------------- the topology
def _in_mesh(deployment):
    """Pods with Istio's sidecar: out of the mesh (the view itself), none of its traffic is in
    Istio's metrics, so it is no node of the graph."""
    pods = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return all(
        (pods.get(where) or {}).get("sidecar.istio.io/inject") != "false"
        for where in ("labels", "annotations")
    )


def _deployed(objects):
    """[(name, app, version, Deployment)] of the Deployments in the mesh labelled app and
    version (what Istio's metrics name destination_workload, _app and _version)."""
    found = []
    for item in objects.get("Deployment", []):
        metadata = item.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if metadata.get("name") and labels.get("app") and labels.get("version") and _in_mesh(item):
            found.append((metadata["name"], labels["app"], labels["version"], item))
    return found


def _upstream(deployment, namespace):
    """The service a Deployment's app calls: the host of its containers' PROXYURL, short."""
    pods = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pods.get("containers") or []:
        for variable in container.get("env") or []:
            if variable.get("name") == "PROXYURL" and variable.get("value"):
                try:
                    host = urllib.parse.urlsplit(str(variable["value"])).hostname
                except ValueError:  # not a URL: no hop
                    return None
                return host and _short(host, namespace)
    return None


def _gateway_routes(objects, namespace):
    """The services the VirtualServices bound to a Gateway route to (the ingress gateway's)."""
    return [
        _short(host, namespace)
        for item in objects.get("VirtualService", [])
        if [g for g in (item.get("spec") or {}).get("gateways") or [] if g != "mesh"]
        for route in (item.get("spec") or {}).get("http") or []
        for destination in route.get("route") or []
        if (host := (destination.get("destination") or {}).get("host"))
    ]


def _columns(hops):
    """{workload or service: column}: the gateway 0, a hop's target one more than its source
    (the fewest hops; a caller that no hop reaches starts at 1)."""
    targets = {target for _, target in hops}
    column = {source: 1 for source, _ in hops if source not in targets}
    column[GATEWAY_WORKLOAD] = 0
    for depth in range(len(hops) + 1):
        for source, target in hops:
            if column.get(source) == depth:
                column.setdefault(target, depth + 1)
    return column


def topology(objects, namespace):
    """The graph as deployed, drawn before any traffic: (nodes [(id, service, version,
    column)], hops [(source workload, destination service)]).

    A node per Deployment in the mesh with labels app and version (its name, app, version), and
    the ingress gateway when a VirtualService bound to a Gateway routes in. Hops: the gateway to
    those routes' services, an app to its PROXYURL's service, and those apps to the
    ServiceEntries' hosts. Columns: by hops (_columns), nodes on no hop after the rest.
    """
    deployed = _deployed(objects)
    hops = [(GATEWAY_WORKLOAD, service) for service in _gateway_routes(objects, namespace)]
    calls = [(app, to) for _, app, _, item in deployed if (to := _upstream(item, namespace))]
    hops += calls
    hops += [(app, host) for app in dict(calls) for host in external_hosts(objects)]
    hops = list(dict.fromkeys(hops))
    column = _columns(hops)
    placed = [
        (name, app, version, column.get(name, column.get(app)))
        for name, app, version, _ in deployed
    ]
    last = max([place for *_, place in placed if place is not None], default=0) + 1
    routed_in = any(source == GATEWAY_WORKLOAD for source, _ in hops)
    nodes = [(GATEWAY_WORKLOAD, "", "", 0)] if routed_in else []
    nodes += [
        (name, app, version, last if place is None else place)
        for name, app, version, place in placed
    ]
    return nodes, hops
