"""Send real requests and count what came back: the measuring half of every mesh check.

    python playbooks/files/traffic.py URL [--count N] [--concurrency C] [--header 'Name: value']...
        [--kubeconfig FILE [--context NAME]] [--report [--expect JSON]]

Prints one JSON object: how many answers had each HTTP status, each webserver version and
upstream code (from the proxy's seed-format answer), each answer the mesh gave instead of the
webserver (`other`: "fault filter abort", "upstream request timeout", ...), the milliseconds the
proxy reported (`Took N milliseconds`), the client's own wall time per request, a few bodies.
Each request goes on a new connection (as curl would), so the mesh routes every one afresh.
A URL whose host is a Service's in-cluster name, http://SERVICE.NAMESPACE.svc[.cluster.local][:PORT]
(PORT: the Service's port, default 80), is reached from outside the cluster with --kubeconfig (and
--context): each request on a port-forward of its own, through the Kubernetes API, to a ready pod of
the Service (round robin) on the container port the Service's port targets, the way
`kubectl port-forward svc/SERVICE` does; no NodePort, no route to pod IPs, any cluster. The
request enters the pod on its loopback, so a sidecar's inbound side sees none of it; what the
pod's app calls in turn goes through its sidecar as ever (the proxy's calls to the webserver).
With --ready it exits 0 when each share holds (else 3): make step polls it until a change of the
routes has reached the proxy's sidecar. With --report it prints a tally to read instead (answers
by status, version, webserver pod and path, the mesh's own answers, Took p50/p99) and each --expect
entry ({what, share, tolerance}: see `share`) beside the share measured: `make step`
(playbooks/step.yml) prints it for each step of the series; with --strict too it exits 4 when an
entry does not hold (Molecule mesh_steps asserts every step so). playbooks/canary.yml measures
each step with it, Molecule verify steps assert on its counts, and pytest imports `measure`.
docs/tour.md describes it.
"""

import argparse
import http.client
import itertools
import json
import re
import sys
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

# The proxy's seed-format answer, and inside it the webserver's (absent when the mesh answered
# instead: "fault filter abort", "upstream request timeout", "RBAC: access denied").
PROXIED = re.compile(r"^Proxying value: (?P<content>.*) - Took (?P<took>\d+) milliseconds$", re.S)
WEBSERVER = re.compile(
    r"^(?P<text>.*?) requested from (?P<path>\S+) on (?P<host>\S+) with code (?P<code>\d{3})$", re.S
)
VERSION = re.compile(r"^WebServer (V\d+)")
# A Service's in-cluster name: reached through a port-forward (Forwarder).
SERVICE_HOST = re.compile(
    r"^(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc(\.cluster\.local)?$"
)


