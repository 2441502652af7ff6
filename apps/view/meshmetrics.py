"""The mesh's traffic as Prometheus holds it: the queries and the edge computation shared by
the view app (view.py) and the terminal command (meshstat.py). Standard library only.

Istio's standard metrics, as reported by the client's sidecar or the ingress gateway
(reporter="source"): istio_requests_total and istio_request_duration_milliseconds. An edge is
one (source workload, destination service, destination version): gateway -> proxy,
proxy -> webserver v1 / v2, proxy -> an external host.
"""

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 2.0  # seconds, every upstream call
GATEWAY_WORKLOAD = "istio-ingressgateway"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
# The forms settings must have (regular expressions, whole value), and how to say so.
PROMETHEUS_URL_FORM = rf"http://{_HOST}(?::{_PORT})?"
PROMETHEUS_URL_EXPECTED = "http://host[:port], e.g. http://prometheus.istio-system:9090"
NAMESPACE_FORM = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
NAMESPACE_EXPECTED = "a Kubernetes namespace name, e.g. mesh-playground"
WINDOW_FORM = r"[1-9][0-9]{0,3}[smh]"
WINDOW_EXPECTED = "a duration like 30s, 1m or 2h (a whole number of s, m or h)"
_SECONDS = {"s": 1, "m": 60, "h": 3600}

# The labels that make an edge; the success of a request is told by its response_code.
EDGE_LABELS = (
    "source_workload",
    "source_workload_namespace",
    "destination_service_name",
    "destination_service_namespace",
    "destination_workload",
    "destination_version",
)


class PrometheusError(Exception):
    """Prometheus did not answer, or not with a vector: args[0] says what happened."""


def window_seconds(window):
    return int(window[:-1]) * _SECONDS[window[-1]]


def queries(namespace, window):
    """The three instant queries (name -> PromQL) of the edges of `namespace` over `window`.

    The app namespace's edges are those whose client is in it (proxy -> webserver, proxy ->
    an external host) or whose server is (the ingress gateway, in istio-ingress, -> proxy):
    PromQL has no "or" between label matchers, so each query is the union ("or") of both
    selections, grouped by the edge's labels (a series is in both: "or" keeps one).
    """
    selections = (
        f'reporter="source",source_workload_namespace="{namespace}"',
        f'reporter="source",destination_service_namespace="{namespace}"',
    )
    edge = ",".join(EDGE_LABELS)

    def union(metric, by):
        return " or ".join(
            f"sum by ({by}) (rate({metric}{{{selection}}}[{window}]))" for selection in selections
        )

    buckets = union("istio_request_duration_milliseconds_bucket", f"{edge},le")
    return {
        "requests": union("istio_requests_total", f"{edge},response_code"),
        "p50": f"histogram_quantile(0.5, {buckets})",
        "p99": f"histogram_quantile(0.99, {buckets})",
    }


