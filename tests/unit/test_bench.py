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


def test_fault_figures_count_failures_and_the_time_to_good_answers_again():
    sys.path.insert(0, str(REPO / "bench"))
    from faults import figures

    results = [(t / 10, not 20 <= t <= 35) for t in range(100)]  # failing from 2.0 s to 3.5 s
    found = figures(results, since=1.5)
    assert found == {"sent": 100, "failed": 16, "outage": 1.5, "back": 3.6 - 1.5}
    assert figures([(0.0, True), (0.1, True)], since=0.0)["back"] == 0.0
    assert figures([(0.0, True), (0.1, False)], since=0.0)["back"] != 0.0  # nan: never back
