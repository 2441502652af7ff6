"""The mesh_policies role's settings at their defaults (defaults/main.yml), as the renderer and
the checks of plugins/filter/mesh_policies.py take them: the unit tests' starting point."""

from pathlib import Path

import yaml

DEFAULTS = Path(__file__).resolve().parents[1] / "roles" / "mesh_policies" / "defaults" / "main.yml"


def mesh_policies_defaults(**overrides):
    settings = {
        k.removeprefix("mesh_policies_"): v for k, v in yaml.safe_load(DEFAULTS.read_text()).items()
    }
    # Templated from role target's playground_istio_found (not there) and app_workloads' port: their
    # fallbacks.
    assert "default({'istio': 'ingressgateway'}, true)" in settings["gateway_selector"]
    assert "gateway_service(" in settings["gateway_service"]
    assert "app_workloads_service_port" in settings["service_port"]
    settings.update(
        namespace="ns",
        gateway_selector={"istio": "ingressgateway"},
        gateway_service="istio-ingressgateway.istio-ingress.svc.cluster.local",
        service_port=80,
    )
    settings.update(**overrides)
    return settings
