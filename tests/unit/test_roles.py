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
    """defaults/main.yml and the argument spec's options are the same variables: main takes
    every default; any entry point's option is either a default (with the same default there)
    or required (an entry point's own input, like k8s_apply's rollout list)."""
    defaults, specs = role_files(role)
    options = specs["main"]["options"]
    assert sorted(defaults) == sorted(options), f"{role}: defaults and argument_specs differ"
    for entry_point, spec in specs.items():
        for name, option in spec.get("options", {}).items():
            if name in defaults:
                assert option.get("default") == defaults[name], f"{role} {entry_point}: {name}"
            else:
                assert option.get("required") and "default" not in option, (
                    f"{role} {entry_point}: {name} has no default in defaults/main.yml and is"
                    " not required"
                )


def described(options: dict, where: str) -> list[str]:
    """Options (and sub-options) without a description."""
    missing = []
    for name, option in options.items():
        if not option.get("description"):
            missing.append(f"{where}.{name}")
        missing += described(option.get("options") or {}, f"{where}.{name}")
    return missing


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_described(role: str) -> None:
    _, specs = role_files(role)
    missing = []
    for entry_point, spec in specs.items():
        assert spec.get("short_description"), f"{role} {entry_point}: no short_description"
        missing += described(spec.get("options", {}), f"{role} {entry_point}")
    assert missing == []


PLAYBOOK_SPECS = yaml.safe_load((REPO / "playbooks/meta/argument_specs.yml").read_text())


@pytest.mark.parametrize("playbook", sorted(p.stem for p in (REPO / "playbooks").glob("*.yml")))
def test_playbook_variables_are_specified_with_their_defaults(playbook: str) -> None:
    """A play's own `vars:` are in playbooks/meta/argument_specs.yml with the same default,
    except values derived from others (templates)."""
    plays = yaml.safe_load((REPO / "playbooks" / f"{playbook}.yml").read_text())
    play_vars = {k: v for play in plays for k, v in (play.get("vars") or {}).items()}
    options = PLAYBOOK_SPECS["argument_specs"].get(playbook, {}).get("options", {})
    assert described(options, playbook) == []
    for name, option in options.items():
        assert name in play_vars, f"{playbook}: {name} is specified but not a play variable"
        assert option.get("default") == play_vars[name], f"{playbook}: {name}"
    settings = {k for k, v in play_vars.items() if not (isinstance(v, str) and "{{" in v)}
    assert settings - set(options) == set(), f"{playbook}: specify them in playbooks/meta"


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
