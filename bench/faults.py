"""Faults under load: what a client of the playground sees while a part of it fails.

Needs the playground deployed on the real node (`make deploy`). A steady BENCH_FAULT_RPS (50)
requests per second go to the ingress gateway's NodePort (`make url`), each a new connection
given 5 s; an answer counts as good when it is a 200 whose body is the proxy relaying a
webserver's 200. Each fault runs under that load: 5 s before it, the fault, and BENCH_FAULT_AFTER
(30) s after it is over. The faults, in this order:
- istiod down:        Deployment istiod scaled to 0 for BENCH_ISTIOD_DOWN (60) s, then back to 1
                      and Available; the data plane keeps its configuration and certificates.
                      Then a policy applied after it is back must act: `make step
                      STEP=virtualservice/route-v1` strictly (200/200 answers from V1).
- webserver killed:   one webserver pod deleted at once (grace 0: its processes are killed), with
                      the retry-5xx set (3 attempts on any 5xx, reset or refused connection) and
                      without it (the inventory's policies: Istio's default retries only).
- proxy deleted:      the proxy's one pod deleted as `kubectl delete pod` does (graceful); its
                      Deployment replaces it.
- control plane:      kube-apiserver and etcd stopped and started (cluster/cluster.sh restart).
- node restart:       `cluster/cluster.sh down` then `up` with the state kept: every process of
                      the cluster stops, every pod goes; the apps must answer again by
                      themselves within 3 minutes, and the objects (UIDs) must be the same.
The table: requests sent during the window, failed, the longest run of failures (s, first to last
failed request), and when answers were good again after the fault began (s). Exit 1 when a
fault's expectation does not hold. Arguments name a subset: istiod, webserver-retry,
webserver, proxy, control-plane, node.
"""

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import paths  # first: the test helpers below are found through it
from mesh import table
from polling import wait_for
from realnode_shell import CLUSTER_SH, kubectl, run

REPO = paths.REPO
RPS = int(os.environ.get("BENCH_FAULT_RPS", "50"))
AFTER = int(os.environ.get("BENCH_FAULT_AFTER", "30"))
ISTIOD_DOWN = int(os.environ.get("BENCH_ISTIOD_DOWN", "60"))
BEFORE = 5
NAMESPACE = "mesh-playground"
# Every object the playground's deploys created, by namespace: the same UIDs after a node restart.
KINDS = ",".join((
    "deployments", "services", "serviceaccounts", "configmaps", "networkpolicies",
    "virtualservices", "destinationrules", "gateways",
))  # fmt: skip
OWN_NAMESPACES = (NAMESPACE, "istio-system", "istio-ingress", "mesh-observability")
NODE_BACK_LIMIT = 180
URL_SH = str(REPO / "cluster" / "node-real" / "url.sh")


class Load:
    """RPS requests per second to `url`, each on a new connection, until stopped; it records
    (sent at, good) of each."""

    def __init__(self, url):
        self.url = url
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=RPS * 6)
        self.thread = threading.Thread(target=self._pace, daemon=True)

    def _one(self, sent):
        good = answers(self.url)
        with self.lock:
            self.results.append((sent, good))

    def _pace(self):
        start, n = time.monotonic(), 0
        while not self.stopping.is_set():
            self.pool.submit(self._one, time.monotonic())
            n += 1
            time.sleep(max(0.0, start + n / RPS - time.monotonic()))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()
        self.pool.shutdown(wait=True)


def figures(results, since):
    """From (sent at, good) pairs: how many were sent and failed, the span from the first failed
    request to the last (s), and when answers were good again, counted from `since` (s)."""
    results = sorted(results)
    failed = [t for t, good in results if not good]
    back = 0.0
    if failed:
        later = [t for t, good in results if good and t > failed[-1]]
        back = (later[0] - since) if later else float("nan")
    return {
        "sent": len(results),
        "failed": len(failed),
        "outage": (failed[-1] - failed[0]) if failed else 0.0,
        "back": back,
    }


def pods(selector, namespace=NAMESPACE):
    out = kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json")
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def ready(pod):
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


