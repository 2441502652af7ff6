"""The target's guards and kubeconfig resolution, through the real playbooks and no cluster: the
kubeconfigs here point at a closed port on 127.0.0.1, so a run that gets past the guards fails
at its first call to the API, and its error names the server it tried. That is enough to show
which kubeconfig every playbook used, and that nothing was read before the guards ran.
(tests/ansible/test_own_cluster.py deploys for real, against the local cluster.)"""

import base64
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from target import ca_fingerprint

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


@pytest.fixture(scope="module")
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, closed_port) -> dict:
    """A kubeconfig (context kind-kind, as inventory/kind expects) with its own CA, for a
    server that is not there."""
    where = tmp_path_factory.mktemp("cluster")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=nowhere-ca",
         "-keyout", str(where / "ca.key"), "-out", str(where / "ca.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    ca = (where / "ca.crt").read_text()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kind-kind",
        "clusters": [
            {
                "name": "kind",
                "cluster": {
                    "server": f"https://127.0.0.1:{closed_port}",
                    "certificate-authority-data": base64.b64encode(ca.encode()).decode(),
                },
            }
        ],
        "contexts": [{"name": "kind-kind", "context": {"cluster": "kind", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }
    (where / "kubeconfig").write_text(yaml.safe_dump(config))
    return {"kubeconfig": where / "kubeconfig", "fingerprint": ca_fingerprint(ca), "dir": where}


def inventory(where: Path, **host_vars) -> Path:
    """An inventory directory, hosts.yml and host_vars/cluster.yml (the shape README describes)."""
    (where / "host_vars").mkdir(parents=True, exist_ok=True)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (where / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"cluster": host}}}))
    settings = {"playground_context": "kind-kind", "playground_mesh": False, **host_vars}
    (where / "host_vars" / "cluster.yml").write_text(yaml.safe_dump(settings))
    return where


def playbook(name: str | Path, inventory_dir: Path, *extra: str, **env: str):
    """Runs playbooks/<name>, or the playbook at an absolute path."""
    environ = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    environ.update(ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json", **env)
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory_dir), str(REPO / "playbooks" / name), *extra],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def reached(run, port: int) -> bool:
    """Past the guards, at the first call to the API, which went to the kubeconfig's server."""
    out = run.stdout + run.stderr
    return (
        run.returncode != 0
        and "Host value" not in out
        and f"port={port}" in out
        and "Connection refused" in out
    )


def test_an_empty_kubeconfig_is_the_first_entry_of_kubeconfig(tmp_path, cluster, closed_port):
    fingerprint = cluster["fingerprint"]
    inv = inventory(
        tmp_path / "inv", playground_kubeconfig="", playground_cluster_ca_fingerprint=fingerprint
    )
    run = playbook("render.yml", inv, KUBECONFIG=f"{cluster['kubeconfig']}:/nonexistent")
    assert reached(run, closed_port), run.stdout[-3000:] + run.stderr[-2000:]
    assert "Look up the target namespace" in run.stdout


def test_an_empty_kubeconfig_without_kubeconfig_is_home_kube_config(tmp_path, cluster, closed_port):
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(cluster["kubeconfig"].read_text())
    inv = inventory(tmp_path / "inv", playground_cluster_ca_fingerprint=cluster["fingerprint"])
    run = playbook("render.yml", inv, HOME=str(home))
    assert reached(run, closed_port), run.stdout[-3000:] + run.stderr[-2000:]


def test_a_tilde_and_a_relative_kubeconfig_are_expanded(tmp_path, cluster, closed_port):
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "mine.yaml").write_text(cluster["kubeconfig"].read_text())
    fingerprint = cluster["fingerprint"]
    tilde = inventory(
        tmp_path / "tilde",
        playground_kubeconfig="~/.kube/mine.yaml",
        playground_cluster_ca_fingerprint=fingerprint,
    )
    run = playbook("render.yml", tilde, HOME=str(home))
    assert reached(run, closed_port), run.stdout[-3000:] + run.stderr[-2000:]

    relative = inventory(
        tmp_path / "relative",
        playground_kubeconfig="secrets/kubeconfig",
        playground_cluster_ca_fingerprint=fingerprint,
    )
    (relative / "secrets").mkdir()
    (relative / "secrets" / "kubeconfig").write_text(cluster["kubeconfig"].read_text())
    # From another working directory: relative to the inventory's directory, not the cwd.
    run = playbook("render.yml", relative)
    assert reached(run, closed_port), run.stdout[-3000:] + run.stderr[-2000:]


