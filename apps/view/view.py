"""The mesh's live view, as a WSGI app (standard library only).

GET /           one HTML page (page.html, no external assets) drawing /api/graph every 2 s
GET /api/graph  JSON: the edges gateway -> proxy -> webserver v1/v2 (and external hosts) with
                their rate, split, success rate and latency from Prometheus (meshmetrics.py),
                the namespace's Deployments (the graph before any traffic) and the Istio
                objects in force on each hop from the Kubernetes API (meshobjects.py).
                ?window=30s|1m|... overrides VIEW_WINDOW.
/healthz, /readyz  probes. Prometheus or the API being down is an error in the answer, never
a failed page. Configuration (environment, read once at start): see ../../docs/apps.md.
"""

import base64
import hashlib
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import meshmetrics
import meshobjects
from meshmetrics import TIMEOUT
from settings import SettingError, env_match

PROMETHEUS_URL = env_match(
    "PROMETHEUS_URL", meshmetrics.PROMETHEUS_URL_FORM, meshmetrics.PROMETHEUS_URL_EXPECTED
)
if not PROMETHEUS_URL:  # required: the view shows nothing without it
    raise SettingError("PROMETHEUS_URL", "", f"expected {meshmetrics.PROMETHEUS_URL_EXPECTED}")
NAMESPACE = env_match(
    "VIEW_NAMESPACE", meshmetrics.NAMESPACE_FORM, meshmetrics.NAMESPACE_EXPECTED, "mesh-playground"
)
WINDOW = env_match("VIEW_WINDOW", meshmetrics.WINDOW_FORM, meshmetrics.WINDOW_EXPECTED, "1m")

# ---------------------------------------------------------------- the Kubernetes API
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"
_PORT = r"[1-9][0-9]{0,4}"


def _readable(name, default):
    """A file setting: an absolute path that can be read at start (default: not checked)."""
    raw = env_match(name, r"/[^\x00-\x1f]*", "an absolute path of a readable file")
    if not raw:
        return default
    try:
        with open(raw, "rb"):
            pass
    except OSError as error:
        raise SettingError(
            name, raw, f"cannot read it ({error.strerror}); expected a readable file"
        ) from None
    return raw


def _api_url():
    """KUBE_API_URL, else the in-cluster address (KUBERNETES_SERVICE_HOST/_PORT), else None."""
    url = env_match(
        "KUBE_API_URL", r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?",
        "http(s)://host[:port], e.g. https://127.0.0.1:6443",
    )  # fmt: skip
    if url:
        return url
    host = env_match("KUBERNETES_SERVICE_HOST", _HOST, "the API server's IP address or name")
    port = env_match("KUBERNETES_SERVICE_PORT", _PORT, "a port number, e.g. 443", "443")
    if not host:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


KUBE_API_URL = _api_url()
KUBE_TOKEN_FILE = _readable("KUBE_TOKEN_FILE", f"{SERVICE_ACCOUNT}/token")
KUBE_CA_FILE = _readable("KUBE_CA_FILE", f"{SERVICE_ACCOUNT}/ca.crt")
# What is read of the namespace (the app_workloads entry's api_read allows it): kind -> (API
# group/version, plural). Istio's objects first: without the Deployments the hops still show them.
PLURALS = {
    "VirtualService": ("networking.istio.io/v1", "virtualservices"),
    "DestinationRule": ("networking.istio.io/v1", "destinationrules"),
    "Gateway": ("networking.istio.io/v1", "gateways"),
    "ServiceEntry": ("networking.istio.io/v1", "serviceentries"),
    "Deployment": ("apps/v1", "deployments"),
}


def _kube_get(url, token, context):
    # No proxy variables: the API is called where it was configured.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(  # noqa: S310 (http(s) only: KUBE_API_URL's form)
        url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )
    with opener.open(request, timeout=TIMEOUT) as response:
        return json.loads(response.read(8 << 20))


