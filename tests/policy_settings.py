"""The mesh_policies role's settings at their defaults (defaults/main.yml), as the renderer and
the checks of plugins/filter/mesh_policies.py take them: the unit tests' starting point."""

from pathlib import Path

import yaml

DEFAULTS = Path(__file__).resolve().parents[1] / "roles" / "mesh_policies" / "defaults" / "main.yml"


def mesh_policies_defaults(**overrides):
    settings = {
        k.removeprefix("mesh_policies_"): v for k, v in yaml.safe_load(DEFAULTS.read_text()).items()
    }
    # Templated from role target's playground_istio_found, which is not there: its fallback.
    assert "default({'istio': 'ingressgateway'}, true)" in settings["gateway_selector"]
    settings.update(namespace="ns", gateway_selector={"istio": "ingressgateway"})
    settings.update(**overrides)
    return settings
