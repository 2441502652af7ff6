"""Checks of the mesh_observability role's settings (filter `observability_problems`): every
problem one message, naming the variable, what was found and what to use."""

import re

DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
URL = re.compile(r"^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?/?$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _number(value):
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def observability_problems(settings):
    """`settings`: sampling, prometheus_url, tracing_provider, scrape_interval, retention,
    namespace (the role's values). Returns the problems, [] when there are none."""
    problems = []
    sampling = _number(settings.get("sampling"))
    if sampling is None or not 0 <= sampling <= 100:
        problems.append(
            f"mesh_observability_sampling={settings.get('sampling')!r}: use a percentage from"
            " 0 to 100 (100 traces every request)."
        )
    url = settings.get("prometheus_url")
    if not isinstance(url, str) or not URL.match(url):
        problems.append(
            f"playground_prometheus_url={url!r}: use http(s)://host[:port], e.g."
            " http://prometheus.mesh-observability:9090."
        )
    elif ":" in url.split("//", 1)[1] and not 1 <= int(url.rsplit(":", 1)[1].rstrip("/")) <= 65535:
        problems.append(f"playground_prometheus_url={url!r}: the port must be from 1 to 65535.")
    provider = settings.get("tracing_provider")
    if not isinstance(provider, str) or not provider:
        problems.append(
            "mesh_observability_tracing_provider: name an extension provider of istiod's mesh"
            " config (istio_mesh_extension_providers), e.g. zipkin."
        )
    for key in ("scrape_interval", "retention"):
        value = settings.get(key)
        if not isinstance(value, str) or not DURATION.match(value):
            problems.append(
                f"mesh_observability_{key}={value!r}: use a Prometheus duration, e.g. 5s, 1m, 2h."
            )
    namespace = settings.get("namespace")
    if not isinstance(namespace, str) or not NAME.match(namespace):
        problems.append(
            f"playground_observability_namespace={namespace!r}: use a namespace name (lowercase"
            " letters, digits and '-', at most 63)."
        )
    return problems


class FilterModule:
    def filters(self):
        return {"observability_problems": observability_problems}
