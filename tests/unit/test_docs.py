"""The generated docs (make docs, docs/generate.py): current, complete, and nothing more; and the
policy-set registry as the one place a set is defined."""

import importlib.util
import re
from pathlib import Path

import mesh_policies
import pytest
import yaml
from policy_settings import mesh_policies_defaults

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)

GENERATED = re.compile(r"<!-- BEGIN GENERATED: [\w-]+ -->\n(.*?)<!-- END GENERATED -->", re.S)
DOCS = sorted([*REPO.glob("docs/*.md"), *REPO.glob("roles/*/README.md"), REPO / "README.md"])


def test_regenerating_changes_nothing():
    stale = [
        str(path.relative_to(REPO))
        for path, content in generate.generate().items()
        if path.read_text() != content
    ]
    assert stale == [], f"run make docs: {stale} are stale"


def test_every_generated_table_row_is_one_line():
    """A description or docstring that spans lines must not break its Markdown table."""
    broken = [
        f"{path.relative_to(REPO)}: {line[:60]}"
        for path, content in generate.generate().items()
        for block in GENERATED.findall(content)
        for before, line in zip(["", *block.splitlines()], block.splitlines(), strict=False)
        if (line.startswith("|") and not line.endswith("|"))
        or (before.startswith("|") and line and not line.startswith("|"))
    ]
    assert broken == []


def test_every_role_with_an_argument_spec_is_documented():
    roles = {p.name for p in (REPO / "roles").iterdir() if (p / "meta").is_dir()}
    assert set(generate.roles()) == roles
    variables = (REPO / "docs" / "variables.md").read_text()
    for role in roles:
        assert f"\n## {role}\n" in variables
        assert (
            "<!-- BEGIN GENERATED: variables -->"
            in (REPO / "roles" / role / "README.md").read_text()
        )


def documented(path, pattern):
    return {
        m for part in GENERATED.findall(path.read_text()) for m in re.findall(pattern, part, re.M)
    }


def test_every_option_is_in_the_docs_and_nothing_else():
    options = {name for _, name in generate.documented_options()}
    in_variables = documented(REPO / "docs" / "variables.md", r"^- `(\w+)` \(")
    assert in_variables == options
    for role in generate.roles():
        specs, _ = generate.role_sources(REPO, role)
        in_readme = documented(REPO / "roles" / role / "README.md", r"^\| `(\w+)` \|")
        assert in_readme == set(generate.all_options(specs)), role


def defined_names():
    """Every name given a value somewhere the collection defines variables and facts."""
    files = [
        *REPO.glob("roles/*/*/*.yml"),
        *REPO.glob("playbooks/**/*.yml"),
        *REPO.glob("inventory/*/host_vars/*.yml"),
    ]
    names = set()
    for path in files:
        names |= set(re.findall(r"^\s*-?\s*(\w+):", path.read_text(), re.M))
    for path in REPO.glob("plugins/filter/*.py"):  # the filters, named like their role
        names |= set(re.findall(r"^def (\w+)", path.read_text(), re.M))
    return names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_prose_names_no_variable_that_does_not_exist(doc):
    """The hand-written text around the generated parts names only variables that exist (an
    argument-spec option, or a fact or variable a role, playbook or inventory defines)."""
    prefixes = "|".join(
        sorted({"playground"} | {r for r in generate.roles() if r != "target"}, key=len)[::-1]
    )
    prose = GENERATED.sub("", doc.read_text())
    mentioned = set(re.findall(rf"\b(?:{prefixes})_[a-z0-9_]*[a-z0-9]\b", prose))
    known = {name for _, name in generate.documented_options()} | defined_names()
    assert sorted(mentioned - known) == []


def test_policy_set_choices_come_from_the_registry():
    specs = yaml.safe_load((REPO / "roles/mesh_policies/meta/argument_specs.yml").read_text())
    for entry_point in specs["argument_specs"].values():
        choices = entry_point["options"]["mesh_policies_sets"]["choices"]
        assert choices == list(mesh_policies.POLICY_SETS)


class Reads(dict):
    """Settings that remember which of them were read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


@pytest.mark.parametrize("name", list(mesh_policies.POLICY_SETS))
def test_each_set_reads_what_the_registry_says(name):
    policy_set = mesh_policies.POLICY_SETS[name]
    settings = Reads(mesh_policies_defaults(sets=[name, *policy_set.needs]))
    assert mesh_policies.mesh_policies_objects(settings), f"{name} renders nothing"
    needed = set().union(*(mesh_policies.POLICY_SETS[n].reads for n in policy_set.needs))
    extra = (
        settings.read
        - set(policy_set.reads)
        - needed
        - {"namespace", "sets", "ingress", "host", "api"}
    )
    assert extra == set(), f"{name} reads {extra}: list them in its registry entry"


def test_every_policy_variable_is_read_by_a_set_or_the_role():
    read = set().union(*(p.reads for p in mesh_policies.POLICY_SETS.values()))
    role_level = {
        "sets",
        "ingress",
        "host",
        "api",
        "service_port",
        "require_available",
        "rollout_timeout",
    }
    defaults = set(mesh_policies_defaults()) - {"namespace"}
    assert defaults - read - role_level == set()
    assert read - defaults == set()


def _render_canary(s, build):
    build.objects.append(mesh_policies._obj(s, "ConfigMap", "canary-note", {"note": s["host"]}))


def test_a_set_registered_only_in_the_registry_is_validated_documented_and_rendered(
    monkeypatch, tmp_path
):
    """The one place a new set is written: its registry entry (and its render function)."""
    registry = dict(
        mesh_policies.POLICY_SETS,
        canary_note=mesh_policies.PolicySet(
            renders="a note for the canary",
            shapes="ConfigMap `canary-note`",
            render=_render_canary,
            reads=("subsets",),
            needs={"subsets": "notes the subsets"},
        ),
    )
    monkeypatch.setattr(mesh_policies, "POLICY_SETS", registry)
    # Validated: needs are checked, unknown names refused.
    problems = mesh_policies.mesh_policies_problems(mesh_policies_defaults(sets=["canary_note"]))
    assert any("canary_note notes the subsets: add the subsets set" in p for p in problems)
    assert (
        mesh_policies.mesh_policies_problems(
            mesh_policies_defaults(sets=["subsets", "canary_note"])
        )
        == []
    )
    assert "unknown sets ['nope']" in " ".join(
        mesh_policies.mesh_policies_problems(mesh_policies_defaults(sets=["nope"]))
    )
    # Rendered.
    objects = mesh_policies.mesh_policies_objects(
        mesh_policies_defaults(sets=["subsets", "canary_note"])
    )
    assert [o["kind"] for o in objects] == ["DestinationRule", "ConfigMap"]
    # Documented, and offered by the argument spec, by the generator alone.
    out = {p.relative_to(REPO): c for p, c in generate.generate().items()}
    spec = yaml.safe_load(out[Path("roles/mesh_policies/meta/argument_specs.yml")])
    assert spec["argument_specs"]["main"]["options"]["mesh_policies_sets"]["choices"][-1] == (
        "canary_note"
    )
    assert "| `canary_note` | a note for the canary |" in out[Path("docs/policy-sets.md")]
    assert (
        "| ConfigMap `canary-note` | `canary_note` |" in out[Path("roles/mesh_policies/README.md")]
    )
