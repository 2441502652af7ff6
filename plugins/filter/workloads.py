"""The app workloads as data: one list entry per Deployment, expanded here into what the
app_workloads role's template renders (filters `workloads`, `workload_services`,
`workload_problems`), the registry credentials its pods pull with (`pull_secret_problems`,
`docker_config`), and what is rolled out (`rollout_state`, and `pull_failures`: why a rollout
cannot get its images); `workload_overrides` makes a variant of a list as data (the Molecule
scenarios' variants of the role's default list).

This module is the one place that names things: a workload is `<app><version>` (webserverv1)
unless its entry says otherwise, its pods carry `app` and `version` (what Services, subsets and
the mesh select on), each app has one ServiceAccount and one Service named after the app that
selects every version, and each workload a Service named after itself.
"""

import base64
import json
import re

# Settings an entry may override; the role's app_workloads_* variables give their defaults.
OVERRIDABLE = (
    "replicas",
    "strategy",
    "max_surge",
    "port",
    "service_port",
    "service_type",
    "workers",
    "resources",
    "prestop_seconds",
    "graceful_seconds",
    "clients",
    "upstreams",
)
# Per entry only: `enabled` (false leaves the workload out, so a deploy removes it), `sidecar`
# (false keeps the mesh's proxy out of its pods), `api_read` (resources of the namespace its
# ServiceAccount may read: [{group: networking.istio.io, resources: [virtualservices]}]),
# `egress` (NetworkPolicy egress rules beyond its upstreams, as a NetworkPolicy writes them:
# [{to: [<peer>...], ports: [{protocol: TCP, port: 9090}]}]).
KNOWN_KEYS = frozenset(OVERRIDABLE) | {
    "app",
    "version",
    "name",
    "image",
    "env",
    "enabled",
    "sidecar",
    "api_read",
    "egress",
}
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$")
VERSION = re.compile(r"^v[0-9]+$")
# host[:port]/path followed by a tag, a digest, or both (repo:tag@sha256:<64 hex>: the digest
# is what runs, the tag is for people).
IMAGE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)+"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$"
)
# A registry as image references name it: host[:port], no scheme, no path.
REGISTRY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?$")
# A Secret's name (DNS subdomain).
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Why a container cannot start because of its image: kubelet's waiting reasons.
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
STRATEGIES = ("RollingUpdate", "Recreate")


def workload_name(entry):
    return entry.get("name") or f"{entry['app']}{entry['version']}"


def _flag(value):
    """A switch that may arrive templated as a string ("True", "false")."""
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "yes", "1")


def enabled(entries):
    """The entries that are not switched off (`enabled: false`)."""
    return [e for e in entries if not isinstance(e, dict) or _flag(e.get("enabled", True))]


def _merged(entry, defaults, images):
    w = {key: defaults[key] for key in OVERRIDABLE}
    w.update({k: v for k, v in entry.items() if k in OVERRIDABLE})
    w["app"] = entry["app"]
    w["version"] = entry["version"]
    w["name"] = workload_name(entry)
    w["image"] = entry.get("image") or images.get(entry["app"], "")
    w["selector"] = {"app": entry["app"], "version": entry["version"]}
    w["sidecar"] = _flag(entry.get("sidecar", True))
    w["api_read"] = entry.get("api_read") or []
    w["egress"] = entry.get("egress") or []
    w["env"] = {
        "PORT": str(w["port"]),
        "BIND_ADDRESS": "0.0.0.0",  # noqa: S104 - a pod's own network namespace
        "WEB_CONCURRENCY": str(w["workers"]),
        "GUNICORN_GRACEFUL_TIMEOUT": str(w["graceful_seconds"]),
        "APP_VERSION": entry["version"],
        **{str(k): str(v) for k, v in (entry.get("env") or {}).items()},
    }
    return w


