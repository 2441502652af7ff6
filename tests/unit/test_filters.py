"""Unit tests of the collection's filter plugins (pure functions: no cluster, no Ansible)."""

import base64
import json
from pathlib import Path

import pytest
import yaml
from k8s_apply import (
    OURS,
    PART_OF,
    applied_diffs,
    applied_objects,
    applied_pruned,
    applied_record,
    applied_stale,
    istio_found,
    istio_not_ours,
    not_ours,
    ours,
    ours_labels,
    stored_versions,
)
from mesh_policies import mesh_policies_objects, mesh_policies_problems
from policy_settings import mesh_policies_defaults
from role_settings import role_settings
from workloads import (
    OVERRIDABLE,
    docker_config,
    pull_failures,
    pull_secret_problems,
    rollout_state,
    slow_pod,
    workload_name,
    workload_overrides,
    workload_problems,
    workload_services,
    workloads,
)

REPO = Path(__file__).resolve().parents[2]
# Each entry's defaults as the app_workloads role gives them (app_workloads_<setting>).
ROLE_DEFAULTS = yaml.safe_load((REPO / "roles/app_workloads/defaults/main.yml").read_text())
DEFAULTS = {key: ROLE_DEFAULTS[f"app_workloads_{key}"] for key in OVERRIDABLE}
IMAGES = {"webserver": "localhost/mp/webserver:1", "proxy": "localhost/mp/proxy:1"}
ENTRIES = [
    {"app": "webserver", "version": "v1"},
    {"app": "webserver", "version": "v2", "replicas": 1},
    {
        "app": "proxy",
        "version": "v1",
        "name": "proxy",
        "service_type": "LoadBalancer",
        "clients": ["*"],
        "upstreams": ["webserver"],
        "env": {"PROXYURL": "http://webserver"},
    },
]


def test_names_come_from_app_and_version_unless_set():
    assert workload_name({"app": "webserver", "version": "v3"}) == "webserverv3"
    assert workload_name({"app": "proxy", "version": "v1", "name": "proxy"}) == "proxy"


def test_entries_take_defaults_and_override_them():
    v1, v2, proxy = workloads(ENTRIES, DEFAULTS, IMAGES)
    assert (v1["replicas"], v2["replicas"]) == (DEFAULTS["replicas"], 1)
    assert v1["selector"] == {"app": "webserver", "version": "v1"}
    assert v1["image"] == "localhost/mp/webserver:1"
    assert proxy["env"]["PROXYURL"] == "http://webserver"
    assert v1["env"] == {
        "PORT": str(DEFAULTS["port"]),
        "BIND_ADDRESS": "0.0.0.0",  # noqa: S104
        "WEB_CONCURRENCY": str(DEFAULTS["workers"]),
        "GUNICORN_GRACEFUL_TIMEOUT": str(DEFAULTS["graceful_seconds"]),
        "APP_VERSION": "v1",
    }


def test_services_one_per_version_and_one_per_app():
    services = {s["name"]: s for s in workload_services(workloads(ENTRIES, DEFAULTS, IMAGES))}
    assert sorted(services) == ["proxy", "webserver", "webserverv1", "webserverv2"]
    assert services["webserver"]["selector"] == {"app": "webserver"}
    assert services["webserverv2"]["selector"] == {"app": "webserver", "version": "v2"}
    assert services["proxy"] == {
        "name": "proxy",
        "app": "proxy",
        "type": "LoadBalancer",
        "port": DEFAULTS["service_port"],
        "target_port": DEFAULTS["port"],
        "selector": {"app": "proxy"},
    }


def test_good_entries_have_no_problems():
    assert workload_problems(ENTRIES, DEFAULTS, IMAGES) == []


