"""playbooks/files/traffic.py's way into a Service without a NodePort: which pod and port its
port-forward picks (a fake API), and that a request goes over the socket it hands over (a real
HTTP server on loopback standing in for the port-forward's far end). The port-forward itself is
the Kubernetes client's; the mesh scenarios use it against the real cluster."""

import http.server
import socket
import threading
from types import SimpleNamespace as NS

import pytest
import traffic


def pod(name, *, ready=True, phase="Running", deleting=False, ports=()):
    return NS(
        metadata=NS(name=name, deletion_timestamp="now" if deleting else None),
        status=NS(phase=phase, conditions=[NS(type="Ready", status="True" if ready else "False")]),
        spec=NS(containers=[NS(ports=[NS(name=n, container_port=p) for n, p in ports])]),
    )


class FakeApi:
    def __init__(self, target_port, pods):
        self.target_port, self.pods, self.selectors = target_port, pods, []

    def read_namespaced_service(self, name, namespace):
        port = NS(port=80, target_port=self.target_port)
        return NS(spec=NS(ports=[port], selector={"app": name}))

    def list_namespaced_pod(self, namespace, label_selector):
        self.selectors.append(label_selector)
        return NS(items=self.pods)


def forwarder(api) -> traffic.Forwarder:
    bare = traffic.Forwarder.__new__(traffic.Forwarder)
    bare._api = lambda: api
    return bare


@pytest.mark.parametrize(
    ("in_cluster", "service"),
    [("proxy.molecule-mesh-routing.svc", "proxy"), ("gw.istio-ingress.svc.cluster.local", "gw")],
)
def test_a_services_in_cluster_name_is_forwarded(in_cluster, service):
    assert traffic.SERVICE_HOST.match(in_cluster)["service"] == service


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "proxy.example.com", "proxy.ns"])
def test_other_hosts_are_reached_directly(host):
    assert traffic.SERVICE_HOST.match(host) is None


def test_only_ready_running_pods_on_the_targeted_port():
    api = FakeApi(
        3030,
        [
            pod("proxy-b"),
            pod("proxy-a"),
            pod("proxy-c", ready=False),
            pod("proxy-d", phase="Pending"),
            pod("proxy-e", deleting=True),
        ],
    )
    assert forwarder(api)._resolve("ns", "proxy", 80) == [("proxy-a", 3030), ("proxy-b", 3030)]
    assert api.selectors == ["app=proxy"]


def test_a_named_target_port_is_the_containers():
    api = FakeApi("http-web", [pod("proxy-a", ports=[("metrics", 9090), ("http-web", 3030)])])
    assert forwarder(api)._resolve("ns", "proxy", 80) == [("proxy-a", 3030)]


def test_no_ready_pod_is_an_error_the_request_reports():
    with pytest.raises(OSError, match="no ready pod behind Service ns/proxy port 80"):
        forwarder(FakeApi(3030, [pod("proxy-a", ready=False)]))._resolve("ns", "proxy", 80)


class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        webserver = f"WebServer V2 requested from {self.path} on w2 with code 200"
        body = f"Proxying value: {webserver} - Took 3 milliseconds"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_the_request_goes_over_the_forwarded_socket():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    asked = []

    class Forward:
        def connect(self, namespace, service, port, timeout):
            asked.append((namespace, service, port))
            return socket.create_connection(server.server_address, timeout)

    try:
        counts = traffic.measure("http://proxy.ns.svc/x", 6, 3, forwarder=Forward())
    finally:
        server.shutdown()
    assert asked == [("ns", "proxy", 80)] * 6
    assert counts["version"] == {"v2": 6}
    assert counts["upstream_paths"] == ["/x"]
