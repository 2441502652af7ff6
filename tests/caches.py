"""Where the project's caches live, for its Python code: the rule of cluster/lib.sh (CACHE_DIR)."""

import os
from collections.abc import Mapping
from pathlib import Path


def cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    """${XDG_CACHE_HOME:-~/.cache}/mesh-playground (an empty XDG_CACHE_HOME counts as unset)."""
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mesh-playground"
