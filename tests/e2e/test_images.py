"""The app images are tagged by their inputs: rebuilt when an app changes, and only that app.

Real builds (buildah, as root) in a copy of the build inputs, so the checkout is not touched.
"""

import shutil
import subprocess
from pathlib import Path

from e2e_live import REPO


def build(root: Path, *apps: str) -> tuple[list[str], str]:
    """images/apps.sh of the tree at root: the image references and the build log."""
    result = subprocess.run(
        [str(root / "images" / "apps.sh"), *apps],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split(), result.stderr


def test_an_image_is_rebuilt_only_when_its_app_changes(tmp_path: Path) -> None:
    for part in ("images", "apps", "cluster/node-real"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    # The one shell library every script sources, and the versions it reads.
    for part in ("cluster/lib.sh", "cluster/versions.env"):
        shutil.copy(REPO / part, tmp_path / part)
    before, _ = build(tmp_path, "webserver", "proxy")
    again, log = build(tmp_path, "webserver", "proxy")
    assert again == before
    assert "building" not in log, log

    app = tmp_path / "apps" / "webserver" / "webserver.py"
    app.write_text(app.read_text() + "\n# a change\n")
    after, log = build(tmp_path, "webserver", "proxy")
    # (The next images/build.sh drops the extra image: it keeps only the current builds.)
    assert after[0] != before[0], "the changed webserver kept its tag"
    assert after[0].rsplit(":", 1)[0] == before[0].rsplit(":", 1)[0]
    assert after[1] == before[1], "the unchanged proxy got a new tag"
    assert f"building {after[0]}" in log, log
    assert "building localhost/mesh-playground/proxy" not in log, log
