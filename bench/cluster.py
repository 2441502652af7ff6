"""Local cluster benchmark: build times, warm start and stop of cluster/cluster.sh.

Warm start: `cluster.sh up` with binaries and PKI in place, from no process running to /readyz
"ok", every node Ready and the default ServiceAccount made. Stop: `cluster.sh down` until no
process of the cluster is left. BENCH_CLUSTER_RUNS (default 3) down/up cycles; the cluster is
left running or stopped as it was found. Goal: warm start under 60 s.

Builds are not re-run (a cold Kubernetes build is ~30 min on 2 cores): the table shows what each
build recorded in ~/.cache/mesh-playground/<component>/<version>/build-info.env, with how many
packages it had to compile (a cold build compiles nearly all of them, a build over a warm Go
cache only links), and the last cold build's record (cold-build-info.env) when that is older.
BENCH_CLUSTER_COLD_BUILD=1 measures a cold build now, into a temporary empty Go build cache and
output directory (Go modules already downloaded are reused), and keeps its record.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paths  # first: the test helpers below are found through it

sys.path.insert(0, str(paths.REPO / "tests" / "cluster"))

from caches import cache_root
from cluster_live import CLUSTER_SH, REPO, marked_processes, versions

RUNS = int(os.environ.get("BENCH_CLUSTER_RUNS", "3"))
WARM_START_GOAL = 60.0
COLD_STAMP = "cold-build-info.env"  # build.sh keeps a cold build's record under this name
BUILDS = {"kubernetes": ("k8s", "KUBERNETES_VERSION"), "etcd": ("etcd", "ETCD_VERSION")}
BUILDS["kwok"] = ("kwok", "KWOK_VERSION")


def build_info(cache: Path, component: str, stamp_name: str = "build-info.env") -> dict[str, str]:
    directory, version_key = BUILDS[component]
    stamp = cache / directory / versions()[version_key] / stamp_name
    if not stamp.exists():
        return {}
    return dict(line.split("=", 1) for line in stamp.read_text().splitlines() if "=" in line)


def print_builds(title: str, cache: Path) -> None:
    print(f"\n{title}\n")
    columns = ["build     ", "version ", "took    ", "packages compiled", "Go cache"]
    columns += ["built at (UTC)      ", "load"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("-" * (len(column) + 2) for column in columns) + "|")
    for component in BUILDS:
        last, cold = build_info(cache, component), build_info(cache, component, COLD_STAMP)
        if not last:
            print(f"| {component:<10} | (not built yet: make cluster-build) |")
        # The last build, and the last cold one when that was an earlier build.
        for info in (last, cold) if cold and cold != last else (last,):
            if info:
                print_build_row(component, info)


def print_build_row(component: str, info: dict[str, str]) -> None:
    seconds, compiled = int(info["BUILD_SECONDS"]), int(info["PACKAGES_COMPILED"])
    total = int(info["PACKAGES_TOTAL"])
    kind = "cold" if compiled >= 0.8 * total else "warm" if compiled < 0.1 * total else "partly"
    print(
        f"| {component:<10} | {info['VERSION']:<8} | {seconds // 60:>2}m{seconds % 60:02d}s   "
        f"| {compiled:>6} of {total:>6}  | {kind:<8} | {info['BUILT_AT']} "
        f"| {info.get('LOAD_AVERAGE', '?'):>4} |"
    )


def cold_build() -> None:
    with tempfile.TemporaryDirectory(prefix="mesh-playground-cold-") as temp:
        # Builds into <temp>/mesh-playground, the cache root under XDG_CACHE_HOME=<temp>.
        env = os.environ | {"XDG_CACHE_HOME": temp, "GOCACHE": f"{temp}/go-build"}
        subprocess.run([str(REPO / "cluster" / "build.sh")], env=env, check=True)
        print_builds("Cold build, measured now (empty Go build cache):", cache_root(env))
        for directory, version_key in BUILDS.values():  # keep the record to quote
            built = cache_root(env) / directory / versions()[version_key] / COLD_STAMP
            if built.exists():
                kept = cache_root() / directory / versions()[version_key]
                kept.mkdir(parents=True, exist_ok=True)
                shutil.copy(built, kept / COLD_STAMP)
        # The Go cache is full of read-only files; make them removable.
        subprocess.run(["chmod", "-R", "u+w", temp], check=False)
        shutil.rmtree(temp, ignore_errors=True)


def timed(command: str) -> float:
    started = time.monotonic()
    subprocess.run([str(CLUSTER_SH), command], check=True, capture_output=True, text=True)
    return time.monotonic() - started


def main() -> None:
    status = subprocess.run([str(CLUSTER_SH), "status"], capture_output=True, check=False)
    was_running = status.returncode == 0
    if os.environ.get("BENCH_CLUSTER_COLD_BUILD") == "1":
        cold_build()
    print_builds("Local cluster builds, as recorded by cluster/build.sh:", cache_root())

    timed("up")  # builds and PKI in place, so every measured start below is warm
    starts, stops = [], []
    for _ in range(RUNS):
        stops.append(timed("down"))
        if marked_processes():
            sys.exit(f"cluster-down left processes behind: {marked_processes()}")
        starts.append(timed("up"))
    if not was_running:
        timed("down")

    mode = os.environ.get("CLUSTER_NODE_MODE", "kwok")
    load = os.getloadavg()[0]  # 2 shared cores: the numbers depend on what else runs
    print(f"\nLocal cluster start/stop ({mode} nodes, {RUNS} runs, seconds, load {load:.1f}):\n")
    print("| step        | median | min   | max   |")
    print("|-------------|--------|-------|-------|")
    for name, values in (("warm start", starts), ("stop", stops)):
        print(
            f"| {name:<11} | {statistics.median(values):>6.1f} | {min(values):>5.1f} "
            f"| {max(values):>5.1f} |"
        )
    verdict = "met" if statistics.median(starts) < WARM_START_GOAL else "MISSED"
    print(f"\nGoal: warm start under {WARM_START_GOAL:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
