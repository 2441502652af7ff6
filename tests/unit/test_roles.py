"""The roles' contracts, read from their files: each setting is defined once (defaults), specified
once with the same default (argument_specs, what `ansible-doc -t role` shows), and used where it
is used, never passed through."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta").is_dir())


def role_files(role: str) -> tuple[dict, dict]:
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return defaults, specs["argument_specs"]


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_specified_with_the_same_default(role: str) -> None:
    defaults, specs = role_files(role)
    options = specs["main"]["options"]
    assert sorted(defaults) == sorted(options), f"{role}: defaults and argument_specs differ"
    for name, value in defaults.items():
        assert options[name].get("default") == value, f"{role}: {name}"


@pytest.mark.parametrize("role", ROLES)
def test_variables_carry_the_role_prefix(role: str) -> None:
    defaults, _ = role_files(role)
    prefix = "playground_" if role == "target" else f"{role}_"
    assert [n for n in defaults if not (n.startswith(prefix) or n == role)] == []


def test_no_setting_is_passed_through_another_role() -> None:
    """A role's tasks never set another role's variables to its own (the old wrappers did)."""
    for tasks in (REPO / "roles").glob("*/tasks/*.yml"):
        role = tasks.parts[-3]
        text = tasks.read_text()
        for other in ROLES:
            if other in (role, "k8s_apply", "target"):
                continue
            assert not re.search(rf"^\s+{other}_\w+: ", text, re.M), f"{tasks} sets {other}_*"


def test_ansible_doc_shows_every_default() -> None:
    done = subprocess.run(
        [
            Path(sys.executable).with_name("ansible-doc"),
            "-t",
            "role",
            "-j",
            "mesh_playground.playground.app_workloads",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(done.stdout)["mesh_playground.playground.app_workloads"]["entry_points"]
    options = doc["main"]["options"]
    assert options["app_workloads_replicas"]["default"] == 3
    assert all("default" in o and o["default"] is not None for o in options.values())
