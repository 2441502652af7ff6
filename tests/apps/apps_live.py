"""Helpers of the app tests, on 127.0.0.1: real gunicorn processes, a recording and a hostile
upstream, a silent server, and the view's stub Prometheus and Kubernetes API (serving the
Deployments the app_workloads role's default list makes)."""

import contextlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from polling import wait_for
from workloads import OVERRIDABLE, workloads

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "apps"
SERVE = [sys.executable, str(APPS / "common" / "serve.py")]  # the images' CMD: gunicorn
DEADLINE = 20.0  # seconds any start/stop may take on a loaded 2-core machine
POLL = 0.02  # the apps start in well under a second: poll them often


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict  # lower-case names; repeated headers joined with ", "
    body: bytes

    @property
    def text(self):
        return self.body.decode()


def parse_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return Response(status, headers, body)


def raw_request(port, target, headers=(), method="GET", timeout=DEADLINE):
    """Send the request bytes as given (no client-side normalisation) and read to EOF."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    # gunicorn reads only the first Connection header to decide whether to close.
    lines = [
        method.encode() + b" " + target + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Connection: close",
    ]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


def get(port, target, headers=()):
    return raw_request(port, target, headers)


class Gunicorn:
    """`cd apps/<app> && gunicorn` on a free loopback port, stdout+stderr in a log file.

    One worker with 4 threads unless `env` says otherwise (a None value unsets a variable).
    """

    def __init__(self, app, log_dir, env=None):
        self.app = app
        self.port = free_port()
        self.log_path = Path(log_dir) / f"{app}-{self.port}.log"
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "BIND_ADDRESS": "127.0.0.1",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "4",
            **(env or {}),
        }
        self.env = {name: value for name, value in self.env.items() if value is not None}
        self.process = None

    def start(self, wait=True):
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                SERVE,
                cwd=APPS / self.app,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            wait_for(
                self._ready, DEADLINE, f"{self.app} to answer /readyz on port {self.port}", POLL
            )
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"{self.app} exited {self.process.returncode}:\n{self.log()}")
        try:
            return raw_request(self.port, "/readyz", timeout=2).status == 200
        except OSError:
            return False

    def log(self):
        return self.log_path.read_text(errors="replace")

    def access_log(self):
        """The JSON access log records written so far."""
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def terminate(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self):
        if not self.process or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Seen:
    """One request as the upstream received it."""

    requestline: str
    path: str
    headers: list
    client_port: int


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 (connections kept alive), no log line per request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


def serve(handler):
    """A threading HTTP server on a free port of 127.0.0.1, serving `handler` in a daemon
    thread until its shutdown()."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class RecordingUpstream:
    """An HTTP/1.1 upstream on loopback that records every request it receives.

    Paths (after any base path): /status/<code>, /bytes/<n> (Content-Length), /chunked/<n>,
    /hold (waits for `release`), /nonutf8; `redirects` maps a path to a Location.
    Anything else answers 200 "upstream saw <raw path>".
    """

    base: str = ""
    seen: list = field(default_factory=list)
    redirects: dict = field(default_factory=dict)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    set_cookie: str = ""  # a Set-Cookie header on every answer, when set

    def start(self):
        upstream = self

        class Handler(QuietHandler):
            def do_GET(self):
                upstream.seen.append(
                    Seen(
                        self.requestline,
                        self.path,
                        list(self.headers.items()),
                        self.client_address[1],
                    )
                )
                path = self.path.removeprefix(upstream.base)
                if path in upstream.redirects:
                    return self.answer(302, b"moved", [("Location", upstream.redirects[path])])
                if match := re.fullmatch(r"/status/(\d+)", path):
                    return self.answer(int(match[1]), b"status " + match[1].encode())
                if match := re.fullmatch(r"/bytes/(\d+)", path):
                    return self.answer(200, b"x" * int(match[1]))
                if match := re.fullmatch(r"/chunked/(\d+)", path):
                    return self.chunked(b"y" * int(match[1]))
                if path == "/hold":
                    upstream.arrived.set()
                    upstream.release.wait(DEADLINE)
                    return self.answer(200, b"held")
                if path == "/nonutf8":
                    return self.answer(200, b"bad \xff\xfe bytes")
                return self.answer(200, b"upstream saw " + self.path.encode("latin-1"))

            def answer(self, status, body, headers=()):
                self.send_response(status)
                if upstream.set_cookie:
                    self.send_header("Set-Cookie", upstream.set_cookie)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def chunked(self, body):
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(body), 4096):
                    piece = body[start : start + 4096]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")

        self.server = serve(Handler)
        # A client hanging up mid-answer (the proxy dropping an oversized body) is expected.
        self.server.handle_error = lambda request, client_address: None
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{self.base}"
        return self

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def no_new_requests(server):
    before = len(server.seen)
    yield
    assert server.seen[before:] == [], "the upstream must not have been called"