def test_inventory_kind_refuses_and_prints_the_fingerprint_that_then_works(
    tmp_path, cluster, closed_port
):
    """inventory/kind as shipped: empty playground_kubeconfig, a FILL-IN fingerprint."""
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(cluster["kubeconfig"].read_text())
    kind = REPO / "inventory" / "kind"
    refused = playbook("deploy.yml", kind, HOME=str(home))
    assert refused.returncode == 2, refused.stdout[-3000:]
    assert "Fill in playground_cluster_ca_fingerprint in the inventory" in refused.stdout
    assert "Look up the target namespace" not in refused.stdout
    printed = set(FINGERPRINT.findall(refused.stdout))
    assert printed == {cluster["fingerprint"]}, refused.stdout[-3000:]

    pasted = playbook(
        "deploy.yml", kind, "-e", f"playground_cluster_ca_fingerprint={printed.pop()}",
        HOME=str(home),
    )  # fmt: skip
    assert reached(pasted, closed_port), pasted.stdout[-3000:] + pasted.stderr[-2000:]


@pytest.mark.parametrize(
    ("name", "first_read"),
    [
        ("canary.yml", "Read the current split"),
        ("rollback.yml", "Wait until rolled out"),
        ("undeploy.yml", "Read the records"),
        ("policies.yml", "Wait until rolled out"),
        ("istio_crds.yml", "Install or upgrade the Helm releases"),
    ],
)
def test_every_playbook_runs_the_guards_before_it_reads(tmp_path, cluster, name, first_read):
    inv = inventory(
        tmp_path / "inv",
        playground_kubeconfig=str(cluster["kubeconfig"]),
        playground_cluster_ca_fingerprint="sha256:" + "0" * 64,
        mesh_policies_sets=["subsets", "split"],
    )
    run = playbook(name, inv)
    assert run.returncode == 2, run.stdout[-3000:]
    assert "Wrong cluster: expected CA sha256:000" in run.stdout, run.stdout[-3000:]
    assert f"leads to CA {cluster['fingerprint']}" in run.stdout
    assert first_read not in run.stdout
    assert "Look up the target namespace" not in run.stdout


# A play of one's own with the module_defaults block of roles/target/README.md (the entry point
# `connection`, as molecule/shared/connection.yml: no guards): a k8s module and a helm module get
# the kubeconfig and context the role resolved. The stand-in helm prints what it was given.
OWN_PLAY = """\
- hosts: all
  gather_facts: false
  module_defaults:
    group/kubernetes.core.k8s: "{{ playground_k8s_connection }}"
    group/kubernetes.core.helm: "{{ playground_k8s_connection }}"
  tasks:
    - name: Resolve the kubeconfig and context
      ansible.builtin.include_role:
        name: mesh_playground.playground.target
        tasks_from: connection
    - name: Call a helm module
      kubernetes.core.helm_info:
        binary_path: "{{ playbook_dir }}/helm"
        name: any
        release_namespace: any
      ignore_errors: true
    - name: Call a k8s module
      kubernetes.core.k8s_info:
        kind: Namespace
"""
HELM = """\
#!/bin/sh
echo "context=$HELM_KUBECONTEXT $(grep -o 'https://[0-9.:]*' "$KUBECONFIG")" >&2
exit 1
"""


@pytest.mark.parametrize("context", ["kind-kind", "", "nope"])
def test_module_defaults_give_every_call_the_resolved_kubeconfig_and_context(
    tmp_path, cluster, closed_port, context
):
    (tmp_path / "play.yml").write_text(OWN_PLAY)
    (tmp_path / "helm").write_text(HELM)
    (tmp_path / "helm").chmod(0o755)
    inv = inventory(
        tmp_path / "inv", playground_kubeconfig="secrets/kubeconfig", playground_context=context
    )
    (inv / "secrets").mkdir()
    (inv / "secrets" / "kubeconfig").write_text(cluster["kubeconfig"].read_text())
    run = playbook(tmp_path / "play.yml", inv)
    out = run.stdout + run.stderr
    assert f"context={context} https://127.0.0.1:{closed_port}" in out, out[-3000:]
    if context == "nope":  # passed on: the client looks for it
        assert run.returncode == 2 and "Expected object with name nope" in out, out[-3000:]
    else:  # kind-kind, or none: the kubeconfig's current context (kind-kind)
        assert reached(run, closed_port), out[-3000:]
