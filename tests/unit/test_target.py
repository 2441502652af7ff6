"""Unit tests of the target role's pure pieces (plugins/filter/target.py): which kubeconfig a
run uses, the CA fingerprint and its one form, the guards' messages; and the fingerprint
commands of docs/troubleshooting.md, run and compared with the filter."""

import base64
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from target import (
    FINGERPRINT,
    api_server_egress,
    ca_fingerprint,
    kubeconfig_file_ca_fingerprint,
    kubeconfig_path,
    target_problems,
)

REPO = Path(__file__).resolve().parents[2]
HOME = {"HOME": "/home/me"}


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> Path:
    """A CA certificate made by openssl, as a cluster's ca.crt."""
    where = tmp_path_factory.mktemp("ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=test-ca", "-keyout", str(where / "ca.key"), "-out", str(where / "ca.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    return where / "ca.crt"


def kubeconfig(cluster: dict, context: str = "c1") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1", **cluster}}],
            "contexts": [{"name": context, "context": {"cluster": "k", "user": "u"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
        }
    )


# ---------------------------------------------------------------- which kubeconfig


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        # empty: the client's default, the first non-empty entry of $KUBECONFIG ...
        ("", {**HOME, "KUBECONFIG": "/etc/k/a.yaml"}, "/etc/k/a.yaml"),
        ("", {**HOME, "KUBECONFIG": "/etc/k/a.yaml:/etc/k/b.yaml"}, "/etc/k/a.yaml"),
        ("", {**HOME, "KUBECONFIG": ":/etc/k/b.yaml"}, "/etc/k/b.yaml"),
        ("", {**HOME, "KUBECONFIG": "~/k.yaml"}, "/home/me/k.yaml"),
        ("", {**HOME, "KUBECONFIG": "rel/k.yaml"}, "/work/dir/rel/k.yaml"),  # the client's cwd
        # ... else ~/.kube/config
        ("", HOME, "/home/me/.kube/config"),
        ("", {**HOME, "KUBECONFIG": ""}, "/home/me/.kube/config"),
        (None, HOME, "/home/me/.kube/config"),
        # set: ~ is $HOME, a relative path is the inventory's directory's
        ("~/.kube/prod.yaml", HOME, "/home/me/.kube/prod.yaml"),
        ("~", HOME, "/home/me"),
        ("kubeconfig", HOME, "/inv/kubeconfig"),
        ("../.cluster/kubeconfig", HOME, "/.cluster/kubeconfig"),
        ("/abs/./k/../kubeconfig", HOME, "/abs/kubeconfig"),
        # $KUBECONFIG does not matter once it is set
        ("/abs/k", {**HOME, "KUBECONFIG": "/etc/k/a.yaml"}, "/abs/k"),
    ],
)
def test_kubeconfig_path_is_absolute_and_the_clients(value, environ, expected):
    assert kubeconfig_path(value, "/inv", environ, cwd="/work/dir") == expected


def test_a_relative_kubeconfig_without_an_inventory_directory_is_the_working_directorys():
    assert kubeconfig_path("k.yaml", "", HOME, cwd="/work/dir") == "/work/dir/k.yaml"
    assert kubeconfig_path("k.yaml", None, HOME, cwd="/work/dir") == "/work/dir/k.yaml"


def test_a_placeholder_is_left_for_the_guards():
    value = "FILL-IN: path of the kubeconfig, e.g. ~/.kube/prod-eu-1.yaml"
    assert kubeconfig_path(value, "/inv", HOME) == value


def test_the_local_inventorys_path_is_unchanged():
    """inventory/local gives an absolute path built from inventory_dir: it stays that file."""
    value = f"{REPO}/inventory/local/../../.cluster/kubeconfig"
    assert kubeconfig_path(value, str(REPO / "inventory/local"), HOME) == str(
        REPO / ".cluster" / "kubeconfig"
    )


# ---------------------------------------------------------------- the CA fingerprint


def test_ca_fingerprint_is_the_one_form_the_inventory_takes(ca):
    found = ca_fingerprint(ca.read_text())
    assert FINGERPRINT.match(found), found
    der = subprocess.run(
        ["openssl", "x509", "-in", str(ca), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    assert found == "sha256:" + hashlib.sha256(der).hexdigest()


def test_the_kubeconfigs_ca_data_file_and_relative_file_give_the_same(ca, tmp_path):
    expected = ca_fingerprint(ca.read_text())
    data = base64.b64encode(ca.read_bytes()).decode()
    (tmp_path / "data.yaml").write_text(kubeconfig({"certificate-authority-data": data}))
    shutil.copy(ca, tmp_path / "ca.crt")
    (tmp_path / "file.yaml").write_text(kubeconfig({"certificate-authority": "ca.crt"}))
    for name in ("data.yaml", "file.yaml"):
        assert kubeconfig_file_ca_fingerprint(str(tmp_path / name), "") == expected
        assert kubeconfig_file_ca_fingerprint(str(tmp_path / name), "c1") == expected


@pytest.mark.parametrize(
    ("path", "context", "says"),
    [
        ("missing.yaml", "", "no kubeconfig at"),
        ("FILL-IN: path", "", "FILL-IN placeholder"),
        ("k.yaml", "other", "context 'other' not found (contexts: ['c1'])"),
    ],
)
def test_no_fingerprint_says_why(tmp_path, path, context, says):
    (tmp_path / "k.yaml").write_text(kubeconfig({"certificate-authority-data": "eA=="}))
    full = path if path.startswith("FILL-IN") else str(tmp_path / path)
    with pytest.raises(ValueError, match=re.escape(says)):
        kubeconfig_file_ca_fingerprint(full, context)


def fingerprint_commands() -> list[str]:
    """The commands of docs/troubleshooting.md's fingerprint block, continuation lines joined."""
    text = (REPO / "docs" / "troubleshooting.md").read_text()
    block = text.split("<!-- fingerprint commands:", 1)[1].split("```console\n", 1)[1]
    block = block.split("```", 1)[0].replace("\\\n", " ")
    return [line for line in block.splitlines() if line.strip()]


def run_bash(command: str, **env: str) -> str:
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True, text=True, check=True, env={**os.environ, **env},
    )  # fmt: skip
    return done.stdout.strip()


def test_the_documented_openssl_command_prints_what_the_guard_takes(ca):
    openssl = next(c for c in fingerprint_commands() if c.startswith("openssl"))
    printed = run_bash(openssl.replace("ca.crt", str(ca)))
    assert FINGERPRINT.match(printed), printed
    assert printed == ca_fingerprint(ca.read_text())
    good = {"namespace": "mesh-playground", "fingerprint": printed, "found": printed}
    assert target_problems(good) == []


@pytest.mark.skipif(not shutil.which("kubectl"), reason="no kubectl on PATH")
@pytest.mark.parametrize("form", ["data", "file"])
def test_the_documented_kubectl_command_prints_what_the_guard_takes(ca, tmp_path, form):
    if form == "data":
        cluster = {"certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()}
    else:
        shutil.copy(ca, tmp_path / "ca.crt")
        cluster = {"certificate-authority": "ca.crt"}
    config = tmp_path / "config"
    config.write_text(kubeconfig(cluster, context="mine"))
    command = next(c for c in fingerprint_commands() if c.startswith("kubectl"))
    command = command.replace("<kubeconfig>", str(config)).replace("<context>", "mine")
    printed = run_bash(command, HOME=str(tmp_path))
    assert printed == ca_fingerprint(ca.read_text())
    assert printed == kubeconfig_file_ca_fingerprint(str(config), "mine")


# ---------------------------------------------------------------- the guards' messages

GOOD = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def target(**changes) -> dict:
    base = {
        "namespace": "mesh-playground",
        "context": "prod",
        "kubeconfig_path": "/home/me/.kube/config",
        "fingerprint": GOOD,
        "found": GOOD,
        "inventory": "/repo/inventory/prod",
        "host": "prod-eu-1",
        "sharing": [],
        "settings": {
            "playground_kubeconfig": "",
            "playground_context": "prod",
            "playground_cluster_ca_fingerprint": GOOD,
        },
    }
    return {**base, **changes}


def test_the_right_cluster_has_no_problem():
    assert target_problems(target()) == []
    assert target_problems(target(context="")) == []


def test_a_fill_in_fingerprint_is_refused_with_the_one_found_ready_to_paste():
    placeholder = "FILL-IN: sha256:<hex> of the kind cluster's CA (the first run prints it)"
    settings = {**target()["settings"], "playground_cluster_ca_fingerprint": placeholder}
    problems = target_problems(target(fingerprint=placeholder, found=OTHER, settings=settings))
    message = " ".join(problems)
    assert message.startswith(
        "Fill in playground_cluster_ca_fingerprint in the inventory (/repo/inventory/prod): FILL-IN"
    )
    assert "context prod of /home/me/.kube/config leads to CA " + OTHER in message
    assert f'record it: playground_cluster_ca_fingerprint: "{OTHER}"' in message
    # What it prints is what the guard then takes.
    printed = re.findall(r"sha256:[0-9a-f]{64}", message)
    assert printed and set(printed) == {OTHER}
    assert target_problems(target(fingerprint=printed[0], found=OTHER)) == []


def test_a_fill_in_kubeconfig_says_no_ca_can_be_found_yet():
    settings = {
        "playground_kubeconfig": "FILL-IN: path",
        "playground_context": "FILL-IN: context",
        "playground_cluster_ca_fingerprint": "FILL-IN: sha",
    }
    problems = target_problems(
        target(settings=settings, fingerprint="FILL-IN: sha", found="unknown (placeholder)")
    )
    assert problems[0].startswith(
        "Fill in playground_kubeconfig, playground_context, playground_cluster_ca_fingerprint"
    )
    assert problems[-1].startswith("Found: no CA yet")


def test_an_unset_fingerprint_prints_the_one_found():
    (problem,) = target_problems(target(fingerprint="", found=OTHER))
    assert problem.startswith("playground_cluster_ca_fingerprint is not set")
    assert f"leads to CA {OTHER}" in problem and f'fingerprint: "{OTHER}"' in problem


@pytest.mark.parametrize(
    "written",
    [
        "SHA256 Fingerprint=" + ":".join(["AB"] * 32),  # openssl as it prints
        ":".join(["ab"] * 32),
        "sha256:" + "AB" * 32,
        "ab" * 32,
        "sha256:0000",
    ],
)
def test_a_fingerprint_in_another_form_is_refused_naming_the_form(written):
    (problem,) = target_problems(target(fingerprint=written, found=GOOD))
    assert problem.startswith(f"playground_cluster_ca_fingerprint={written!r}: use sha256:")
    assert f'fingerprint: "{GOOD}"' in problem


def test_a_wrong_cluster_names_both_fingerprints():
    (problem,) = target_problems(target(fingerprint=OTHER, found=GOOD))
    # molecule/bad-input matches this beginning.
    assert problem == (
        f"Wrong cluster: expected CA {OTHER}; context prod of /home/me/.kube/config leads to CA"
        f" {GOOD}."
    )
    (problem,) = target_problems(target(context="", found="unknown (no kubeconfig at /x)"))
    assert problem.startswith(f"Wrong cluster: expected CA {GOOD}; context (current) of")
    assert problem.endswith("leads to CA unknown (no kubeconfig at /x).")


@pytest.mark.parametrize("namespace", ["kube-system", "default", "istio-system", "Bad_Name", ""])
def test_a_bad_namespace_is_refused_and_the_ca_found_printed(namespace):
    problems = target_problems(target(namespace=namespace))
    assert problems[0].startswith(f'playground_namespace="{namespace}": use at most 63')
    assert problems[-1] == f"Found: context prod of /home/me/.kube/config leads to CA {GOOD}."


def test_hosts_sharing_a_target_are_named():
    problems = target_problems(target(sharing=["a", "b"]))
    assert problems[0].startswith('Hosts a, b and prod-eu-1 all target context "prod" of')
    assert "host_vars" in problems[0]
    assert problems[-1].startswith("Found: ")


def test_api_server_egress_is_where_the_kubernetes_service_leads():
    endpoint_slices = [
        {"endpoints": [{"addresses": ["172.18.0.2"]}, {"addresses": ["172.18.0.3"]}],
         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
    ]  # fmt: skip
    assert api_server_egress(endpoint_slices, {}) == {
        "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}, {"ipBlock": {"cidr": "172.18.0.3/32"}}],
        "ports": [{"protocol": "TCP", "port": 6443}],
    }
    # No endpoints (the local cluster: its API server listens on loopback, where the node sends
    # the Service's address): loopback on the Service's target port.
    service = {"spec": {"ports": [{"port": 443, "targetPort": 16443}]}}
    assert api_server_egress([], service) == {
        "to": [{"ipBlock": {"cidr": "127.0.0.1/32"}}],
        "ports": [{"protocol": "TCP", "port": 16443}],
    }
