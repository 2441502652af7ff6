"""The shell scripts' own bookkeeping, read from their text (no build runs here)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_component_istio_build_accepts_has_its_build_function():
    script = (REPO / "cluster" / "istio-build.sh").read_text()
    accepted = re.search(r"\n\t+(istio \|[^)]*)\) ;;", script)[1].split(" | ")
    defaults = re.search(r"set -- ([a-z ]+)\n", script)[1].split()
    assert set(defaults) <= set(accepted)
    missing = [c for c in accepted if f"\nbuild_{c}() {{" not in script]
    assert missing == [], f"cluster/istio-build.sh accepts {missing} but defines no build_<name>"