def _whole(value):
    """A whole number, 0 or more (templated values may arrive as strings)."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, int) and value >= 0) or (isinstance(value, str) and value.isdigit())


def workload_problems(entries, defaults, images):
    """Every problem of the entries, one message each, naming the entry and what to change."""
    problems = []
    if not isinstance(entries, list) or not enabled(entries):
        return ["app_workloads: list at least one workload, e.g. {app: webserver, version: v1}."]
    entries = enabled(entries)
    names = []
    for index, entry in enumerate(entries):
        where = f"app_workloads[{index}]"
        if not isinstance(entry, dict):
            problems.append(
                f"{where}: use a mapping with app and version,"
                " e.g. {app: webserver, version: v1}."
            )
            continue
        unknown = sorted(set(entry) - KNOWN_KEYS)
        if unknown:
            problems.append(f"{where}: unknown keys {unknown}; known: {sorted(KNOWN_KEYS)}.")
        app, version = entry.get("app"), entry.get("version")
        if not isinstance(app, str) or not NAME.match(app):
            problems.append(f"{where}.app={app!r}: use a lowercase name, e.g. webserver.")
            continue
        if not isinstance(version, str) or not VERSION.match(version):
            problems.append(f"{where}.version={version!r}: use v followed by a number, e.g. v1.")
            continue
        w = _merged(entry, defaults, images)
        where = f"app_workloads[{w['name']}]"
        names.append(w["name"])
        if not NAME.match(w["name"]):
            problems.append(
                f"{where}.name={w['name']!r}: use at most 42 lowercase letters, digits and '-'."
            )
        if not isinstance(w["image"], str) or not IMAGE.match(w["image"]):
            problems.append(
                f"{where}.image={w['image']!r} (from app_workloads_images.{app} unless the"
                " entry sets image): use lowercase host[:port]/path:tag, path@sha256:<64 hex> or"
                " path:tag@sha256:<64 hex>, the tag at most 128 letters, digits, '_', '.', '-',"
                " e.g. localhost/mesh-playground/webserver:0.1.0."
            )
        if not _whole(w["replicas"]):
            problems.append(
                f"{where}.replicas={w['replicas']}: use a whole number of pods, 0 or more."
            )
        if w["strategy"] not in STRATEGIES:
            problems.append(f"{where}.strategy={w['strategy']!r}: use one of {list(STRATEGIES)}.")
        elif w["strategy"] == "RollingUpdate" and not (
            _whole(w["max_surge"]) and int(w["max_surge"]) >= 1
        ):
            problems.append(
                f"{where}.max_surge={w['max_surge']}: RollingUpdate with maxUnavailable 0 needs at"
                " least one extra pod (use 1 or more, or strategy Recreate)."
            )
        for key in ("port", "service_port"):
            if not (_whole(w[key]) and 1 <= int(w[key]) <= 65535):
                problems.append(f"{where}.{key}={w[key]}: use a port from 1 to 65535.")
        if w["service_type"] not in SERVICE_TYPES:
            problems.append(
                f"{where}.service_type={w['service_type']!r}: use one of {list(SERVICE_TYPES)}."
            )
        if not (_whole(w["workers"]) and int(w["workers"]) >= 1):
            problems.append(f"{where}.workers={w['workers']}: use 1 or more.")
        if not _whole(w["prestop_seconds"]):
            problems.append(f"{where}.prestop_seconds={w['prestop_seconds']}: use 0 or more.")
        if not (_whole(w["graceful_seconds"]) and int(w["graceful_seconds"]) >= 1):
            problems.append(f"{where}.graceful_seconds={w['graceful_seconds']}: use 1 or more.")
        bad_env = sorted(k for k in w["env"] if not ENV_NAME.match(k))
        if bad_env:
            problems.append(f"{where}.env: {bad_env} are not environment variable names.")
        if not isinstance(w["api_read"], list) or any(
            not isinstance(r, dict)
            or set(r) != {"group", "resources"}
            or not isinstance(r["group"], str)
            or not isinstance(r["resources"], list)
            or not r["resources"]
            for r in w["api_read"]
        ):
            problems.append(
                f"{where}.api_read={w['api_read']!r}: use a list of {{group: <API group, '' for"
                " the core group>, resources: [<plural>, ...]}, e.g. {group: networking.istio.io,"
                " resources: [virtualservices]}."
            )
        if not isinstance(w["egress"], list) or any(
            not isinstance(r, dict) or not r or not set(r) <= {"to", "ports"} for r in w["egress"]
        ):
            problems.append(
                f"{where}.egress={w['egress']!r}: use a list of NetworkPolicy egress rules,"
                " {to: [<peer>, ...], ports: [{protocol: TCP, port: <port>}, ...]}."
            )
        for key in ("clients", "upstreams"):
            if not isinstance(w[key], list) or any(not isinstance(a, str) for a in w[key]):
                problems.append(
                    f"{where}.{key}={w[key]!r}: use a list of app names (clients may use '*')."
                )
    apps = {e.get("app") for e in entries if isinstance(e, dict)}
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(
            f"app_workloads: {name} is listed more than once;"
            " give each workload its own version or name."
        )
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("upstreams"), list):
            missing = [a for a in entry["upstreams"] if a not in apps]
            if missing:
                problems.append(
                    f"app_workloads[{workload_name(entry)}].upstreams: {missing}"
                    " are not apps of app_workloads."
                )
    return problems


def workloads(entries, defaults, images):
    """The enabled entries with every default filled in (call after workload_problems found
    none)."""
    return [_merged(entry, defaults, images) for entry in enabled(entries)]


def workload_services(expanded):
    """One Service per workload (its own version) and one per app (every version), by name."""
    services = {}
    for w in expanded:
        base = {"port": int(w["service_port"]), "target_port": int(w["port"]), "app": w["app"]}
        if w["name"] != w["app"]:
            services[w["name"]] = dict(
                base, name=w["name"], type="ClusterIP", selector=w["selector"]
            )
        # The app-wide Service: the type of the app's first workload (the proxy's LoadBalancer).
        services.setdefault(
            w["app"], dict(base, name=w["app"], type=w["service_type"], selector={"app": w["app"]})
        )
    return list(services.values())


def _merged_deep(base, changes):
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = _merged_deep(merged[key], value)
        merged[key] = value
    return merged


def workload_overrides(entries, overrides):
    """The entries, each merged with overrides[its workload name] (mappings such as env merged
    key by key, anything else replaced), in the same order. An override that names no entry is
    an error: a misspelt name would otherwise change nothing, silently."""
    names = [workload_name(entry) for entry in entries]
    unknown = sorted(set(overrides or {}) - set(names))
    if unknown:
        raise ValueError(f"workload_overrides: {unknown} name no workload of {names}.")
    return [
        _merged_deep(entry, (overrides or {}).get(name) or {})
        for entry, name in zip(entries, names, strict=True)
    ]


def rollout_state(deployment):
    """'complete' when a Deployment finished its rollout and is Available, else what is missing.

    The rules of `kubectl rollout status`, plus the Available condition: the one definition of
    "rolled out" that the roles, the playbooks and the tests use.
    """
    name = deployment["metadata"]["name"]
    spec_replicas = deployment["spec"].get("replicas", 1)
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return f"{name}: the controller has not seen the latest spec yet"
    updated = status.get("updatedReplicas", 0)
    if updated < spec_replicas:
        return f"{name}: {updated} of {spec_replicas} replicas updated"
    if status.get("replicas", 0) > updated:
        return f"{name}: {status['replicas'] - updated} old replicas not yet scaled down"
    available = status.get("availableReplicas", 0)
    if available < updated:
        return f"{name}: {available} of {updated} updated replicas available"
    conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
    if conditions.get("Available") != "True":
        return f"{name}: condition Available is not True"
    return "complete"


def pull_secret_problems(credentials, secret_names):
    """Every problem of the pull credentials: app_workloads_registry_credentials (a list of
    {registry, username, password}) and app_workloads_image_pull_secrets (Secret names). The
    messages never repeat a password."""
    problems = []
    if not isinstance(secret_names, list) or any(
        not isinstance(n, str) or not SECRET_NAME.match(n) for n in secret_names
    ):
        problems.append(
            f"app_workloads_image_pull_secrets={secret_names!r}: use a list of the names of"
            " Secrets of type kubernetes.io/dockerconfigjson in the namespace."
        )
    if not isinstance(credentials, list):
        return [
            *problems,
            "app_workloads_registry_credentials: use a list of"
            " {registry: host[:port], username: ..., password: ...}.",
        ]
    registries = []
    for index, entry in enumerate(credentials):
        where = f"app_workloads_registry_credentials[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"registry", "username", "password"}:
            keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            problems.append(
                f"{where}: use exactly the keys registry, username and password (found {keys})."
            )
            continue
        registry = entry["registry"]
        if not isinstance(registry, str) or not REGISTRY.match(registry):
            problems.append(
                f"{where}.registry={registry!r}: use host[:port] as the images name it, without"
                " scheme or path, e.g. registry.example.com or 127.0.0.1:5443."
            )
        registries.append(registry)
        for key in ("username", "password"):
            if not isinstance(entry[key], str) or not entry[key]:
                problems.append(f"{where}.{key}: must be a non-empty string.")
        if isinstance(entry["username"], str) and ":" in entry["username"]:
            problems.append(f"{where}.username: may not contain ':'.")
    for registry in sorted({r for r in registries if registries.count(r) > 1}, key=str):
        problems.append(f"app_workloads_registry_credentials: {registry} is listed more than once.")
    return problems


def docker_config(credentials):
    """The content of a kubernetes.io/dockerconfigjson Secret for the credentials (call after
    pull_secret_problems found none): {"auths": {registry: {username, password, auth}}}."""
    auths = {}
    for entry in credentials:
        token = f"{entry['username']}:{entry['password']}".encode()
        auths[entry["registry"]] = {
            "username": entry["username"],
            "password": entry["password"],
            "auth": base64.b64encode(token).decode(),
        }
    return json.dumps({"auths": auths}, sort_keys=True, separators=(",", ":"))


def _selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _images(spec):
    """Container name -> image of a pod spec (init containers too)."""
    spec = spec or {}
    return {
        c.get("name"): c.get("image")
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
    }


def pull_failures(pods, deployments, events=(), backoff=False):
    """Why pods of the Deployments cannot get their images, one message per container that
    waits with a pull failure: `pod/container: reason: message`.

    Only the images of a Deployment's current template count: a pod of an older ReplicaSet that
    fails on an image the rollout replaces is no reason to stop. ErrImagePull is a pull that
    just failed (its message carries the registry's answer); InvalidImageName and
    ErrImageNeverPull never pass. ImagePullBackOff, kubelet waiting before it tries again, counts
    only with `backoff` (a back-off may be left from before new credentials, which the next try
    uses); its message only says it backs off, so the pod's last `Failed to pull image` event
    (kubelet's, with the registry's answer) is added when `events` are given."""
    reasons = (
        PULL_FAILURES if backoff else tuple(r for r in PULL_FAILURES if r != "ImagePullBackOff")
    )
    wanted = [
        (
            ((d.get("spec") or {}).get("selector") or {}).get("matchLabels"),
            _images(((d.get("spec") or {}).get("template") or {}).get("spec")),
        )
        for d in deployments
    ]
    last_failed = {}
    for event in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
        involved = event.get("involvedObject") or {}
        message = event.get("message") or ""
        # kubelet's other `Failed` events only say "Error: ErrImagePull".
        if involved.get("kind") == "Pod" and message.startswith("Failed to pull image"):
            last_failed[involved.get("name")] = message
    failures = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        images = _images(pod.get("spec"))
        current = [w for s, w in wanted if _selects(s, meta.get("labels") or {})]
        status = pod.get("status") or {}
        for container in (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []
        ):
            name = container.get("name")
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") not in reasons or not any(
                w.get(name) == images.get(name) for w in current
            ):
                continue
            message = waiting.get("message") or ""
            event = last_failed.get(meta.get("name"))
            if event and event not in message:
                message = f"{message} (last pull: {event})" if message else event
            failures.append(f"{meta.get('name')}/{name}: {waiting['reason']}: {message}")
    return failures


SLOW_LABEL = "mesh-playground/slow"


def slow_pod(deployment, seconds):
    """A Deployment `<name>-slow` of one pod from `deployment` (as read from the cluster): its pod
    template with the pod labels kept (the same subset, behind the same Service) plus
    mesh-playground/slow, every container's answers delayed by `seconds`
    (RESPONSE_DELAY_SECONDS): one slow pod among the fast ones, for the load-balancer steps."""
    meta, template = deployment["metadata"], deployment["spec"]["template"]
    labels = dict(template["metadata"].get("labels") or {}, **{SLOW_LABEL: "true"})
    selector = dict(deployment["spec"]["selector"]["matchLabels"], **{SLOW_LABEL: "true"})
    containers = [
        dict(
            c,
            env=[e for e in c.get("env", []) if e["name"] != "RESPONSE_DELAY_SECONDS"]
            + [{"name": "RESPONSE_DELAY_SECONDS", "value": str(seconds)}],
        )
        for c in template["spec"]["containers"]
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{meta['name']}-slow",
            "namespace": meta["namespace"],
            "labels": {k: v for k, v in (meta.get("labels") or {}).items()},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": dict(template["metadata"], labels=labels),
                "spec": dict(template["spec"], containers=containers),
            },
        },
    }


class FilterModule:
    def filters(self):
        return {
            "slow_pod": slow_pod,
            "workload_name": workload_name,
            "workloads": workloads,
            "workload_services": workload_services,
            "workload_problems": workload_problems,
            "rollout_state": rollout_state,
            "workload_overrides": workload_overrides,
            "pull_secret_problems": pull_secret_problems,
            "docker_config": docker_config,
            "pull_failures": pull_failures,
        }
