"""Helpers of the "used as its users use it" suite (imported by its tests and conftest)."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = REPO / ".cluster" / "kubeconfig"
CONTEXT = "mesh-playground"


def run(*argv: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 900):
    """A command's result, output captured; pytest shows it when an assertion fails."""
    full_env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **(env or {}))
    full_env["PATH"] = f"{REPO / '.venv' / 'bin'}:{full_env['PATH']}"
    return subprocess.run(
        argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
