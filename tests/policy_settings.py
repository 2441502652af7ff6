"""The mesh_policies role's settings at their defaults (defaults/main.yml), as the renderer and
the checks of plugins/filter/mesh_policies.py take them: the unit tests' starting point, the same
as the docs render the steps from (docs/generate.py, mesh_policies_settings), in namespace ns."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "docs_generate", Path(__file__).resolve().parents[1] / "docs" / "generate.py"
)
_generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_generate)


def mesh_policies_defaults(**overrides):
    return _generate.mesh_policies_settings(**{"namespace": "ns", **overrides})