def sidecar_retries_5xx(on):
    """Whether the proxy's sidecar has the retry-5xx route configuration (`on`) or not."""
    proxy = pods("app=proxy")[0]["metadata"]["name"]
    dump = kubectl("-n", NAMESPACE, "exec", proxy, "-c", "istio-proxy", "--",
                   "pilot-agent", "request", "GET", "config_dump?resource=dynamic_route_configs",
                   check=False)  # fmt: skip
    return ('"retry_on": "5xx"' in dump) == on


def policies(*extra_sets):
    args = ["ansible-playbook", "playbooks/policies.yml"]
    if extra_sets:
        args += ["-e", json.dumps({"mesh_policies_sets": ["subsets", "split", *extra_sets]})]
    run(*args)
    wait_for(lambda: sidecar_retries_5xx(bool(extra_sets)), 60,
             f"the proxy's sidecar {'with' if extra_sets else 'without'} retry-5xx", 1)  # fmt: skip


def istiod_down(_notes):
    kubectl("-n", "istio-system", "scale", "deployment/istiod", "--replicas=0")
    wait_for(lambda: not pods("app=istiod", "istio-system"), 120, "istiod's pod gone", 1)
    time.sleep(ISTIOD_DOWN)  # the fault's duration, not a wait for something to happen
    kubectl("-n", "istio-system", "scale", "deployment/istiod", "--replicas=1")
    kubectl("-n", "istio-system", "rollout", "status", "deployment/istiod", "--timeout=300s")


def policy_after_istiod():
    result = run("ansible-playbook", "playbooks/step.yml", "-e", "step=virtualservice/route-v1",
                 "-e", "step_strict=true", check=False)  # fmt: skip
    return "acts (route-v1, strict)" if result.returncode == 0 else "DID NOT ACT (route-v1)"


def kill_webserver(_notes):
    victim = pods("app=webserver")[0]["metadata"]["name"]
    kubectl("-n", NAMESPACE, "delete", "pod", victim, "--grace-period=0", "--force", "--wait=false")


def delete_proxy(_notes):
    old = pods("app=proxy")[0]["metadata"]["name"]
    kubectl("-n", NAMESPACE, "delete", "pod", old, "--wait=false")

    def replaced():
        return any(ready(p) for p in pods("app=proxy") if p["metadata"]["name"] != old)

    wait_for(replaced, 180, "a new proxy pod Ready", 1)


def restart_control_plane(_notes):
    run(str(CLUSTER_SH), "restart", "kube-apiserver", "etcd")


def uids():
    found = {}
    for namespace in OWN_NAMESPACES:
        out = kubectl("-n", namespace, "get", KINDS, "-o", "json", check=False) or '{"items": []}'
        for item in json.loads(out)["items"]:
            meta = item["metadata"]
            found[(item["kind"], namespace, meta["name"])] = meta["uid"]
    return found


def restart_node(notes, url):
    """Down, then up: returns when `up` began (the 3 minutes count from there)."""
    started = time.monotonic()
    run(str(CLUSTER_SH), "down")
    notes.append(f"down took {time.monotonic() - started:.0f} s, left {leftovers()}")
    up = time.monotonic()
    run(str(CLUSTER_SH), "up")
    notes.append(f"up took {time.monotonic() - up:.0f} s")
    # The window goes on until the apps answer again (or the limit is past).
    deadline = up + NODE_BACK_LIMIT
    while time.monotonic() < deadline and not answers(url):
        time.sleep(1)
    return up


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our gateway
            return answer.status == 200 and "with code 200" in answer.read().decode()
    except (OSError, urllib.error.URLError):
        return False


def leftovers():
    """What of the node's network policy is left on the host: iptables chains, ipsets, process."""
    chains = run("iptables-save", check=False).stdout.count(":KUBE-")
    sets = [n for n in run("ipset", "list", "-name", check=False).stdout.split() if "KUBE-" in n]
    process = run("pgrep", "-f", "bin/kube-router", check=False).stdout.split()
    return f"{chains} KUBE-* chains, {len(sets)} ipsets, {len(process)} kube-router processes"