def namespace_objects():
    """({kind: [object]}, error or None): the namespace's Istio objects and Deployments."""
    if not KUBE_API_URL:
        return {}, "no Kubernetes API: KUBERNETES_SERVICE_HOST (in a pod) or KUBE_API_URL unset"
    try:
        token = Path(KUBE_TOKEN_FILE).read_text().strip()  # re-read: the kubelet rotates it
        context = None
        if KUBE_API_URL.startswith("https:"):
            context = ssl.create_default_context(cadata=Path(KUBE_CA_FILE).read_text())
    except OSError as error:
        return {}, f"cannot read {error.filename}: {error.strerror}"
    except ssl.SSLError as error:
        return {}, f"bad CA file {KUBE_CA_FILE}: {error}"
    objects = {}
    for kind, (api, plural) in PLURALS.items():
        url = f"{KUBE_API_URL}/apis/{api}/namespaces/{NAMESPACE}/{plural}"
        try:
            items = _kube_get(url, token, context).get("items") or []
        except urllib.error.HTTPError as error:
            hint = {
                401: " (the ServiceAccount token was refused)",
                403: f" (RBAC: may this ServiceAccount list {plural} in {NAMESPACE}?)",
                404: " (are Istio's CRDs installed?)" if "istio" in api else "",
            }.get(error.code, "")
            return objects, f"{KUBE_API_URL} answered HTTP {error.code} for {plural}{hint}"
        except TimeoutError:
            return objects, f"{KUBE_API_URL} did not answer within {TIMEOUT:g} s"
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                return objects, f"{KUBE_API_URL} did not answer within {TIMEOUT:g} s"
            reason = getattr(error.reason, "strerror", None) or str(error.reason)
            return objects, f"cannot connect to {KUBE_API_URL}: {reason}"
        except (OSError, ValueError, AttributeError) as error:
            return objects, f"{KUBE_API_URL} answered badly for {plural}: {error}"
        objects[kind] = [dict(item, kind=kind) for item in items if isinstance(item, dict)]
    return objects, None


# ---------------------------------------------------------------- the graph
def graph(window):
    """/api/graph's answer: Prometheus and the API are read side by side (2 s at most)."""
    found = {}
    reader = threading.Thread(target=lambda: found.update(objects=namespace_objects()), daemon=True)
    reader.start()
    errors = {"prometheus": None, "kubernetes": None}
    try:
        edges = meshmetrics.edges(meshmetrics.fetch(PROMETHEUS_URL, NAMESPACE, window), window)
    except meshmetrics.PrometheusError as error:
        edges, errors["prometheus"] = [], str(error)
    reader.join(TIMEOUT * len(PLURALS) + 1)
    objects, errors["kubernetes"] = found.get(
        "objects", ({}, "the API reader failed or took too long (see the view's log)")
    )
    # What is deployed is drawn before any traffic; the traffic adds what Prometheus saw.
    skeleton, hops = meshobjects.topology(objects, NAMESPACE)
    hops = dict.fromkeys([*hops, *((edge["source"], edge["destination"]) for edge in edges)])
    return {
        "namespace": NAMESPACE,
        "window": window,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nodes": meshmetrics.nodes(edges, skeleton),
        "edges": edges,
        "objects": {
            f"{source}->{service}": meshobjects.on_hop(source, service, objects, NAMESPACE)
            for source, service in hops
        },
        "errors": errors,
    }


# ---------------------------------------------------------------- HTTP
PAGE = (Path(__file__).resolve().parent / "page.html").read_text()


def _csp_hash(tag):
    """The CSP source of the page's one inline <script> or <style>: its sha256."""
    body = re.search(rf"<{tag}>(.*?)</{tag}>", PAGE, re.S)[1]
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


# Nothing but the page's own script and style, and fetches to this origin.
_PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    (
        "Content-Security-Policy",
        f"default-src 'none'; script-src {_csp_hash('script')}; style-src {_csp_hash('style')}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
]
_COMMON = [("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
_JSON = [("Content-Type", "application/json")]
_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
}


def _respond(start_response, code, body, headers=_TEXT, method="GET"):
    data = body.encode()
    start_response(_STATUS[code], [*headers, *_COMMON, ("Content-Length", str(len(data)))])
    return [] if method == "HEAD" else [data]


def window_param(query):
    """The ?window= of a query string (or VIEW_WINDOW), or ValueError saying what is wrong."""
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, max_num_fields=4)
    except ValueError:
        raise ValueError("too many query parameters (only window is accepted)") from None
    window = WINDOW
    for name, value in pairs:
        if name != "window":
            raise ValueError(f"unknown query parameter {name[:40]!r} (only window is accepted)")
        if not re.fullmatch(meshmetrics.WINDOW_FORM, value):
            raise ValueError(f"window={value[:40]!r}: expected {meshmetrics.WINDOW_EXPECTED}")
        window = value
    return window


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")
    if path == "/healthz" or path == "/readyz":
        return _respond(start_response, 200, "ok", method=method)
    if path not in ("/", "/api/graph"):
        text = f"not found: {path[:100]!r} (try / or /api/graph)"
        return _respond(start_response, 404, text, method=method)
    if method not in ("GET", "HEAD"):
        text = f"method {method[:20]!r} not allowed: use GET"
        return _respond(start_response, 405, text, [*_TEXT, ("Allow", "GET, HEAD")])
    try:
        window = window_param(environ.get("QUERY_STRING", ""))
    except ValueError as problem:
        return _respond(start_response, 400, str(problem), method=method)
    if path == "/":
        return _respond(start_response, 200, PAGE, _PAGE_HEADERS, method)
    return _respond(start_response, 200, json.dumps(graph(window)), _JSON, method)
