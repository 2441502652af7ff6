"""Every benchmark script loads: its imports resolve as `make bench*` runs it (python bench/X.py,
no pytest pythonpath), without starting anything (the work is behind __main__)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (REPO / "bench").glob("*.py") if p.name != "paths.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_script_loads(script):
    load = (
        "import runpy, sys; sys.path.insert(0, 'bench'); "
        f"runpy.run_path('bench/{script}', run_name='loaded_by_test')"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    result = subprocess.run(
        [sys.executable, "-c", load], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
