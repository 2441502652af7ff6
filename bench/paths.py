"""Imported first by every benchmark: the test helpers they reuse are found as pytest finds them,
from pyproject.toml's [tool.pytest.ini_options] pythonpath (one list, not one per script)."""

import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

with open(REPO / "pyproject.toml", "rb") as pyproject:
    _listed = tomllib.load(pyproject)["tool"]["pytest"]["ini_options"]["pythonpath"]
sys.path[:0] = [str(REPO / entry) for entry in _listed if str(REPO / entry) not in sys.path]