def query(prometheus_url, promql, timeout=TIMEOUT):
    """[(labels, value)] of an instant query (/api/v1/query), or PrometheusError."""
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            payload = json.loads(response.read(8 << 20))
    except urllib.error.HTTPError as error:
        detail = _error_detail(error)
        raise PrometheusError(f"{prometheus_url} answered HTTP {error.code}{detail}") from None
    except TimeoutError:
        raise PrometheusError(f"{prometheus_url} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            raise PrometheusError(f"{prometheus_url} did not answer within {timeout:g} s") from None
        raise PrometheusError(f"cannot connect to {prometheus_url}: {_reason(reason)}") from None
    except (OSError, ValueError) as error:  # reset, truncated, not JSON
        raise PrometheusError(f"{prometheus_url} answered badly: {_reason(error)}") from None
    if not isinstance(payload, dict):
        payload = {"error": "the answer is not a JSON object"}
    data = payload.get("data")
    if payload.get("status") != "success" or not isinstance(data, dict):
        raise PrometheusError(f"{prometheus_url}: query failed: {str(payload.get('error'))[:200]}")
    if data.get("resultType") != "vector":
        raise PrometheusError(f"{prometheus_url}: expected a vector, got {data.get('resultType')}")
    samples = []
    for item in data.get("result") or []:
        try:
            samples.append((dict(item["metric"]), float(item["value"][1])))
        except (KeyError, IndexError, TypeError, ValueError):
            raise PrometheusError(f"{prometheus_url}: malformed sample {str(item)[:200]}") from None
    return samples


def _reason(error):
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text[:200]


def _error_detail(error):
    try:
        body = json.loads(error.read(65536))
        return f": {str(body.get('error'))[:200]}"
    except (OSError, ValueError, AttributeError):
        return ""


# No proxy variables, no redirects to elsewhere: Prometheus is called where it was configured.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(prometheus_url, namespace, window, timeout=TIMEOUT):
    """{name: samples} of queries(); the first failure stops (one error, one timeout at most)."""
    return {
        name: query(prometheus_url, promql, timeout)
        for name, promql in queries(namespace, window).items()
    }


# ---------------------------------------------------------------- pure computation
def _known(value):
    return value if value and value != "unknown" else ""


def edge_of(labels):
    """(source, destination service, version, target node id, external) of a series: the
    target is the destination workload, or for a host outside the mesh (no workload) the host."""
    destination = labels.get("destination_service_name") or "unknown"
    workload = _known(labels.get("destination_workload"))
    return (
        labels.get("source_workload") or "unknown",
        destination,
        _known(labels.get("destination_version")),
        workload or destination,
        not workload,
    )


def edge_id(source, destination, version):
    return f"{source}->{destination}" + (f":{version}" if version else "")


def succeeded(code):
    """A response is a success when it is 1xx-3xx: a 4xx from a fault abort counts as failed
    (what a learner injected), and so does 0 (no response at all, e.g. a reset)."""
    return bool(re.fullmatch(r"[123][0-9][0-9]", code or ""))


def _number(value, digits):
    return None if value is None or math.isnan(value) or math.isinf(value) else round(value, digits)


def edges(samples, window):
    """The edges, from fetch()'s samples: rate, share of the split, success rate, quantiles.

    share: the edge's part of its source's traffic to the same service (the V1/V2 split);
    requests: over the window (rate x window, what Prometheus' increase() gives).
    """
    found = {}
    for labels, rate in samples.get("requests", []):
        if math.isnan(rate):
            continue
        key = edge_of(labels)
        edge = found.setdefault(key, {"rps": 0.0, "ok": 0.0, "codes": {}})
        edge["rps"] += rate
        code = labels.get("response_code") or "0"
        edge["codes"][code] = edge["codes"].get(code, 0.0) + rate
        if succeeded(code):
            edge["ok"] += rate
    quantiles = {
        name: {edge_of(labels): value for labels, value in samples.get(name, [])}
        for name in ("p50", "p99")
    }
    totals = {}
    for (source, destination, *_), edge in found.items():
        totals[source, destination] = totals.get((source, destination), 0.0) + edge["rps"]
    seconds = window_seconds(window)
    result = []
    for key in sorted(found, key=_edge_order):
        source, destination, version, target, external = key
        edge = found[key]
        rps, total = edge["rps"], totals[source, destination]
        result.append(
            {
                "id": edge_id(source, destination, version),
                "source": source,
                "destination": destination,
                "version": version,
                "target": target,
                "external": external,
                "rps": round(rps, 3),
                "share": round(rps / total, 4) if total > 0 else None,
                "success_rate": round(edge["ok"] / rps, 4) if rps > 0 else None,
                "p50_ms": _number(quantiles["p50"].get(key), 2),
                "p99_ms": _number(quantiles["p99"].get(key), 2),
                "requests": round(rps * seconds),
                "codes": {code: round(r, 3) for code, r in sorted(edge["codes"].items())},
            }
        )
    return result


def _edge_order(key):
    source, destination, version, *_ = key
    return (source != GATEWAY_WORKLOAD, source, destination, version)


def nodes(edge_list, skeleton=()):
    """The graph's nodes: `skeleton` ([(id, service, version, column)], shown even without
    traffic), then every edge's source and target; `column`: hops from the gateway."""
    found = {}
    for node_id, service, version, place in skeleton:
        found[node_id] = {"id": node_id, "service": service, "version": version, "column": place}
    for edge in edge_list:
        found.setdefault(edge["source"], {"id": edge["source"], "service": "", "version": ""})
        node = found.setdefault(edge["target"], {"id": edge["target"]})
        node.update(service=edge["destination"], version=edge["version"])
        if edge["external"]:
            node["kind"] = "external"
    column = {GATEWAY_WORKLOAD: 0}
    for _ in range(len(found)):  # a hop further each round
        for edge in edge_list:
            if edge["source"] in column and edge["target"] not in column:
                column[edge["target"]] = column[edge["source"]] + 1
    targets = {edge["target"] for edge in edge_list}
    for node_id, node in found.items():
        if node_id == GATEWAY_WORKLOAD:
            node.update(kind="gateway", service=node["service"] or "ingress gateway")
        node.setdefault("kind", "workload")
        node["service"] = node.get("service") or node_id
        node["column"] = column.get(node_id, node.get("column", 2 if node_id in targets else 1))
        node["rps"] = round(sum(e["rps"] for e in edge_list if e["target"] == node_id), 3)
    return sorted(found.values(), key=lambda node: (node["column"], node["service"], node["id"]))


def stat_rows(edge_list):
    """meshstat's rows: one per destination workload and version (its callers summed), with
    RPS, success rate and requests; quantiles of the busiest caller's edge (Prometheus keeps
    no way to add quantiles of different edges)."""
    rows = {}
    for edge in edge_list:
        row = rows.setdefault(
            (edge["target"], edge["version"]),
            {"workload": edge["target"], "version": edge["version"] or "-", "edges": []},
        )
        row["edges"].append(edge)
    result = []
    for key in sorted(rows):
        row = rows.pop(key)
        found = row.pop("edges")
        rps = sum(edge["rps"] for edge in found)
        ok = sum((edge["success_rate"] or 0.0) * edge["rps"] for edge in found)
        busiest = max(found, key=lambda edge: edge["rps"])
        row.update(
            rps=round(rps, 3),
            success_rate=round(ok / rps, 4) if rps > 0 else None,
            p50_ms=busiest["p50_ms"],
            p99_ms=busiest["p99_ms"],
            requests=sum(edge["requests"] for edge in found),
        )
        result.append(row)
    return result