@pytest.mark.parametrize(
    ("entries", "images", "says"),
    [
        ([], IMAGES, "list at least one workload"),
        ([{"app": "webserver", "version": "1"}], IMAGES, "version='1': use v followed by a number"),
        ([{"app": "Web", "version": "v1"}], IMAGES, "app='Web': use a lowercase name"),
        ([{"app": "webserver", "version": "v1", "replicas": -1}], IMAGES, "replicas=-1"),
        (
            [{"app": "webserver", "version": "v1", "strategy": "BlueGreen"}],
            IMAGES,
            "strategy='BlueGreen'",
        ),
        ([{"app": "webserver", "version": "v1", "max_surge": 0}], IMAGES, "max_surge=0"),
        ([{"app": "webserver", "version": "v1", "port": 70000}], IMAGES, "port=70000"),
        ([{"app": "webserver", "version": "v1", "replica": 2}], IMAGES, "unknown keys ['replica']"),
        ([{"app": "webserver", "version": "v1", "env": {"A-B": "1"}}], IMAGES, "['A-B'] are not"),
        (
            [{"app": "webserver", "version": "v1"}] * 2,
            IMAGES,
            "webserverv1 is listed more than once",
        ),
        (
            [{"app": "webserver", "version": "v1"}],
            {"webserver": "web:bad tag!"},
            "image='web:bad tag!'",
        ),
        ([{"app": "db", "version": "v1"}], IMAGES, "image=''"),
        (
            [{"app": "proxy", "version": "v1", "upstreams": ["nope"]}],
            IMAGES,
            "['nope'] are not apps",
        ),
        (
            [{"app": "view", "version": "v1", "egress": [{"to": [], "port": 9090}]}],
            {"view": "localhost/view:1"},
            "use a list of NetworkPolicy egress rules",
        ),
    ],
)
def test_bad_entries_are_named_with_what_to_change(entries, images, says):
    problems = workload_problems(entries, DEFAULTS, images)
    assert any(says in p for p in problems), problems


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "image",
    [
        "localhost/mp/webserver:1",
        f"127.0.0.1:5443/mesh-playground/webserver@{DIGEST}",
        f"registry.example.com/team/webserver:0.1.0@{DIGEST}",
    ],
)
def test_image_references_by_tag_digest_or_both(image):
    entries = [{"app": "webserver", "version": "v1"}]
    assert workload_problems(entries, DEFAULTS, {"webserver": image}) == []


@pytest.mark.parametrize(
    "image",
    [
        "localhost/mp/webserver",  # neither tag nor digest
        "localhost/mp/webserver@sha256:abc",  # a digest is 64 hex digits
        f"localhost/mp/webserver@{DIGEST.upper()}",
        f"localhost/mp/webserver@{DIGEST}:1",  # the tag comes first
    ],
)
def test_bad_image_references_are_refused(image):
    entries = [{"app": "webserver", "version": "v1"}]
    problems = workload_problems(entries, DEFAULTS, {"webserver": image})
    assert any("path@sha256:<64 hex>" in p for p in problems), problems


CREDENTIALS = [{"registry": "127.0.0.1:5443", "username": "mesh", "password": "s3cret"}]


def test_pull_credentials_make_a_docker_config():
    assert pull_secret_problems(CREDENTIALS, ["other-registry"]) == []
    config = json.loads(docker_config(CREDENTIALS))
    auth = config["auths"]["127.0.0.1:5443"]
    assert (auth["username"], auth["password"]) == ("mesh", CREDENTIALS[0]["password"])
    assert base64.b64decode(auth["auth"]) == b"mesh:s3cret"


@pytest.mark.parametrize(
    ("credentials", "names", "says"),
    [
        ([{"registry": "https://r.example", "username": "u", "password": "p"}], [], "registry="),
        ([{"registry": "r.example", "username": "u"}], [], "exactly the keys"),
        ([{"registry": "r.example", "username": "u", "password": ""}], [], ".password: must"),
        ([{"registry": "r.example", "username": "u:v", "password": "p"}], [], "may not contain"),
        (CREDENTIALS * 2, [], "listed more than once"),
        ({"registry": "r.example"}, [], "use a list"),
        ([], ["Bad_Name"], "app_workloads_image_pull_secrets"),
    ],
)
def test_bad_pull_credentials_are_named_without_the_password(credentials, names, says):
    problems = pull_secret_problems(credentials, names)
    assert any(says in p for p in problems), problems
    assert not any("s3cret" in p for p in problems)


def pod(name, labels, reason, message="", deleting=False, image="r/web:1"):
    waiting = {"reason": reason, "message": message}
    meta = {"name": name, "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "web", "image": image}]},
        "status": {"containerStatuses": [{"name": "web", "state": {"waiting": waiting}}]},
    }


ROLLED = [
    {
        "spec": {
            "selector": {"matchLabels": {"app": "web", "version": "v1"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "r/web:1"}]}},
        }
    }
]
LABELS = {"app": "web", "version": "v1"}
UNAUTHORIZED = (
    'failed to pull and unpack image "127.0.0.1:5443/mp/web:1": failed to resolve reference'
    ' "127.0.0.1:5443/mp/web:1": pulling from host 127.0.0.1:5443 failed with status code'
    " [manifests 1]: 401 Unauthorized"
)
BACKOFF = 'Back-off pulling image "127.0.0.1:5443/mp/web:1"'


