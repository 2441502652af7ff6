"""Cluster identity for the target role's guards (filters `ca_fingerprint`,
`kubeconfig_ca_fingerprint`).

A cluster is identified by the SHA-256 fingerprint of its API server's CA certificate: the
Kubernetes client only talks to a server whose certificate that CA signed, so a kubeconfig whose
CA matches the fingerprint recorded in the inventory can only reach that cluster. Computed on
the controller, from the kubeconfig, before any call.
"""

import base64
import hashlib
import re
import ssl
from pathlib import Path

import yaml

PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class IdentityError(ValueError):
    """The kubeconfig does not say which CA to trust."""


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
            "ca_fingerprint": _safe(ca_fingerprint),
            "kubeconfig_ca_fingerprint": _safe(kubeconfig_ca_fingerprint),
        }
