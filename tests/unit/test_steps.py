"""The series as steps (playbooks/files/steps.yml): every step is valid for the mesh_policies role
as `make step` applies it (known sets, the role's variables, no problem found, objects rendered,
the ingress kept), its expectations name what traffic.py measures; and traffic.py's tally and
verdicts (pure functions) on a measurement made by hand."""

from pathlib import Path

import pytest
import traffic
import yaml
from mesh_policies import POLICY_SETS, mesh_policies_objects, mesh_policies_problems
from policy_settings import mesh_policies_defaults

REPO = Path(__file__).resolve().parents[2]
STEPS = yaml.safe_load((REPO / "playbooks/files/steps.yml").read_text())["steps"]
DEFAULTS = yaml.safe_load((REPO / "roles/mesh_policies/defaults/main.yml").read_text())
OPTIONS = yaml.safe_load((REPO / "roles/mesh_policies/meta/argument_specs.yml").read_text())[
    "argument_specs"
]["main"]["options"]
MEASURED = {  # what traffic.measure returns, for 10 answers
    "count": 10,
    "status": {"200": 8, "400": 2},
    "version": {"v1": 6, "v2": 2},
    "code": {"200": 7, "500": 1},
    "other": {"fault filter abort": 2},
    "by_host": {"webserverv1-a": 3, "webserverv1-b": 3, "webserverv2-a": 2},
    "by_path": {"/": 6, "/redirected": 2},
    "took": [1, 2, 2, 3, 3, 4, 5000, 5001],
}


def test_step_names_are_unique_and_say_their_post():
    names = [s["name"] for s in STEPS]
    assert len(names) == len(set(names))
    assert all(s["name"].split("/")[0] == s["post"].lower() for s in STEPS)


@pytest.mark.parametrize("step", STEPS, ids=[s["name"] for s in STEPS])
def test_each_step_is_what_the_role_accepts_and_keeps_the_ingress(step):
    assert set(step["sets"]) <= set(POLICY_SETS)
    assert {f"mesh_policies_{k}" for k in step.get("settings", {})} <= set(OPTIONS)
    # step.yml puts back a default as written: never one that is a template
    templated = [k for k in step.get("settings", {}) if "{{" in str(DEFAULTS[f"mesh_policies_{k}"])]
    assert templated == []
    settings = mesh_policies_defaults(sets=step["sets"], ingress=True, **step.get("settings", {}))
    assert mesh_policies_problems(settings) == []
    kinds = {o["kind"] for o in mesh_policies_objects(settings)}
    assert "Gateway" in kinds  # the ingress stays whatever the step
    for wanted in step["expect"]:
        traffic.share(MEASURED, wanted["what"])  # a measure traffic.py knows
        assert 0 <= wanted["share"] <= 1 and wanted.get("tolerance", 0) < 0.5
    for condition in step.get("ready", []):
        traffic.share(MEASURED, condition["what"])
        assert 0 <= condition.get("min", 0) <= condition.get("max", 1) <= 1


def twin_problems(step):
    """What the role says of the step's Gateway API twin ([]: it has one)."""
    settings = mesh_policies_defaults(
        sets=step["sets"], ingress=True, api="gateway-api", **step.get("settings", {})
    )
    return mesh_policies_problems(settings)


def test_the_steps_with_a_gateway_api_twin_are_the_routing_ones():
    twins = {s["name"] for s in STEPS if not twin_problems(s)}
    assert {"virtualservice/route-v1", "virtualservice/redirect", "virtualservice/rewrite"} <= twins
    assert {"destinationrule/subsets", "gateway/ingress"} <= twins
    assert not {"virtualservice/abort", "virtualservice/delay", "virtualservice/retries"} & twins
    for step in STEPS:
        for problem in twin_problems(step):
            assert "has no twin (" in problem, problem  # says why
        if step.get("gateway_api"):  # measured with its twin: it must have one
            assert twin_problems(step) == [], step["name"]


def test_every_step_whose_twin_routes_differently_is_measured_with_it():
    """A step whose twin holds Gateway API objects runs with it in mesh_steps (gateway_api);
    one whose objects are the same in both APIs (no route: connection-pool) need not."""
    for step in STEPS:
        if twin_problems(step):
            continue
        settings = mesh_policies_defaults(
            sets=step["sets"], ingress=False, api="gateway-api", **step.get("settings", {})
        )
        kinds = {o["apiVersion"] for o in mesh_policies_objects(settings)}
        routes_differ = "gateway.networking.k8s.io/v1" in kinds
        assert bool(step.get("gateway_api")) == routes_differ, step["name"]


def test_share_counts_each_kind_of_answer_over_all_answers():
    assert traffic.share(MEASURED, "version v1") == 0.6
    assert traffic.share(MEASURED, "code 500") == 0.1
    assert traffic.share(MEASURED, "status 400") == 0.2
    assert traffic.share(MEASURED, "path /redirected") == 0.2
    assert traffic.share(MEASURED, "mesh fault filter abort") == 0.2
    assert traffic.share(MEASURED, "took >= 5000") == 0.2
    assert traffic.share(MEASURED, "version v3") == 0
    assert traffic.share(MEASURED, "pod webserverv1") == 0.6
    assert traffic.share(MEASURED, "spread") == 0.1  # (3 - 2) / 10
    with pytest.raises(ValueError, match="unknown measure 'pods 3'"):
        traffic.share(MEASURED, "pods 3")


def test_the_report_puts_each_expectation_beside_what_was_measured():
    expect = [
        {"what": "version v1", "share": 0.5, "tolerance": 0.1},
        {"what": "took >= 5000", "share": 0.5, "tolerance": 0.1},
    ]
    held, missed = traffic.verdicts(MEASURED, expect)
    assert held["ok"] and held["measured"] == 0.6
    assert not missed["ok"] and missed["measured"] == 0.2
    report = traffic.report(MEASURED, expect)
    assert "version       v1: 6 (0.60), v2: 2 (0.20)" in report
    assert "webserver pod webserverv1-a: 3 (0.30), webserverv1-b: 3 (0.30)" in report
    assert "took (proxy)  p50 3 ms, p99 5001 ms, max 5001 ms" in report
    assert "version v1: 0.50 +- 0.10, measured 0.600: as the post says" in report
    assert "took >= 5000: 0.50 +- 0.10, measured 0.200: NOT as the post says" in report


def test_ready_holds_only_when_every_share_is_within_its_bounds():
    assert traffic.ready(
        MEASURED, [{"what": "version v2", "max": 0.2}, {"what": "code 500", "min": 0.1}]
    )
    assert not traffic.ready(MEASURED, [{"what": "version v2", "max": 0}])
    assert not traffic.ready(MEASURED, [{"what": "mesh fault filter abort", "min": 0.5}])
    assert traffic.ready(MEASURED, [])


def test_a_step_that_changes_what_the_default_split_shows_waits_for_it():
    """The inventory's 50/50 split is what runs before every step (each puts it back): a step
    whose effect differs from it names a condition the split cannot meet in 20 requests."""
    default = {"count": 20, "status": {"200": 20}, "version": {"v1": 10, "v2": 10}}
    default.update(code={"200": 20}, other={}, by_path={"/": 20}, took=[5] * 20)
    for step in STEPS:
        if step.get("ready"):
            assert not traffic.ready(default, step["ready"]), step["name"]