def test_pull_failures_name_the_pod_and_the_registrys_reason():
    pods = [
        pod("web-1", LABELS, "ErrImagePull", UNAUTHORIZED),
        pod("web-2", LABELS, "ContainerCreating"),
        pod("other", {"app": "other"}, "ErrImagePull", "not ours"),
        pod("web-gone", LABELS, "ErrImagePull", deleting=True),
        # An older ReplicaSet's pod, on an image the rollout replaces.
        pod("web-old", LABELS, "ErrImagePull", "old", image="r/web:0"),
    ]
    assert pull_failures(pods, ROLLED) == [f"web-1/web: ErrImagePull: {UNAUTHORIZED}"]


def test_a_back_off_alone_does_not_stop_the_wait():
    """It may be left from before new credentials, which kubelet's next try uses."""
    assert pull_failures([pod("web-1", LABELS, "ImagePullBackOff", BACKOFF)], ROLLED) == []


def test_pull_failures_in_back_off_take_the_reason_from_the_last_failed_event():
    events = [
        {
            "reason": "Failed",
            "involvedObject": {"kind": "Pod", "name": "web-1"},
            "lastTimestamp": "2026-01-01T00:00:02Z",
            "message": f"Failed to pull image: {UNAUTHORIZED}",
        },
        {
            "reason": "Failed",
            "involvedObject": {"kind": "Pod", "name": "web-1"},
            "lastTimestamp": "2026-01-01T00:00:03Z",
            "message": "Error: ImagePullBackOff",
        },
        {
            "reason": "Failed",
            "involvedObject": {"kind": "Pod", "name": "web-1"},
            "lastTimestamp": "2026-01-01T00:00:01Z",
            "message": "Error: ErrImagePull",
        },
    ]
    pods = [pod("web-1", LABELS, "ImagePullBackOff", BACKOFF)]
    [failure] = pull_failures(pods, ROLLED, events, backoff=True)
    assert "401 Unauthorized" in failure and BACKOFF in failure


def deployment(generation=1, **status):
    return {
        "metadata": {"name": "d", "generation": generation},
        "spec": {"replicas": 2},
        "status": status,
    }


AVAILABLE = [{"type": "Available", "status": "True"}]


@pytest.mark.parametrize(
    ("d", "state"),
    [
        (
            deployment(
                observedGeneration=1,
                replicas=2,
                updatedReplicas=2,
                availableReplicas=2,
                conditions=AVAILABLE,
            ),
            "complete",
        ),
        (deployment(generation=2, observedGeneration=1), "not seen the latest spec"),
        (deployment(observedGeneration=1, updatedReplicas=1), "1 of 2 replicas updated"),
        (
            deployment(observedGeneration=1, replicas=3, updatedReplicas=2),
            "1 old replicas not yet scaled down",
        ),
        (
            deployment(observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=1),
            "1 of 2 updated replicas available",
        ),
        (
            deployment(observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=2),
            "Available is not True",
        ),
    ],
)
def test_rollout_state(d, state):
    assert state in rollout_state(d)


def obj(kind, name, namespace="ns", api="v1"):
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}}


def test_record_lists_each_object_once_sorted():
    record = applied_record([obj("Service", "b"), obj("Service", "a"), obj("Service", "a")])
    assert record == "v1 Service ns a\nv1 Service ns b\n"


def test_stale_is_what_the_record_had_and_the_set_lost():
    before = applied_record(
        [obj("Service", "a"), obj("Service", "b"), obj("Namespace", "ns", None)]
    )
    stale = applied_stale(before, [obj("Service", "a")])
    assert stale == [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b", "namespace": "ns"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
    ]
    assert applied_stale(None, [obj("Service", "a")]) == []


def test_applied_objects_label_ours_and_record_each_set():
    out = applied_objects({"apps": [obj("Service", "a")], "mesh": []}, "ns")
    assert [o["kind"] for o in out] == ["Service", "ConfigMap", "ConfigMap"]
    assert out[0]["metadata"]["labels"] == OURS
    assert out[1]["metadata"]["name"] == "mesh-playground-applied-apps"
    assert out[1]["data"]["record"] == "v1 Service ns a\n"
    assert out[2]["data"]["record"] == ""