class Forwarder:
    """Connections to Services through port-forwards of the Kubernetes API (the kubeconfig and
    context given): each connect() is a new port-forward to the next ready pod of the Service, on
    the container port its port targets. The client is per thread: the client's port-forward
    swaps its ApiClient's call_api while it connects."""

    def __init__(self, kubeconfig: str, context: str | None = None) -> None:
        from kubernetes import client, config  # only here: measuring a plain URL needs neither

        self._client = client
        self._configuration = client.Configuration()
        config.load_kube_config(kubeconfig, context or None, self._configuration)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._targets: dict[tuple[str, str, int], itertools.cycle] = {}

    def _api(self):
        if not hasattr(self._local, "api"):
            self._local.api = self._client.CoreV1Api(self._client.ApiClient(self._configuration))
        return self._local.api

    def _resolve(self, namespace: str, service: str, port: int) -> list[tuple[str, int]]:
        """(pod, container port) of each ready, running pod behind the Service's port."""
        api = self._api()
        spec = api.read_namespaced_service(service, namespace).spec
        ports = [p for p in spec.ports if p.port == port]
        if not ports or not spec.selector:
            raise OSError(f"Service {namespace}/{service} has no port {port} with a pod selector")
        target = ports[0].target_port or port
        selector = ",".join(f"{key}={value}" for key, value in spec.selector.items())
        found = []
        for pod in api.list_namespaced_pod(namespace, label_selector=selector).items:
            ready = any(
                c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
            )
            if pod.metadata.deletion_timestamp or pod.status.phase != "Running" or not ready:
                continue
            if isinstance(target, int) or str(target).isdigit():
                found.append((pod.metadata.name, int(target)))
                continue
            named = [
                p.container_port
                for c in pod.spec.containers
                for p in c.ports or []
                if p.name == target
            ]
            if named:
                found.append((pod.metadata.name, named[0]))
        if not found:
            raise OSError(f"no ready pod behind Service {namespace}/{service} port {port}")
        return sorted(found)

    def connect(self, namespace: str, service: str, port: int, timeout: float):
        """A socket to the next pod; the API's refusals as OSError (the request's status 0)."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import portforward

        key = (namespace, service, port)
        try:
            with self._lock:
                if key not in self._targets:
                    self._targets[key] = itertools.cycle(self._resolve(namespace, service, port))
                pod, pod_port = next(self._targets[key])
            forward = portforward(
                self._api().connect_get_namespaced_pod_portforward,
                pod,
                namespace,
                ports=str(pod_port),
            )
        except ApiException as error:
            raise OSError(f"port-forward to {namespace}/{service}:{port}: {error}") from error
        sock = forward.socket(pod_port)
        sock.settimeout(timeout)
        return sock


def one(
    url: str, headers: dict[str, str], timeout: float, forwarder: Forwarder | None = None
) -> dict:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    in_cluster = SERVICE_HOST.match(parts.hostname or "") if forwarder else None
    started = time.monotonic()
    try:
        if in_cluster:
            connection.sock = forwarder.connect(
                in_cluster["namespace"], in_cluster["service"], parts.port or 80, timeout
            )
        connection.request("GET", target, headers={"Connection": "close", **headers})
        response = connection.getresponse()
        status, body = response.status, response.read().decode(errors="replace")
        location = response.getheader("Location")
    except (OSError, http.client.HTTPException) as error:
        status, body, location = 0, f"{type(error).__name__}: {error}", None
    finally:
        connection.close()
    answer = {"status": status, "body": body, "ms": (time.monotonic() - started) * 1000}
    if location:
        answer["location"] = location
    proxied = PROXIED.match(body)
    if proxied:
        answer["took"] = int(proxied["took"])
        webserver = WEBSERVER.match(proxied["content"])
        if webserver:
            version = VERSION.match(webserver["text"])
            answer.update(
                code=webserver["code"],
                upstream_path=webserver["path"],
                host=webserver["host"],
                version=version[1].lower() if version else webserver["text"][:60],
            )
        else:
            answer["other"] = proxied["content"][:120]
    return answer


def measure(
    url: str,
    count: int,
    concurrency: int = 4,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    forwarder: Forwarder | None = None,
) -> dict:
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(
            pool.map(lambda _: one(url, headers or {}, timeout, forwarder), range(count))
        )
    return {
        "count": count,
        "status": dict(Counter(str(a["status"]) for a in answers)),
        "version": dict(Counter(a["version"] for a in answers if "version" in a)),
        "code": dict(Counter(a["code"] for a in answers if "code" in a)),
        # version -> upstream code -> count: each version's own error rate (canary verdicts)
        "by_version": {
            version: dict(Counter(a["code"] for a in answers if a.get("version") == version))
            for version in sorted({a["version"] for a in answers if "version" in a})
        },
        "other": dict(Counter(a["other"] for a in answers if "other" in a)),
        "hosts": sorted({a["host"] for a in answers if "host" in a}),
        "by_host": dict(sorted(Counter(a["host"] for a in answers if "host" in a).items())),
        "by_path": dict(Counter(a["upstream_path"] for a in answers if "upstream_path" in a)),
        "took": sorted(a["took"] for a in answers if "took" in a),
        "ms": sorted(round(a["ms"]) for a in answers),
        "locations": sorted({a["location"] for a in answers if "location" in a}),
        "upstream_paths": sorted({a["upstream_path"] for a in answers if "upstream_path" in a}),
        "bodies": sorted({a["body"][:200] for a in answers})[:5],
    }


def share(measured: dict, what: str) -> float:
    """The share of all answers that `what` names: `version v1`, `code 500` (the webserver's
    code, as the proxy relays it), `status 200` (the answer's own), `path /redirected` (what the
    webserver was asked for), `mesh fault filter abort` (an answer the mesh gave instead of the
    webserver), `took >= 5000` (the proxy's own milliseconds), `pod webserverv1-slow` (answers
    of the webserver pods whose name starts so), `spread` (the most answers one webserver pod
    gave less the fewest, over all answers: 0 when every pod answered as often)."""
    kind, _, value = what.partition(" ")
    pods = measured.get("by_host", {})
    counts = {
        "version": measured["version"],
        "code": measured["code"],
        "status": measured["status"],
        "path": measured.get("by_path", {}),
        "mesh": measured["other"],
    }
    if kind == "took":
        floor = int(value.removeprefix(">=").strip())
        hits = sum(1 for took in measured["took"] if took >= floor)
    elif kind == "pod":
        hits = sum(n for pod, n in pods.items() if pod.startswith(value))
    elif kind == "spread":
        hits = max(pods.values()) - min(pods.values()) if pods else 0
    elif kind in counts:
        hits = counts[kind].get(value, 0)
    else:
        known = ", ".join([*counts, "took", "pod", "spread"])
        raise ValueError(f"unknown measure {what!r}: one of {known}")
    return hits / max(measured["count"], 1)


def verdicts(measured: dict, expect: list[dict]) -> list[dict]:
    """Each expectation ({what, share, tolerance}) with the share measured and whether it holds."""
    found = []
    for wanted in expect:
        got = share(measured, wanted["what"])
        ok = abs(got - wanted["share"]) <= wanted.get("tolerance", 0)
        found.append(dict(wanted, measured=round(got, 3), ok=ok))
    return found


def ready(measured: dict, conditions: list[dict]) -> bool:
    """Whether each condition ({what, min, max}: shares, as `share` names them) holds: that a
    change of the routes has reached the proxy's sidecar (make step polls it before measuring)."""
    return all(c.get("min", 0) <= share(measured, c["what"]) <= c.get("max", 1) for c in conditions)


