"""The target role's pure pieces (filters `kubeconfig_path`, `ca_fingerprint`,
`kubeconfig_ca_fingerprint`, `kubeconfig_file_ca_fingerprint`, `target_problems`).

Which kubeconfig: `playground_kubeconfig` as set, `~` expanded and a relative path taken relative
to the inventory's directory; empty, the Kubernetes client's default: the first entry of
`$KUBECONFIG`, else `~/.kube/config`. The result is an absolute path, the one every
kubernetes.core call receives (the facts `playground_kubeconfig_path` and
`playground_k8s_connection`, roles/target/tasks/connection.yml): never an empty value, which a
lookup cannot omit.

Which cluster: a cluster is identified by the SHA-256 fingerprint of its API server's CA
certificate, written `sha256:<64 lowercase hex digits>`. The Kubernetes client only talks to a
server whose certificate that CA signed, so a kubeconfig whose CA matches the fingerprint
recorded in the inventory can only reach that cluster. Computed on the controller, from the
kubeconfig, before any call.
"""

import base64
import hashlib
import os
import re
import ssl
from pathlib import Path

import yaml

PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
# The one form the inventory takes (and the guard compares): what ca_fingerprint returns.
FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SYSTEM_NAMESPACE = re.compile(r"^(kube-.*|default|istio-.*)$")
PLACEHOLDER = "FILL-IN"
# The settings an example inventory ships as placeholders ("FILL-IN: what to put there").
PLACEHOLDER_SETTINGS = (
    "playground_kubeconfig",
    "playground_context",
    "playground_cluster_ca_fingerprint",
)


class IdentityError(ValueError):
    """The kubeconfig does not say which CA to trust."""


def _expand_home(path, home):
    if path == "~" or path.startswith("~/"):
        return (home or os.path.expanduser("~")) + path[1:]
    return os.path.expanduser(path)  # ~user/...; anything else unchanged


def kubeconfig_path(value, base_dir="", environ=None, cwd=None):
    """The absolute path of the kubeconfig the client reads for `value` (playground_kubeconfig).

    Empty: the client's default, the first non-empty entry of $KUBECONFIG (relative to the working
    directory, as the client takes it), else ~/.kube/config. Set: `~` is the controller's $HOME,
    a relative path is relative to `base_dir` (the inventory's directory). A FILL-IN placeholder is
    returned unchanged (the guards refuse it)."""
    environ = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    home = environ.get("HOME", "")
    value = (value or "").strip()
    if PLACEHOLDER in value:
        return value
    if value:
        path, relative_to = _expand_home(value, home), base_dir or cwd
    else:
        entries = [e for e in environ.get("KUBECONFIG", "").split(os.pathsep) if e.strip()]
        path = _expand_home(entries[0].strip() if entries else "~/.kube/config", home)
        relative_to = cwd
    return os.path.normpath(os.path.join(relative_to, path))


def ca_fingerprint(pem):
    """`sha256:<hex>` of the first certificate in `pem` (its DER bytes, as openssl shows it)."""
    match = PEM.search(pem or "")
    if not match:
        raise IdentityError("no PEM certificate found")
    der = ssl.PEM_cert_to_DER_cert(match[0])
    return "sha256:" + hashlib.sha256(der).hexdigest()


def kubeconfig_ca_fingerprint(kubeconfig_text, context="", base_dir="."):
    """The CA fingerprint of `context` (empty: the current context) in a kubeconfig."""
    config = yaml.safe_load(kubeconfig_text) or {}
    name = context or config.get("current-context") or ""
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    if name not in contexts:
        raise IdentityError(f"context {name!r} not found (contexts: {sorted(contexts)})")
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    cluster = clusters.get(contexts[name].get("cluster"))
    if cluster is None:
        raise IdentityError(f"the cluster of context {name!r} is not in the kubeconfig")
    if cluster.get("insecure-skip-tls-verify"):
        raise IdentityError(f"context {name!r} skips TLS verification: any server would do")
    if cluster.get("certificate-authority-data"):
        return ca_fingerprint(base64.b64decode(cluster["certificate-authority-data"]).decode())
    if cluster.get("certificate-authority"):
        path = Path(base_dir, cluster["certificate-authority"])
        return ca_fingerprint(path.read_text())
    raise IdentityError(f"context {name!r} names no CA (it trusts the system's CAs)")


def kubeconfig_file_ca_fingerprint(path, context=""):
    """The CA fingerprint of `context` in the kubeconfig file at `path` (a relative
    certificate-authority is relative to the file's directory, as the client takes it)."""
    if PLACEHOLDER in (path or ""):
        raise IdentityError("playground_kubeconfig is still a FILL-IN placeholder")
    file = Path(path)
    if not file.is_file():
        raise IdentityError(f"no kubeconfig at {path}")
    return kubeconfig_ca_fingerprint(file.read_text(), context, str(file.parent))