def test_pruned_reads_the_previous_record_from_the_diff():
    sets = {"apps": [obj("Service", "a")]}
    results = [
        {"result": obj("Service", "a")},
        {
            "result": obj("ConfigMap", "mesh-playground-applied-apps"),
            "diff": {"before": {"data": {"record": "v1 Service ns a\nv1 Service ns gone\n"}}},
        },
    ]
    assert applied_pruned(results, sets) == [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gone", "namespace": "ns"}}
    ]
    # No diff (unchanged record): nothing to prune.
    assert (
        applied_pruned([{"result": obj("ConfigMap", "mesh-playground-applied-apps")}], sets) == []
    )


def test_workload_overrides_merge_into_the_named_entries_only():
    entries = [
        {"app": "webserver", "version": "v1", "env": {"SERVERCONTNET": "WebServer V1"}},
        {"app": "webserver", "version": "v2", "env": {"SERVERCONTNET": "WebServer V2"}},
        {"app": "view", "version": "v1", "name": "view", "enabled": True},
    ]
    out = workload_overrides(
        entries,
        {"webserverv2": {"env": {"FAIL_RATE": "1"}, "clients": ["*"]}, "view": {"enabled": False}},
    )
    assert out == [
        entries[0],
        {
            "app": "webserver",
            "version": "v2",
            "env": {"SERVERCONTNET": "WebServer V2", "FAIL_RATE": "1"},
            "clients": ["*"],
        },
        {"app": "view", "version": "v1", "name": "view", "enabled": False},
    ]
    assert entries[1]["env"] == {"SERVERCONTNET": "WebServer V2"}  # the input is left as it was
    assert workload_overrides(entries, {}) == entries
    assert workload_overrides(entries, None) == entries
    with pytest.raises(ValueError, match=r"\['webserverv3'\] name no workload"):
        workload_overrides(entries, {"webserverv3": {"replicas": 1}})


def test_stored_versions_key_every_object_and_take_a_deployments_generation():
    stored = [
        {"kind": "Namespace", "metadata": {"name": "ns", "resourceVersion": "7"}},
        {"kind": "ConfigMap", "metadata": {"name": "r", "namespace": "ns", "resourceVersion": "9"}},
        {
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns", "resourceVersion": "12", "generation": 3},
        },
    ]
    assert stored_versions(stored) == {
        "Namespace/-/ns": "7",
        "ConfigMap/ns/r": "9",
        "Deployment/ns/d": "generation 3",
    }
    # A Deployment's status written again (new resourceVersion, same spec) is no change.
    stored[2]["metadata"]["resourceVersion"] = "13"
    assert stored_versions(stored)["Deployment/ns/d"] == "generation 3"
    assert stored_versions([]) == {}


SETTINGS = {
    "namespace": "ns",
    "sets": ["subsets", "split"],
    "host": "webserver",
    "subsets": [
        {"name": "v1", "labels": {"version": "v1"}},
        {"name": "v2", "labels": {"version": "v2"}},
    ],
    "load_balancer": "ROUND_ROBIN",
    "split_weights": {"v1": 80, "v2": 20},
}


def test_split_renders_one_destination_rule_and_one_virtual_service():
    dr, vs = mesh_policies_objects(SETTINGS)
    assert (dr["kind"], vs["kind"]) == ("DestinationRule", "VirtualService")
    assert [s["name"] for s in dr["spec"]["subsets"]] == ["v1", "v2"]
    assert vs["spec"]["http"] == [
        {
            "name": "split",
            "route": [
                {"destination": {"host": "webserver", "subset": "v1"}, "weight": 80},
                {"destination": {"host": "webserver", "subset": "v2"}, "weight": 20},
            ],
        }
    ]


def test_no_set_renders_nothing():
    assert mesh_policies_objects(dict(SETTINGS, sets=[])) == []


