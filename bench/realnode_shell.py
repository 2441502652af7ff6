"""How the real-node benchmarks (realnode.py, faults.py) run commands: from the repository root,
the venv first on PATH, CLUSTER_NODE_MODE=real (so that `cluster/cluster.sh up` joins the real
node), output captured; a command that fails ends the benchmark with its output."""

import os
import subprocess
import sys

import paths

REPO = paths.REPO
CLUSTER_SH = REPO / "cluster" / "cluster.sh"
KUBECTL = REPO / ".cluster" / "bin" / "kubectl"
KUBECONFIG = REPO / ".cluster" / "kubeconfig"
ENV = dict(
    os.environ,
    CLUSTER_NODE_MODE="real",
    PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
    ANSIBLE_NOCOLOR="1",
)


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return result


def kubectl(*args: str, check: bool = True) -> str:
    return run(
        str(KUBECTL), "--kubeconfig", str(KUBECONFIG), "--context", "mesh-playground", *args,
        check=check,
    ).stdout  # fmt: skip