def target_problems(target):
    """What stops a run before anything is touched, one message each, all at once.

    `target`: namespace, context, kubeconfig_path (resolved), fingerprint (recorded), found (what
    kubeconfig_file_ca_fingerprint gave, or `unknown (why)`), settings (the placeholder-able
    settings as set), inventory (its directory), host, sharing (other hosts of the run with the
    same kubeconfig, context and namespace). Whenever there is a problem, one of them says which CA
    the kubeconfig's context leads to, in the form the inventory takes."""
    namespace = target.get("namespace") or ""
    context = target.get("context") or ""
    path = target.get("kubeconfig_path") or ""
    expected = (target.get("fingerprint") or "").strip()
    found = target.get("found") or "unknown"
    settings = target.get("settings") or {}
    placeholders = [n for n in PLACEHOLDER_SETTINGS if PLACEHOLDER in str(settings.get(n) or "")]
    leads = f"context {context or '(current)'} of {path} leads to CA {found}"
    # Nothing recorded yet (or not in the inventory's form): say what to record, in that form.
    record = (
        f" (once the cluster's owner confirms it, record it: playground_cluster_ca_fingerprint:"
        f' "{found}")'
        if FINGERPRINT.match(found)
        else ""
    )
    problems = []
    if not NAMESPACE.match(namespace) or SYSTEM_NAMESPACE.match(namespace):
        problems.append(
            f'playground_namespace="{namespace}": use at most 63 lowercase letters, digits and'
            " '-', starting and ending with a letter or digit, and not a system namespace"
            " (kube-*, default, istio-*): mesh-playground relabels and default-denies its"
            " namespace."
        )
    if placeholders:
        values = "; ".join(str(settings[n]) for n in placeholders)
        problems.append(
            f"Fill in {', '.join(placeholders)} in the inventory"
            f" ({target.get('inventory') or '?'}): {values}."
        )
    if target.get("sharing"):
        problems.append(
            f"Hosts {', '.join(target['sharing'])} and {target.get('host')} all target context"
            f' "{context}" of {path}, namespace {namespace}: with several inventories (-i a -i b)'
            " keep each cluster's settings in its host's host_vars, or deploy one inventory at a"
            " time."
        )
    if "playground_kubeconfig" in placeholders:
        identity = (
            "Found: no CA yet (the next run prints the one the kubeconfig's context leads to)."
        )
    elif placeholders:
        identity = f"Found: {leads}{record}."
    elif not expected:
        identity = (
            "playground_cluster_ca_fingerprint is not set: record the identity of the cluster"
            f" this inventory is for; {leads}{record}."
        )
    elif not FINGERPRINT.match(expected):
        identity = (
            f"playground_cluster_ca_fingerprint={expected!r}: use sha256: followed by the 64"
            " lowercase hex digits of the CA certificate's SHA-256 (docs/troubleshooting.md"
            f" shows how to print it); {leads}{record}."
        )
    elif expected != found:
        identity = f"Wrong cluster: expected CA {expected}; {leads}."
    else:
        identity = f"Found: {leads}." if problems else ""
    return [*problems, identity] if identity else problems


def api_server_egress(endpoint_slices, service):
    """The NetworkPolicy egress rule by which pods reach the API server: to the addresses and
    port of the `kubernetes` Service's endpoints, which is what a NetworkPolicy sees once the
    Service's address is translated. Without endpoints (an API server advertised on loopback, as
    the local cluster's, whose node sends the Service's address to its loopback listener): to
    127.0.0.1 on the Service's target port."""
    addresses, ports = set(), set()
    for endpoint_slice in endpoint_slices or []:
        for endpoint in endpoint_slice.get("endpoints") or []:
            addresses.update(endpoint.get("addresses") or [])
        ports.update(p["port"] for p in endpoint_slice.get("ports") or [] if p.get("port"))
    if not addresses:
        service_ports = (service or {}).get("spec", {}).get("ports") or [{}]
        addresses = {"127.0.0.1"}
        ports = {service_ports[0].get("targetPort") or 6443}
    return {
        "to": [{"ipBlock": {"cidr": f"{a}/{128 if ':' in a else 32}"}} for a in sorted(addresses)],
        "ports": [{"protocol": "TCP", "port": int(p)} for p in sorted(ports)],
    }


def _safe(function):
    def wrapped(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (IdentityError, OSError, ValueError, KeyError, TypeError) as error:
            return f"unknown ({error})"

    return wrapped


class FilterModule:
    def filters(self):
        return {
            "kubeconfig_path": kubeconfig_path,
            "ca_fingerprint": _safe(ca_fingerprint),
            "kubeconfig_ca_fingerprint": _safe(kubeconfig_ca_fingerprint),
            "kubeconfig_file_ca_fingerprint": _safe(kubeconfig_file_ca_fingerprint),
            "target_problems": target_problems,
            "api_server_egress": api_server_egress,
        }