def test_default_settings_have_no_problems():
    assert mesh_policies_problems(mesh_policies_defaults(sets=["subsets", "split"])) == []


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"sets": ["subsets", "route-v1", "split"]}, "route-v1 and split each decide"),
        ({"sets": ["split"]}, "add the subsets set"),
        ({"split_weights": {"v1": 60, "v2": 60}}, "add up to 100"),
        ({"split_weights": {"v1": 50, "v3": 50}}, "unknown subsets ['v3']"),
        ({"split_weights": {"v1": 50.5, "v2": 49.5}}, "whole numbers"),
        ({"header_route_subset": "v9"}, "must be one of them"),
        ({"fault_abort_percent": 150}, "mesh_policies_fault_abort_percent=150"),
        ({"fault_abort_status": 99}, "mesh_policies_fault_abort_status=99"),
        ({"timeout": "1 second"}, "'mesh_policies_timeout': '1 second'"),
        ({"timeout": "0s"}, "'mesh_policies_timeout': '0s'"),
        ({"rewrite_uri": "rewritten"}, "Paths must start with /"),
        ({"host": "Web_Server"}, "Not a Kubernetes name"),
        ({"external_host": "bad_host"}, "is not a DNS name"),
        ({"external_endpoint": "stand in"}, "mesh_policies_external_endpoint 'stand in'"),
        ({"external_ca_secret": "CA_Secret"}, "is not a Secret name"),
        ({"external_ca_secret": "ca", "external_client_labels": {}}, "labels is empty"),
        ({"gateway_hosts": ["http://shop"]}, "use * or host names"),
        ({"sets": ["subsets", "subsets"]}, "lists a set twice"),
        ({"sets": ["redirect", "rewrite"]}, "redirect and rewrite both match /"),
    ],
)
def test_bad_settings_name_what_to_change(overrides, says):
    settings = mesh_policies_defaults(**{"sets": ["subsets", "split"], **overrides})
    problems = mesh_policies_problems(settings)
    assert any(says in p for p in problems), problems


def test_new_sets_render_their_objects():
    sets = ["subsets", "split", "timeout", "outlier-detection", "strict-mtls", "deny-v2-caller"]
    objects = {o["kind"]: o for o in mesh_policies_objects(mesh_policies_defaults(sets=sets))}
    assert objects["VirtualService"]["spec"]["http"][0]["timeout"] == "1s"
    assert (
        objects["DestinationRule"]["spec"]["trafficPolicy"]["outlierDetection"][
            "consecutive5xxErrors"
        ]
        == 3
    )
    assert objects["PeerAuthentication"]["spec"] == {"mtls": {"mode": "STRICT"}}
    policy = objects["AuthorizationPolicy"]
    assert policy["apiVersion"] == "security.istio.io/v1"
    assert policy["spec"]["selector"]["matchLabels"] == {"app": "webserver", "version": "v2"}
    assert policy["spec"]["rules"][0]["from"][0]["source"]["principals"] == [
        "cluster.local/ns/ns/sa/proxy"
    ]


def test_external_service_keeps_the_series_defaults_and_takes_an_endpoint_and_a_ca():
    def external(**overrides):
        objects = mesh_policies_objects(
            mesh_policies_defaults(sets=["external-service"], **overrides)
        )
        return {o["kind"]: o["spec"] for o in objects if o["metadata"]["name"] == "github"}

    series = external()
    assert "endpoints" not in series["ServiceEntry"]
    assert series["DestinationRule"]["trafficPolicy"] == {"tls": {"mode": "SIMPLE"}}
    standin = external(
        external_endpoint="standin.ext.svc.cluster.local",
        external_ca_secret="standin-ca",  # noqa: S106 (a Secret name, not a password)
    )
    assert standin["ServiceEntry"]["endpoints"] == [{"address": "standin.ext.svc.cluster.local"}]
    assert standin["ServiceEntry"]["hosts"] == ["raw.githubusercontent.com"]
    assert "workloadSelector" not in series["DestinationRule"]
    assert standin["DestinationRule"]["workloadSelector"] == {"matchLabels": {"app": "proxy"}}
    assert standin["DestinationRule"]["trafficPolicy"]["tls"] == {
        "mode": "SIMPLE",
        "sni": "raw.githubusercontent.com",
        "credentialName": "standin-ca",
    }


def test_external_service_lets_its_clients_out_on_its_port():
    objects = mesh_policies_objects(
        mesh_policies_defaults(sets=["external-service"], external_port=8443)
    )
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["name"] == "external-github"
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"app": "proxy"}},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                "ports": [{"protocol": "TCP", "port": 8443}],
            }
        ],
    }


def test_role_settings_strip_the_prefix_and_convert_like_the_argument_spec():
    options = {
        "r_percent": {"type": "float"},
        "r_port": {"type": "int"},
        "r_on": {"type": "bool"},
        "r_name": {"type": "str"},
        "r_items": {"type": "list"},
        "r": {"type": "list"},  # the role's own list: not prefix_*
    }
    values = ["30", "8443", "yes", "8080", ["a"], [1]]
    assert role_settings(options, values, "r_") == {
        "percent": 30.0,
        "port": 8443,
        "on": True,
        "name": "8080",
        "items": ["a"],
    }
    assert role_settings(options, values, "r_", convert=False)["port"] == "8443"
    with pytest.raises(ValueError, match="6 options but 5 values"):
        role_settings(options, values[:5], "r_")


