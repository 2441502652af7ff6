"""Real-node benchmark: images, node join, deploy to a first real answer, and requests/s
through the in-cluster proxy.

Needs root (the real node). Starts the cluster with CLUSTER_NODE_MODE=real if it is not
running and stops it again; leaves the apps deployed only if they were deployed before.
- images warm:   images/build.sh with every image cached (the usual case);
- images cold:   the same with the image store emptied (debootstrap of the base, the app
                 builds; wheels stay cached) -- only with BENCH_REALNODE_COLD=1 (2-4 min);
- node join:     cluster/cluster.sh up with the real node, from a stopped cluster with its
                 builds in place, until the Node is Ready;
- deploy:        from no apps to the first real answer through the proxy: images/build.sh
                 (cached), playbooks/deploy.yml, url.sh --answer -- `make deploy` on a warm
                 machine once the cluster runs;
- throughput:    wrk (2 threads, 16 connections, BENCH_REALNODE_SECONDS s) against the proxy's
                 NodePort URL, and against the webserver Service directly for comparison.
"""

import os
import re
import sys
import time

import paths  # first: the test helpers below are found through it
from caches import cache_root
from realnode_shell import CLUSTER_SH, kubectl, run

REPO = paths.REPO
BUILDAH_ROOT = cache_root() / "images" / "buildah-storage"
SECONDS = int(os.environ.get("BENCH_REALNODE_SECONDS", "10"))


def timed(*argv: str) -> float:
    started = time.monotonic()
    run(*argv)
    return time.monotonic() - started


def deployed() -> bool:
    found = kubectl("-n", "mesh-playground", "get", "deploy", "proxy", "-o", "name", check=False)
    return bool(found)


def wrk(url: str) -> str:
    out = run("wrk", "-t2", "-c16", f"-d{SECONDS}s", "--latency", url).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)  # the latency distribution line
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return (
        f"{float(rps[1]):>8.0f} | {p50[1]:>8} | {p99[1]:>8} | {errors[0] if errors else 'none':<12}"
    )


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench/realnode.py needs root (the real node): run it as root")
    run(str(REPO / "cluster" / "node-real" / "install-packages.sh"), "wrk")
    was_running = run(str(CLUSTER_SH), "status", check=False).returncode == 0
    rows = []

    if os.environ.get("BENCH_REALNODE_COLD") == "1":
        run("buildah", "--root", str(BUILDAH_ROOT), "rmi", "--all", "--force", check=False)
        rows.append(("images cold (store emptied)", timed("images/build.sh")))
    rows.append(("images warm (all cached)", timed("images/build.sh")))

    if was_running:
        run(str(CLUSTER_SH), "down")
    rows.append(("node join (cluster up, Node Ready)", timed(str(CLUSTER_SH), "up")))

    was_deployed = deployed()
    if was_deployed:
        run("ansible-playbook", "playbooks/undeploy.yml")
    started = time.monotonic()
    run("images/build.sh")
    run("ansible-playbook", "playbooks/deploy.yml", "-e", "@.cluster/images.yml")
    url = run("cluster/node-real/url.sh", "--answer").stdout.splitlines()[0]
    rows.append(("deploy to first real answer", time.monotonic() - started))

    service = kubectl("-n", "mesh-playground", "get", "svc", "webserver", "-o",
                      "jsonpath={.spec.clusterIP}:{.spec.ports[0].port}")  # fmt: skip
    through_proxy = wrk(url)
    direct = wrk(f"http://{service}/")

    print("\nReal node (2-core VM shared with the control plane; seconds, wall clock)\n")
    print("| step                                   | seconds |")
    print("|----------------------------------------|---------|")
    for name, seconds in rows:
        print(f"| {name:<38} | {seconds:>7.1f} |")
    print(f"\nThroughput, wrk -t2 -c16 -d{SECONDS}s from the host through real pods\n")
    print("| target                         |    req/s |      p50 |      p99 | errors       |")
    print("|--------------------------------|----------|----------|----------|--------------|")
    print(f"| proxy NodePort -> webserver    | {through_proxy} |")
    print(f"| webserver Service (direct)     | {direct} |")

    if not was_deployed:
        run("ansible-playbook", "playbooks/undeploy.yml")
    if not was_running:
        run(str(CLUSTER_SH), "down")


if __name__ == "__main__":
    main()