class HostileUpstream:
    """A raw-socket upstream on loopback (IPv4, or IPv6 with host="::1"): every connection
    reads the request head, then `behaviours[path](sock)` writes whatever bytes it likes, at
    whatever pace (sock.sendall, time.sleep as the *pace* of a hostile peer). Unknown paths
    get a plain 200. `seen` lists the request paths received."""

    def __init__(self, behaviours, host="127.0.0.1"):
        self.behaviours = behaviours
        self.seen = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://{'[' + host + ']' if family == socket.AF_INET6 else host}:{self.port}"
        self.stopped = threading.Event()
        self.serving = threading.Thread(target=self._serve, daemon=True)
        self.serving.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock):
        with sock:
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                path = head.split(b" ", 2)[1].decode("latin-1")
                self.seen.append(path)
                behaviour = self.behaviours.get(path)
                if behaviour is None:
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                else:
                    behaviour(sock)
            except OSError:
                pass  # the proxy hung up: expected for most behaviours

    def stop(self):
        self.stopped.set()
        # close() alone leaves a blocked accept() holding the listener open: a later test's
        # connection to the same port would be accepted here and dropped unanswered.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.serving.join(DEADLINE)


# ---------------------------------------------------------------- the view's upstreams
NAMESPACE = "mesh-playground"
GATEWAY = {
    "source_workload": "istio-ingressgateway",
    "source_workload_namespace": "istio-ingress",
}
PROXY = {"source_workload": "proxy", "source_workload_namespace": NAMESPACE}


def series(source, service, workload, version, codes, p50, p99, reporter="source", ns=NAMESPACE):
    """One edge as Istio's metrics hold it: its labels, its rate per response code (per
    second), its 50th/99th percentile latency (ms; None: no histogram, Prometheus' NaN)."""
    labels = {
        "reporter": reporter,
        **source,
        "destination_service_name": service,
        "destination_service_namespace": ns,
        "destination_workload": workload,
        "destination_version": version,
        "response_flags": "-",
    }
    return {"labels": labels, "codes": codes, "p50": p50, "p99": p99}


def split_80_20():
    """The series' split demo under load: 10 rps in through the gateway, v1 80 / v2 20,
    v1 with some 503s; decoys the view must not count (the servers' own reports of the same
    requests, another namespace's traffic)."""
    return [
        series(GATEWAY, "proxy", "proxy", "v1", {"200": 9.8, "502": 0.2}, 14.0, 95.0),
        series(PROXY, "webserver", "webserverv1", "v1", {"200": 7.6, "503": 0.4}, 4.2, 24.5),
        series(PROXY, "webserver", "webserverv2", "v2", {"200": 2.0}, 5.5, 48.0),
        series(PROXY, "webserver", "webserverv1", "v1", {"200": 7.6}, 3.0, 20.0, "destination"),
        series(
            {"source_workload": "other", "source_workload_namespace": "elsewhere"},
            "web",
            "webv1",
            "v1",
            {"200": 50.0},
            1.0,
            2.0,
            ns="elsewhere",
        ),
    ]