def view_answers():
    """The live view's graph, read from Prometheus and the API without an error."""
    observe = run(URL_SH, "--observe", check=False).stdout
    view = next(
        (line.split()[-1] for line in observe.splitlines() if line.startswith("live view")), ""
    )
    try:
        with urllib.request.urlopen(view + "api/graph", timeout=5) as answer:  # noqa: S310
            return not any(json.loads(answer.read())["errors"].values())
    except (OSError, ValueError, KeyError):
        return False


def measure(url, name, fault, rows, expect, note=""):
    """Load through the window, the fault inside it; a row of the table. `fault(notes)` may
    return the moment its recovery counts from (else: when it began)."""
    print(f">> {name}", flush=True)
    notes = [note] if note else []
    with Load(url) as load:
        time.sleep(BEFORE)  # the steady state before the fault, part of the window
        began = time.monotonic()
        since = fault(notes) or began
        time.sleep(AFTER)  # the window's tail, as the issue asks: the fault plus 30 s
        found = figures(load.results, since)
    held = expect(found)
    verdict = ("" if held else "FAILED: ") + "; ".join(notes)
    outage, back = f"{found['outage']:.1f}", f"{found['back']:.1f}"
    rows.append([name, found["sent"], found["failed"], outage, back, verdict])
    print(f"   {found}", flush=True)
    return held


def main(chosen):
    url = run(URL_SH).stdout.strip()
    if not url.startswith("http://"):
        sys.exit(f"no gateway URL ({url!r}): deploy the playground first (make deploy)")
    rows, held = [], []
    if "istiod" in chosen:
        held.append(measure(url, f"istiod down {ISTIOD_DOWN} s", istiod_down, rows,
                            lambda f: f["failed"] == 0))  # fmt: skip
        rows[-1][-1] = "; ".join(
            filter(None, [rows[-1][-1], "policy after: " + policy_after_istiod()])
        )
        held.append("DID NOT" not in rows[-1][-1])
    if "webserver-retry" in chosen:
        policies("retry-5xx")
        held.append(measure(url, "webserver pod killed, retry-5xx", kill_webserver, rows,
                            lambda f: f["failed"] == 0))  # fmt: skip
        policies()
    if "webserver" in chosen:
        held.append(measure(url, "webserver pod killed, no retry-5xx", kill_webserver, rows,
                            lambda f: f["failed"] <= RPS * 10, "failures counted"))  # fmt: skip
    if "proxy" in chosen:
        held.append(measure(url, "proxy pod deleted", delete_proxy, rows,
                            lambda f: f["back"] <= 180, "what the client sees"))  # fmt: skip
    if "control-plane" in chosen:
        held.append(measure(url, "API server and etcd restarted", restart_control_plane, rows,
                            lambda f: f["failed"] == 0))  # fmt: skip
    if "node" in chosen:
        before = uids()
        held.append(measure(url, "node restarted (down + up)", lambda n: restart_node(n, url), rows,
                            lambda f: f["back"] <= NODE_BACK_LIMIT))  # fmt: skip
        after = uids()
        same = before == after
        rows[-1][-1] += f"; {len(after)} objects, {'same UIDs' if same else 'UIDs CHANGED'}"
        view = wait_for(
            view_answers, NODE_BACK_LIMIT, "the live view answering without an error", 1
        )
        rows[-1][-1] += "; the live view answers" if view else ""
        held.append(same)
    print(f"\nFaults under load: {RPS} requests/s to the ingress gateway ({url}), a new"
          f" connection each, 5 s timeout; window = {BEFORE} s before + the fault"
          f" + {AFTER} s after."
          " 'back after': from the fault (node: from `up` begun) to the first good answer after"
          " the last failed one.\n")  # fmt: skip
    table(["fault", "requests", "failed", "outage s", "back after s", "notes"], rows)
    return 0 if all(held) else 1


ALL = ("istiod", "webserver-retry", "webserver", "proxy", "control-plane", "node")

if __name__ == "__main__":
    unknown = set(sys.argv[1:]) - set(ALL)
    if unknown:
        sys.exit(f"unknown faults {sorted(unknown)}: choose from {', '.join(ALL)}")
    sys.exit(main(sys.argv[1:] or ALL))