def test_ours_is_the_part_of_label_and_nothing_else():
    assert ours({"metadata": {"labels": OURS}})
    assert ours({"metadata": {"labels": {PART_OF: OURS[PART_OF]}}})
    assert not ours({"metadata": {"labels": {PART_OF: "istio"}}})
    assert not ours({"metadata": {"name": "x"}})
    assert not ours({}) and not ours(None)
    theirs = {"metadata": {"name": "httproutes.gateway.networking.k8s.io"}}
    assert not_ours([{"metadata": {"labels": OURS}}, theirs]) == [theirs]


def test_ours_labels_add_ours_to_given_labels():
    selector = {"app": "proxy"}
    assert ours_labels(selector) == {"app": "proxy", **OURS}
    assert selector == {"app": "proxy"}  # the input is left as it was
    assert ours_labels() == OURS and ours({"metadata": {"labels": ours_labels()}})


HELM = {"app.kubernetes.io/managed-by": "Helm"}


def _meta(name, namespace=None, labels=None, annotations=None):
    meta = {"name": name, "labels": labels or {}, "annotations": annotations or {}}
    return {"metadata": dict(meta, **({"namespace": namespace} if namespace else {}))}


def test_istio_not_ours_names_a_foreign_istios_namespaces_releases_and_crds():
    ours_ns = _meta("istio-system", labels=OURS)
    theirs = _meta("istio-system", labels={"kubernetes.io/metadata.name": "istio-system"})
    releases = [
        _meta(f"sh.helm.release.v1.{r}.v1", "istio-system", {"owner": "helm", "name": r})
        for r in ("istiod", "istio-base", "istiod")
    ]
    deployments = [
        _meta("istiod", "istio-system", HELM, {"meta.helm.sh/release-name": "istiod"}),
        _meta("istio-ingressgateway", "istio-system", {"operator.istio.io/component": "x"}),
        _meta("elsewhere", "other"),
    ]
    helm = {"meta.helm.sh/release-name": "istio-base"}
    crds = [
        _meta(
            f"{kind}.networking.istio.io",
            annotations=dict(helm, **{"meta.helm.sh/release-namespace": ns}),
        )
        for kind, ns in (
            ("gateways", "theirs"),
            ("sidecars", "theirs"),
            ("a", "theirs"),
            ("b", "theirs"),
        )
    ] + [
        _meta("by-hand.istio.io"),
        _meta(
            "ours.istio.io",
            annotations=dict(helm, **{"meta.helm.sh/release-namespace": "istio-system"}),
        ),
    ]

    assert istio_not_ours([ours_ns], releases, deployments, crds[4:], "istio-system") == []
    assert istio_not_ours([], [], [], [], "istio-system") == []
    problems = istio_not_ours([theirs], releases, deployments, crds, "istio-system")
    assert problems == [
        "namespace istio-system exists and mesh-playground did not create it (no label "
        f"{PART_OF}=mesh-playground), holding Helm releases istio-base, istiod; Deployments "
        "istio-ingressgateway (by istioctl), istiod (by Helm)",
        "4 of Istio's CRDs (a.networking.istio.io, b.networking.istio.io, "
        "gateways.networking.istio.io, ...) belong to Helm release istio-base of namespace theirs",
    ]
    empty = istio_not_ours([_meta("istio-ingress")], [], deployments, [], "istio-system")
    assert empty == [
        "namespace istio-ingress exists and mesh-playground did not create it (no label "
        f"{PART_OF}=mesh-playground), holding no Helm release or Deployment"
    ]


def test_applied_diffs_never_show_a_secrets_data():
    secret = {"kind": "Secret", "metadata": {"name": "pull"}, "data": {".dockerconfigjson": "eyJ"}}
    results = [
        {"changed": True, "result": secret, "diff": {"after": secret}},
        {"changed": True, "result": obj("ConfigMap", "c"), "diff": {"after": {"data": {}}}},
        {"changed": False, "result": obj("Service", "s")},
    ]
    diffs = applied_diffs(results)
    assert [d["object"] for d in diffs] == ["Secret/pull", "ConfigMap/c"]
    assert "eyJ" not in str(diffs)
    assert diffs[1]["diff"] == {"after": {"data": {}}}