class JsonStub:
    """An HTTP/1.1 server on loopback that answers each GET with JSON: `respond(path,
    headers)`, given by the subclass, returns (status, payload). Started on construction;
    `url` is where it listens, `stop()` ends it."""

    def __init__(self):
        stub = self

        class Handler(QuietHandler):
            def do_GET(self):
                status, payload = stub.respond(self.path, self.headers)
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = serve(Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def respond(self, path, headers):
        raise NotImplementedError

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class StubPrometheus(JsonStub):
    """A Prometheus on loopback whose /api/v1/query evaluates the view's instant queries
    against canned `series`: it recognises the metric (istio_requests_total, or a
    histogram_quantile(0.5|0.99) of the duration buckets), keeps the series that one of the
    query's {label="value"} selections matches, keeps only the `sum by (...)` labels, and
    answers a vector like Prometheus does. `queries` records every query received."""

    def __init__(self, canned):
        self.series = canned
        self.queries = []
        super().__init__()

    def respond(self, path, headers):
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
        if url.path != "/api/v1/query" or not query:
            return 404, {"status": "error", "error": "not found"}
        self.queries.append(query)
        result = self.evaluate(query)
        if result is None:
            return 400, {"status": "error", "errorType": "bad_data", "error": "unknown query"}
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

    def evaluate(self, query):
        quantile = re.match(r"histogram_quantile\((0\.5|0\.99), ", query)
        metric = (
            "istio_request_duration_milliseconds_bucket" if quantile else "istio_requests_total"
        )
        if not re.search(rf"\b{metric}\{{", query):
            return None
        selections = [
            dict(re.findall(r'(\w+)="([^"]*)"', selection))
            for selection in re.findall(rf"{metric}\{{([^}}]*)\}}", query)
        ]
        (by,) = set(re.findall(r"sum by \(([^)]*)\)", query))
        kept = [name for name in by.split(",") if name not in ("le", "response_code")]
        if quantile and "le" not in by.split(","):
            return []  # histogram_quantile needs the buckets' le: without it, nothing
        by_code = "response_code" in by.split(",")
        now = time.time()
        result = []
        for item in self.series:
            labels = item["labels"]
            if not any(all(labels.get(k) == v for k, v in s.items()) for s in selections):
                continue
            metric_labels = {name: labels[name] for name in kept if name in labels}
            if quantile:
                value = item["p50" if quantile[1] == "0.5" else "p99"]
                value = "NaN" if value is None else repr(value)
                result.append({"metric": metric_labels, "value": [now, value]})
            else:
                codes = item["codes"] if by_code else {"": sum(item["codes"].values())}
                for code, rate in codes.items():
                    labels_out = {**metric_labels, "response_code": code} if code else metric_labels
                    result.append({"metric": labels_out, "value": [now, str(rate)]})
        return result


class SilentServer:
    """A listening socket that never accepts: connections are made (the kernel's backlog),
    requests are sent, and no answer ever comes (a hung Prometheus or API server)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.listener.close()


def istio_objects():
    """The namespace's Istio objects, as the collection renders the series' split, fault,
    retry, gateway and external-service sets (roles/mesh_policies)."""
    vs, dr = "VirtualService", "DestinationRule"
    return {
        vs: [
            {"metadata": {"name": "webserver"}, "spec": {"hosts": ["webserver"], "http": [{
                "name": "split",
                "route": [
                    {"destination": {"host": "webserver", "subset": "v1"}, "weight": 80},
                    {"destination": {"host": "webserver", "subset": "v2"}, "weight": 20},
                ],
                "fault": {"abort": {"percentage": {"value": 50}, "httpStatus": 400}},
                "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx"},
                "timeout": "10s",
            }]}},
            {"metadata": {"name": "proxy"}, "spec": {
                "hosts": ["*"], "gateways": [f"{NAMESPACE}/default-gateway"],
                "http": [{"route": [{"destination": {"host": "proxy"}}]}],
            }},
        ],
        dr: [
            {"metadata": {"name": "webserver"}, "spec": {
                "host": "webserver",
                "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
                "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                            {"name": "v2", "labels": {"version": "v2"}}],
            }},
            {"metadata": {"name": "github"}, "spec": {
                "host": "raw.githubusercontent.com", "trafficPolicy": {"tls": {"mode": "SIMPLE"}},
            }},
        ],
        "Gateway": [
            {"metadata": {"name": "default-gateway"}, "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                             "hosts": ["*"]}],
            }},
        ],
        "ServiceEntry": [
            {"metadata": {"name": "github"}, "spec": {
                "hosts": ["raw.githubusercontent.com"], "location": "MESH_EXTERNAL",
                "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}], "resolution": "DNS",
            }},
        ],
    }  # fmt: skip


def deployment(name, labels, env=(), sidecar=True):
    """A Deployment as the app_workloads role renders it (objects.yml.j2), with what the view
    reads: its labels, its pods' labels (out of the mesh without a sidecar), its container's env."""
    pods = labels if sidecar else {**labels, "sidecar.istio.io/inject": "false"}
    container = {"name": labels.get("app", name), "env": [{"name": k, "value": v} for k, v in env]}
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "template": {"metadata": {"labels": pods}, "spec": {"containers": [container]}},
        },
    }


def deployments():
    """The namespace's Deployments as the role deploys its default list (roles/app_workloads/
    defaults/main.yml: webserver v1 and v2, the proxy with PROXYURL, the view), every entry on."""
    defaults = yaml.safe_load((REPO / "roles/app_workloads/defaults/main.yml").read_text())
    settings = {key: defaults[f"app_workloads_{key}"] for key in OVERRIDABLE}
    entries = [dict(entry, enabled=True) for entry in defaults["app_workloads"]]
    return [
        deployment(
            w["name"],
            {**w["selector"], "app.kubernetes.io/name": w["app"],
             "app.kubernetes.io/instance": w["name"], "app.kubernetes.io/version": w["version"]},
            sorted(w["env"].items()),
            w["sidecar"],
        )
        for w in workloads(entries, settings, defaults["app_workloads_images"])
    ]  # fmt: skip


# The lists the view reads: (API group/version, plural) -> kind.
LISTS = {
    ("networking.istio.io/v1", "virtualservices"): "VirtualService",
    ("networking.istio.io/v1", "destinationrules"): "DestinationRule",
    ("networking.istio.io/v1", "gateways"): "Gateway",
    ("networking.istio.io/v1", "serviceentries"): "ServiceEntry",
    ("apps/v1", "deployments"): "Deployment",
}


class StubKubernetes(JsonStub):
    """The Kubernetes API's list endpoints of Istio's networking objects and Deployments
    (`objects`: {kind: [object]}, read at each request), on loopback: 401 without the bearer
    `token`, 404 for anything else; `seen` records (path, authorization)."""

    def __init__(self, token, objects, namespace=NAMESPACE):
        self.token, self.objects, self.namespace = token, objects, namespace
        self.forbidden = set()  # plurals answered 403 (a Role that does not allow them)
        self.seen = []
        super().__init__()

    def respond(self, path, headers):
        self.seen.append((path, headers.get("Authorization")))
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"kind": "Status", "code": 401}
        match = re.fullmatch(rf"/apis/([\w.]+/v1)/namespaces/{self.namespace}/(\w+)", path)
        kind = match and LISTS.get((match[1], match[2]))
        if not kind:
            return 404, {"kind": "Status", "code": 404}
        if match[2] in self.forbidden:
            return 403, {"kind": "Status", "code": 403}
        api = match[1]
        items = [{"apiVersion": api, "kind": kind, **item} for item in self.objects.get(kind, [])]
        return 200, {"apiVersion": api, "kind": f"{kind}List", "items": items}
