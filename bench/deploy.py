"""Deploy benchmark: playbooks/deploy.yml against `kubectl apply` of the same objects.

Against the local cluster (started if it is not running, and then stopped again), in a namespace
of its own (bench-deploy, so a deployed mesh-playground is left alone), BENCH_DEPLOY_RUNS times
(default 3):
- ansible fresh:   deploy.yml from no namespace to every rollout complete (the playbook waits);
- ansible no-op:   deploy.yml again (must report changed=0); these two without the inventory's
                   mesh policies, as kubectl applies the app objects only;
- ansible no-op, with the mesh policies: the same with inventory/local's mesh policy sets;
- kubectl fresh:   `kubectl apply --server-side` of the objects the roles render
                   (playbooks/render.yml), then every Deployment polled with `kubectl get` until
                   rolled out (the rollout_state filter: what the playbook waits for);
- kubectl no-op:   the same apply again;
- ansible undeploy: undeploy.yml until everything is gone;
- ansible floor:   ansible-playbook running one debug task (what any playbook costs here).
Prints the median and the best run of each, and two ratios: the no-op with the mesh policies
against the ansible floor (goal: at most 4x) and the no-op against kubectl's no-op.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paths  # first: the test helpers below are found through it
import yaml
from polling import wait_for
from workloads import rollout_state

REPO = paths.REPO
KUBECONFIG = REPO / ".cluster" / "kubeconfig"
KUBECTL = REPO / ".cluster" / "bin" / "kubectl"
CONTEXT = "mesh-playground"
NAMESPACE = "bench-deploy"
FIELD_MANAGER = "mesh-playground"  # the roles' server-side apply field manager
RUNS = int(os.environ.get("BENCH_DEPLOY_RUNS", "3"))
GOAL_FLOOR_RATIO = 4.0


def run(argv: list[str], timeout: float = 600) -> str:
    """Run a command from the repository root; its stdout, or exit with its output on failure."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"
    done = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = run(argv)
    return time.perf_counter() - start, out


def kubectl(*args: str) -> list[str]:
    return [str(KUBECTL), f"--kubeconfig={KUBECONFIG}", f"--context={CONTEXT}", *args]


def playbook(name: str, mesh: bool = False) -> list[str]:
    """The playbook in the bench namespace; without the inventory's mesh policies unless `mesh`
    (kubectl applies the app objects only: like is compared with like)."""
    argv = ["ansible-playbook", f"playbooks/{name}", "-e", f"playground_namespace={NAMESPACE}"]
    no_policies = '{"mesh_policies_sets": [], "mesh_policies_ingress": false}'
    return argv if mesh else [*argv, "-e", no_policies]


def changed(recap: str) -> int:
    """changed= of the play recap (one host)."""
    counts = re.findall(r"\schanged=(\d+)\s", recap)
    if not counts:
        sys.exit(f"no play recap in:\n{recap}")
    return sum(int(n) for n in counts)


def rolled_out(name: str) -> bool:
    """The one definition of "rolled out" (the rollout_state filter), read with kubectl."""
    deployment = json.loads(
        run(kubectl("-n", NAMESPACE, "get", f"deployment/{name}", "-o", "json"))
    )
    return rollout_state(deployment) == "complete"


def cluster_running() -> bool:
    probe = subprocess.run(
        kubectl("get", "--raw=/readyz"), capture_output=True, text=True, check=False
    )
    return probe.returncode == 0 and probe.stdout.strip() == "ok"


def delete_namespace() -> None:
    run(kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true"))


def one_round(objects: Path, deployments: list[str], floor: Path) -> dict[str, float]:
    times: dict[str, float] = {}
    times["ansible floor (one debug task)"], _ = timed(["ansible-playbook", str(floor)])
    delete_namespace()
    times["ansible fresh (to rollouts complete)"], _ = timed(playbook("deploy.yml"))
    times["ansible no-op"], out = timed(playbook("deploy.yml"))
    if changed(out) != 0:
        sys.exit(f"the no-op re-run changed something:\n{out}")
    playbook_mesh = playbook("deploy.yml", mesh=True)
    timed(playbook_mesh)  # adds the inventory's mesh policies
    times["ansible no-op, with the mesh policies"], out = timed(playbook_mesh)
    if changed(out) != 0:
        sys.exit(f"the no-op re-run with mesh policies changed something:\n{out}")
    times["ansible undeploy (until gone)"], _ = timed(playbook("undeploy.yml"))

    start = time.perf_counter()
    run(kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", str(objects)))
    for name in deployments:
        wait_for(lambda name=name: rolled_out(name), 300, f"deployment/{name} rolled out")
    times["kubectl fresh (apply, until rolled out)"] = time.perf_counter() - start
    times["kubectl no-op"], _ = timed(
        kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", str(objects))
    )
    delete_namespace()
    return times


def main() -> None:
    started_here = not cluster_running()
    if started_here:
        print(">> starting the local cluster (make cluster-up)", flush=True)
        run(["make", "--no-print-directory", "cluster-up"], timeout=3600)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            objects = Path(tmp) / "objects.yml"
            floor = Path(tmp) / "floor.yml"
            floor.write_text("- {hosts: all, gather_facts: false, tasks: [debug: {msg: floor}]}\n")
            run([*playbook("render.yml"), "-e", f"playground_render_dest={objects}"])
            rendered = [o for o in yaml.safe_load_all(objects.read_text()) if o]
            deployments = [o["metadata"]["name"] for o in rendered if o["kind"] == "Deployment"]
            count = len(rendered)
            print(
                f">> {count} objects ({len(deployments)} Deployments) in namespace {NAMESPACE},"
                f" {RUNS} runs",
                flush=True,
            )
            rounds = []
            for i in range(RUNS):
                rounds.append(one_round(objects, deployments, floor))
                print(f"   run {i + 1}/{RUNS} done", flush=True)
    finally:
        if started_here:
            run(["make", "--no-print-directory", "cluster-down"])

    print(f"\nDeploy benchmark ({count} objects, {RUNS} runs, wall time in seconds)")
    print(f"{'step':42} {'median':>8} {'best':>8}")
    medians = {}
    for step in rounds[0]:
        values = [r[step] for r in rounds]
        medians[step] = statistics.median(values)
        print(f"{step:42} {medians[step]:8.2f} {min(values):8.2f}")
    floor = medians["ansible floor (one debug task)"]
    ratio = medians["ansible no-op, with the mesh policies"] / floor
    verdict = "met" if ratio <= GOAL_FLOOR_RATIO else "NOT met"
    print(
        f"no-op with the mesh policies / ansible floor: {ratio:.1f}x"
        f" (goal <= {GOAL_FLOOR_RATIO:.0f}x: {verdict})"
    )
    kubectl_ratio = medians["ansible no-op"] / medians["kubectl no-op"]
    print(f"no-op ansible / kubectl: {kubectl_ratio:.1f}x")


if __name__ == "__main__":
    main()