def _istiod(namespace, rev=None, labels=None, annotations=None):
    meta = {"app": "istiod", **({"istio.io/rev": rev} if rev else {}), **(labels or {})}
    return _meta("istiod" + (f"-{rev}" if rev else ""), namespace, meta, annotations)


def _injector(namespace, rev, cni):
    name = "istio-sidecar-injector" + ("" if rev == "default" else f"-{rev}")
    values = json.dumps({"pilot": {"cni": {"enabled": cni}}, "revision": rev})
    return dict(_meta(name, namespace, {"istio.io/rev": rev}), data={"values": values})


def _gateway(name, namespace, labels):
    return dict(_meta(name, namespace, labels), spec={"template": {"metadata": {"labels": labels}}})


def test_istio_found_describes_a_helm_installed_revision_with_its_cni_and_gateway():
    # Istio's charts label for Helm and the operator alike; only helm install annotates.
    chart_labels = {**HELM, "install.operator.istio.io/owning-resource": "unknown"}
    by_helm = {"meta.helm.sh/release-name": "istiod-blue"}
    istiods = [_istiod("istio-system", "default"), _istiod("theirs", "blue", chart_labels, by_helm)]
    injectors = [_injector("istio-system", "default", True), _injector("theirs", "blue", True)]
    gateways = [
        _gateway("istio-ingressgateway", "istio-ingress", {"istio": "ingressgateway"}),
        _gateway("istio-ingress", "theirs-ingress", {"istio": "ingress", "istio.io/rev": "blue"}),
        _gateway("egress", "theirs", {"istio": "egressgateway", "istio.io/rev": "blue"}),
        _gateway("istiod-blue", "theirs", {"istio": "pilot", "app": "istiod"}),
    ]
    cni = [_meta("istio-cni-node", "istio-system")]

    found = istio_found(istiods, injectors, cni, gateways, "blue")
    assert found["problems"] == []
    assert (found["namespace"], found["revision"], found["installer"]) == ("theirs", "blue", "Helm")
    assert found["cni"] and found["pod_security"] == "restricted"
    assert found["injection_labels"] == {"istio.io/rev": "blue"}
    assert found["gateway_selector"] == {"istio": "ingress"}
    assert [g["namespace"] for g in found["gateways"]] == ["theirs-ingress", "istio-ingress"]
    assert found["summary"] == (
        "istiod of revision blue in theirs (by Helm), with the Istio CNI; ingress gateways:"
        " istio=ingress in theirs-ingress, istio=ingressgateway in istio-ingress (revision default)"
    )
    by_istioctl = _istiod("istio-system", None, chart_labels)
    assert istio_found([by_istioctl], injectors, cni, gateways, "")["installer"] == "istioctl"
    default = istio_found(istiods[:1], injectors, cni, gateways, "")
    assert default["injection_labels"] == {"istio-injection": "enabled"}
    assert default["gateway_selector"] == {"istio": "ingressgateway"}


def test_istio_found_without_the_cni_asks_for_privileged_pods():
    found = istio_found(
        [_istiod("istio-system")], [_injector("istio-system", "default", False)], [], []
    )
    assert found["problems"] == [] and not found["cni"]
    assert found["pod_security"] == "privileged" and found["gateway_selector"] is None


@pytest.mark.parametrize(
    "istiods, injectors, cni, revision, says",
    [
        ([], [], [], "", "no istiod runs in this cluster"),
        (
            [_istiod("a"), _istiod("b", "blue")],
            [],
            [],
            "",
            "2 istiod revisions run in this cluster: blue (istiod in b), default (istiod in a);"
            " set playground_istio_revision",
        ),
        (
            [_istiod("a")],
            [],
            [],
            "green",
            "No istiod of revision green (playground_istio_revision) in this cluster; it has:"
            " default (istiod in a).",
        ),
        ([_istiod("a")], [], [], "", "has no ConfigMap istio-sidecar-injector"),
        (
            [_istiod("a")],
            [_injector("a", "default", True)],
            [],
            "",
            "no istio-cni-node DaemonSet runs",
        ),
    ],
    ids=["none", "several", "unknown-revision", "no-injector", "cni-without-daemonset"],
)
def test_istio_found_says_what_is_missing_or_ambiguous(istiods, injectors, cni, revision, says):
    problems = istio_found(istiods, injectors, cni, [], revision)["problems"]
    assert len(problems) == 1 and says in problems[0], problems