def _percentile(values: list[int], fraction: float) -> int | None:
    return values[min(len(values) - 1, int(fraction * len(values)))] if values else None


def report(measured: dict, expect: list[dict] = ()) -> str:
    """The tally for a person: answers by status, version, pod and path, what the mesh answered
    itself, the proxy's `Took N milliseconds` p50/p99, then each expectation beside the share
    measured."""
    n = measured["count"]

    def tally(counts: dict) -> str:
        return ", ".join(f"{k}: {v} ({v / max(n, 1):.2f})" for k, v in counts.items()) or "none"

    took = measured["took"]
    lines = [
        f"requests      {n}",
        f"status        {tally(measured['status'])}",
        f"version       {tally(dict(sorted(measured['version'].items())))}",
        f"webserver pod {tally(measured.get('by_host', {}))}",
        f"path asked    {tally(measured.get('by_path', {}))}",
        f"mesh answered {tally(measured['other'])}",
        f"took (proxy)  p50 {_percentile(took, 0.5)} ms, p99 {_percentile(took, 0.99)} ms,"
        f" max {took[-1] if took else None} ms",
    ]
    for v in verdicts(measured, list(expect)):
        mark = "as the post says" if v["ok"] else "NOT as the post says"
        lines.append(
            f"expected      {v['what']}: {v['share']:.2f} +- {v.get('tolerance', 0):.2f},"
            f" measured {v['measured']:.3f}: {mark}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--kubeconfig", help="reach http://SERVICE.NAMESPACE.svc URLs through it")
    parser.add_argument("--context", help="the kubeconfig's context (default: its current one)")
    parser.add_argument("--report", action="store_true", help="a tally to read, not JSON")
    parser.add_argument(
        "--expect", default="[]", help="JSON [{what, share, tolerance}]: printed with --report"
    )
    parser.add_argument(
        "--ready", help="JSON [{what, min, max}]: exit 0 when every share holds, else 3"
    )
    parser.add_argument(
        "--strict", action="store_true", help="with --report: exit 4 when an --expect fails"
    )
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    in_cluster = SERVICE_HOST.match(urllib.parse.urlsplit(args.url).hostname or "")
    forwarder = Forwarder(args.kubeconfig, args.context) if args.kubeconfig and in_cluster else None
    measured = measure(args.url, args.count, args.concurrency, headers, args.timeout, forwarder)
    if args.report:
        expect = json.loads(args.expect)
        print(report(measured, expect))
        if args.strict and not all(v["ok"] for v in verdicts(measured, expect)):
            sys.exit(4)
        return
    json.dump(measured, sys.stdout)
    print()
    if args.ready is not None:
        sys.exit(0 if ready(measured, json.loads(args.ready)) else 3)


if __name__ == "__main__":
    main()