def test_the_gateway_set_checks_its_selector_against_the_gateways_of_the_istio_found():
    gateways = [_gateway("istio-ingress", "theirs-ingress", {"istio": "ingress"})]
    found = istio_found(
        [_istiod("theirs")],
        [_injector("theirs", "default", True)],
        [_meta("cni", "kube-system")],
        gateways,
    )
    settings = mesh_policies_defaults(
        sets=["gateway"], gateway_selector={"istio": "ingressgateway"}, istio=found
    )
    (problem,) = mesh_policies_problems(settings)
    assert problem.startswith(
        "mesh_policies_gateway_selector {'istio': 'ingressgateway'} selects none of the ingress"
        " gateways of the Istio found (istiod of revision default in theirs"
    ), problem
    assert "set it to one of {'istio': 'ingress'} (theirs-ingress/istio-ingress)." in problem
    assert mesh_policies_problems(dict(settings, gateway_selector={"istio": "ingress"})) == []
    assert mesh_policies_problems(dict(settings, istio=None)) == []


def test_the_ingress_stays_whatever_sets_are_listed():
    """mesh_policies_ingress keeps the gateway set (inventory/local): a learner's split alone
    must not drop the ingress; listed as well, it is rendered once and not refused as twice."""
    kinds = lambda objects: sorted((o["kind"], o["metadata"]["name"]) for o in objects)  # noqa: E731
    split = mesh_policies_defaults(sets=["subsets", "split"])
    kept = mesh_policies_objects(dict(split, ingress=True))
    assert ("Gateway", "default-gateway") in kinds(kept)
    assert ("Gateway", "default-gateway") not in kinds(mesh_policies_objects(split))
    both = dict(split, sets=["subsets", "split", "gateway"], ingress=True)
    assert kinds(mesh_policies_objects(both)) == kinds(kept)
    assert (
        mesh_policies_problems(both) == []
        and mesh_policies_problems(dict(split, ingress=True)) == []
    )
    assert mesh_policies_objects(dict(split, sets=[], ingress=True))  # never empty with the ingress


def test_istio_found_takes_the_only_gateway_when_none_carries_the_revision():
    """A gateway injected through its namespace's istio.io/rev label has none on its pods; an
    east-west gateway is no entry for the apps."""
    gateways = [
        _gateway("gw", "edge", {"istio": "edge"}),
        _gateway("eastwest", "theirs", {"istio": "eastwestgateway", "istio.io/rev": "blue"}),
    ]
    found = istio_found(
        [_istiod("theirs", "blue")], [_injector("theirs", "blue", False)], [], gateways
    )
    assert found["gateway_selector"] == {"istio": "edge"}
    assert [g["name"] for g in found["gateways"]] == ["gw"]


def test_istio_found_refuses_two_istiods_of_one_revision_and_unreadable_values():
    two = istio_found([_istiod("a"), _istiod("b")], [], [], [])["problems"]
    assert len(two) == 1 and "2 istiods serve revision default" in two[0], two
    broken = dict(_injector("a", "default", True), data={"values": "not json"})
    (problem,) = istio_found([_istiod("a")], [broken], [], [])["problems"]
    assert "holds no readable `values`" in problem


def test_a_slow_pod_is_one_more_pod_of_the_same_subset_with_its_answers_delayed():
    v1 = {
        "metadata": {"name": "webserverv1", "namespace": "ns", "uid": "u", "labels": {"a": "b"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "webserver", "version": "v1"}},
            "template": {
                "metadata": {"labels": {"app": "webserver", "version": "v1"}},
                "spec": {
                    "containers": [{"name": "webserver", "env": [{"name": "X", "value": "1"}]}]
                },
            },
        },
        "status": {"replicas": 3},
    }
    slow = slow_pod(v1, 0.3)
    assert slow["metadata"] == {"name": "webserverv1-slow", "namespace": "ns", "labels": {"a": "b"}}
    assert slow["spec"]["replicas"] == 1 and "status" not in slow
    labels = slow["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": "webserver", "version": "v1", "mesh-playground/slow": "true"}
    assert slow["spec"]["selector"]["matchLabels"] == labels  # not webserverv1's pods
    (container,) = slow["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {"name": "X", "value": "1"},
        {"name": "RESPONSE_DELAY_SECONDS", "value": "0.3"},
    ]
    assert v1["spec"]["template"]["metadata"]["labels"] == {"app": "webserver", "version": "v1"}
