"""Mesh benchmark: what the Istio sidecars cost a call, at a fixed request rate, same run.

Deploys the apps twice on the running local cluster (real node, Istio installed: `make istio`),
one replica per workload: namespace bench-mesh-off without sidecars (playground_mesh=false)
and bench-mesh-on with them (the inventory's mesh policies: DestinationRule subsets and the
default 50/50 v1/v2 split). fortio (built from its Go module into the cache) holds a fixed rate
below the stack's saturation against the proxy's NodePort on 127.0.0.1 in each namespace, in
turns, BENCH_RUNS times. With the observability stack installed (docs/observe.md), the sidecars
run once with telemetry (request metrics and tracing at the deployed sampling) and once without
it (its Telemetry and EnvoyFilter taken away for the run, then put back); the table shows the
median run of each figure:
- latency:  fortio's p50/p90/p99, without and with sidecars (and telemetry), and what they add;
- sidecars: the istio-proxy containers' CPU (usageCoreNanoSeconds over the run) and memory
            (largest workingSetBytes during the run), from the kubelet's summary API through
            the API server, per sidecar and normalised per 1,000 requests/s through it;
- apps:     the app containers' CPU the same way, with and without sidecars;
- hops:     the sidecars' access logs (ms resolution): the mean time each Envoy hop spent
            around its upstream, i.e. what the sidecars themselves add to a call.
The goal figures (Istio's published ones) are printed beside ours. The namespaces are removed
at the end (BENCH_KEEP=1 keeps them).
Environment: BENCH_QPS (default 200), BENCH_CONNECTIONS (8), BENCH_SECONDS (30),
BENCH_WARMUP (5 s at the same rate before each run), BENCH_RUNS (3; or BENCH_ROUNDS).
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KUBECTL = REPO / ".cluster" / "bin" / "kubectl"
KUBECONFIG = REPO / ".cluster" / "kubeconfig"
# The newest fortio whose dependencies the Go module proxy serves (from 1.69 on fortio needs
# grol.io/grol, which it does not).
FORTIO_VERSION = "v1.68.2"
NAN = float("nan")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mesh-playground"
FORTIO = CACHE / "fortio" / FORTIO_VERSION / "bin" / "fortio"
QPS = int(os.environ.get("BENCH_QPS", "200"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "30"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "5"))
RUNS = int(os.environ.get("BENCH_RUNS") or os.environ.get("BENCH_ROUNDS") or "3")
OFF, ON = "bench-mesh-off", "bench-mesh-on"
# The same namespace as ON, measured while the mesh-wide telemetry objects are taken away.
QUIET = "bench-mesh-on, telemetry off"
SIDECAR = "istio-proxy"
# What mesh_observability puts in Istio's root namespace: tracing and the request metrics.
TELEMETRY = (("telemetry", "mesh-default"), ("envoyfilter", "mesh-playground-request-metrics"))
# Istio's published figures: a sidecar with 2 worker threads, per 1,000 rps of 1 KB requests
# (Istio 1.24); the two sidecars of a call at p90/p99 (Istio 1.12, default config).
GOAL_VCPU, GOAL_MB = 0.20, 60.0
GOAL_ADDED_MS = {50: None, 90: 1.7, 99: 2.7}
PERCENTILES = (50, 90, 99)
ENV = dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1")


def run(*argv, check=True):
    result = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        sys.exit(
            f"{' '.join(map(str, argv))} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        )
    return result


def kubectl(*args, check=True):
    return run(
        KUBECTL, "--kubeconfig", KUBECONFIG, "--context", "mesh-playground", *args, check=check,
    ).stdout  # fmt: skip


def build_fortio():
    """fortio from its Go module into the cache (GOBIN there); a cold build shows go's lines."""
    if FORTIO.is_file():
        return
    print(f">> building fortio {FORTIO_VERSION} into {FORTIO.parent} (go install, ~1 min cold)")
    FORTIO.parent.mkdir(parents=True, exist_ok=True)
    env = dict(ENV, GOBIN=str(FORTIO.parent), CGO_ENABLED="0", GOFLAGS="-mod=mod")
    with subprocess.Popen(
        ["go", "install", "-v", f"fortio.org/fortio@{FORTIO_VERSION}"], env=env,
        cwd=tempfile.gettempdir(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as go:  # fmt: skip
        built = 0
        for line in go.stdout:
            if line.startswith("go: "):  # downloads, errors
                print("   ", line.rstrip(), flush=True)
            else:
                built += 1
                if built % 25 == 0:
                    print(f"    {built} packages compiled", flush=True)
    if go.returncode != 0 or not FORTIO.is_file():
        sys.exit(f"go install fortio.org/fortio@{FORTIO_VERSION} failed")


def deploy(namespace, mesh):
    run("ansible-playbook", "playbooks/deploy.yml", "-e", f"playground_namespace={namespace}",
        "-e", f"playground_mesh={str(mesh).lower()}", "-e", "app_workloads_replicas=1")  # fmt: skip
    port = kubectl(
        "-n", namespace, "get", "service", "proxy", "-o", "jsonpath={.spec.ports[0].nodePort}"
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while run("curl", "-sf", "--max-time", "5", url, check=False).returncode != 0:
        if time.monotonic() > deadline:
            sys.exit(f"no answer from the proxy at {url} (namespace {namespace})")
        time.sleep(1)
    return url


def summary(node):
    """{(namespace, pod, container): (cpu time s, cpu ns, working set bytes)} from the kubelet."""
    data = json.loads(kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/stats/summary"))
    found = {}
    for pod in data["pods"]:
        ref = pod["podRef"]
        if ref["namespace"] not in (ON, OFF):
            continue
        for container in pod.get("containers", []):
            cpu, memory = container.get("cpu", {}), container.get("memory", {})
            if "usageCoreNanoSeconds" not in cpu:
                continue
            stamp = datetime.fromisoformat(cpu["time"].replace("Z", "+00:00")).timestamp()
            key = (ref["namespace"], ref["name"], container["name"])
            found[key] = (stamp, cpu["usageCoreNanoSeconds"], memory.get("workingSetBytes", 0))
    return found


class Sampler(threading.Thread):
    """Polls the summary API about every second until stopped."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node, self.samples, self.stop = node, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append(summary(self.node))
            self.stop.wait(1)

    def usage(self, started, ended):
        """{container key: (vCPU over the run, largest working set MB)}."""
        result = {}
        for key in set().union(*self.samples):
            points = sorted({s[key] for s in self.samples if key in s})
            inside = [p for p in points if started + 1 <= p[0] <= ended] or points
            first, last = inside[0], inside[-1]
            seconds = last[0] - first[0]
            vcpu = (last[1] - first[1]) / 1e9 / seconds if seconds > 0 else NAN
            result[key] = (vcpu, max(p[2] for p in inside) / 1e6)
        return result


def fortio(url, seconds, json_path=None):
    argv = [FORTIO, "load", "-quiet", "-qps", str(QPS), "-c", str(CONNECTIONS), "-t", f"{seconds}s",
            "-p", ",".join(map(str, PERCENTILES)), "-uniform"]  # fmt: skip
    if json_path:
        argv += ["-json", json_path]
    run(*argv, url)
    if json_path:
        return json.loads(Path(json_path).read_text())
    return None


def host_busy():
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


# Istio's default access log line: ... "GET / HTTP/1.1" CODE FLAGS DETAILS TERMINATION "FAILURE"
# BYTES_IN BYTES_OUT DURATION UPSTREAM_SERVICE_TIME ... CLUSTER (inbound|... or outbound|...) ...
LOG_LINE = re.compile(
    r'" (\d{3}) \S+ \S+ \S+ "[^"]*" \d+ \d+ (\d+) (\d+|-) .* ((?:in|out)bound\|\S*) '
)


def hop_times(pods, since):
    """{(app, direction): (requests, mean DURATION ms, mean upstream service time ms)}."""
    hops = {}
    for app, pod in pods:
        logs = kubectl("-n", ON, "logs", pod, "-c", SIDECAR, f"--since={since}s")
        for line in logs.splitlines():
            match = LOG_LINE.search(line)
            if not match or match[3] == "-":
                continue
            direction = match[4].split("|", 1)[0]
            hops.setdefault((app, direction), []).append((int(match[2]), int(match[3])))
    return {
        key: (len(v), statistics.fmean(d for d, _ in v), statistics.fmean(u for _, u in v))
        for key, v in hops.items()
    }


class Telemetry:
    """Takes the mesh-wide telemetry objects away (and back), waiting until the proxy's sidecar
    has (or no longer has) the stats access logger in its listeners."""

    def __init__(self):
        self.saved = []
        for kind, name in TELEMETRY:
            found = kubectl("-n", "istio-system", "get", kind, name, "-o", "json", check=False)
            if found:
                obj = json.loads(found)
                for key in ("resourceVersion", "uid", "creationTimestamp", "generation",
                            "managedFields"):  # fmt: skip
                    obj["metadata"].pop(key, None)
                self.saved.append(obj)

    def __bool__(self):
        return len(self.saved) == len(TELEMETRY)

    def listeners_have_stats(self):
        pod = kubectl("-n", ON, "get", "pods", "-l", "app=proxy", "-o",
                      "jsonpath={.items[0].metadata.name}")  # fmt: skip
        dump = kubectl("-n", ON, "exec", pod, "-c", SIDECAR, "--", "pilot-agent", "request", "GET",
                       "config_dump?resource=dynamic_listeners", check=False)  # fmt: skip
        return "envoy.access_loggers.stats" in dump

    def _wait(self, present):
        deadline = time.monotonic() + 60
        while self.listeners_have_stats() != present:
            if time.monotonic() > deadline:
                sys.exit(f"the proxy's sidecar did not {'get' if present else 'drop'} the request"
                         " metrics within 60 s")  # fmt: skip
            time.sleep(1)

    def off(self):
        for kind, name in TELEMETRY:
            kubectl("-n", "istio-system", "delete", kind, name, "--ignore-not-found")
        self._wait(False)

    def on(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as manifest:
            json.dump({"apiVersion": "v1", "kind": "List", "items": self.saved}, manifest)
            manifest.flush()
            kubectl("apply", "--server-side", "--field-manager=mesh-playground",
                    "--force-conflicts", "-f", manifest.name)  # fmt: skip
        self._wait(True)


def measure(namespace, url, node):
    fortio(url, WARMUP)
    sampler = Sampler(node)
    sampler.start()
    time.sleep(1.5)  # a first sample before the load
    busy0, total0 = host_busy()
    started = time.time()
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        result = fortio(url, SECONDS, out.name)
    ended = time.time()
    busy1, total1 = host_busy()
    time.sleep(1.5)
    sampler.stop.set()
    sampler.join()
    percentiles = {
        int(p["Percentile"]): p["Value"] * 1000 for p in result["DurationHistogram"]["Percentiles"]
    }
    pods = json.loads(kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"]
    live = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
    usage = {
        k[1:]: v
        for k, v in sampler.usage(started, ended).items()
        if k[0] == namespace and k[1] in live
    }
    ok = result["RetCodes"].get("200", 0)
    return {
        "rps": result["ActualQPS"],
        "errors": result["DurationHistogram"]["Count"] - ok,
        "p": percentiles,
        "usage": usage,
        "host_busy": (busy1 - busy0) / max(total1 - total0, 1),
        "seconds": ended - started,
    }


def app_of(pod):
    return pod.rsplit("-", 2)[0]  # proxy-<rs>-<id>, webserverv1-<rs>-<id>


def main():
    if not KUBECTL.exists() or run(KUBECTL, "--kubeconfig", KUBECONFIG, "get", "--raw", "/readyz",
                                   check=False).returncode != 0:  # fmt: skip
        sys.exit(
            "the local cluster is not running: make cluster-up CLUSTER_NODE_MODE=real, make istio"
        )
    if "real" not in (REPO / ".cluster" / "run" / "node-mode").read_text():
        sys.exit("the cluster runs in kwok node mode: CLUSTER_NODE_MODE=real make cluster-up")
    if not kubectl("-n", "istio-system", "get", "deploy", "istiod", "-o", "name", check=False):
        sys.exit("Istio is not installed: make istio")
    build_fortio()
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
    print(f">> deploying {OFF} (no sidecars) and {ON} (sidecars, 50/50 split), 1 replica each")
    urls = {}
    try:
        urls[OFF] = deploy(OFF, mesh=False)
        urls[ON] = deploy(ON, mesh=True)
        telemetry = Telemetry()
        modes = (OFF, ON, QUIET) if telemetry else (OFF, ON)
        if not telemetry:
            print(">> no observability stack (mesh_observability): sidecars measured as they are")
        runs = {mode: [] for mode in modes}
        hops = []
        for number in range(RUNS):
            order = modes if number % 2 == 0 else modes[::-1]  # alternate: load drifts
            for mode in order:
                namespace = OFF if mode == OFF else ON
                print(f">> run {number + 1}/{RUNS}: {mode}, fortio -qps {QPS} -c {CONNECTIONS}"
                      f" -t {SECONDS}s (after {WARMUP} s warm-up)", flush=True)  # fmt: skip
                if mode == QUIET:
                    telemetry.off()
                try:
                    runs[mode].append(measure(namespace, urls[namespace], node))
                finally:
                    if mode == QUIET:
                        telemetry.on()
                if mode == ON:
                    pods = sorted(
                        {(app_of(p), p) for p, c in runs[ON][-1]["usage"] if c == SIDECAR}
                    )
                    hops.append(hop_times(pods, SECONDS + 1))
        report(runs, hops)
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            for namespace in urls or (OFF, ON):
                run("ansible-playbook", "playbooks/undeploy.yml",
                    "-e", f"playground_namespace={namespace}", check=False)  # fmt: skip


def median(values):
    values = [v for v in values if v == v]  # no NaN
    return statistics.median(values) if values else NAN


def per_app(results, container):
    """{app: (median vCPU, median MB)} of one container name over the runs."""
    apps = sorted({app_of(pod) for r in results for pod, c in r["usage"] if c == container})
    out = {}
    for app in apps:
        picks = [
            v
            for r in results
            for (pod, c), v in r["usage"].items()
            if c == container and app_of(pod) == app
        ]
        out[app] = (median([v[0] for v in picks]), median([v[1] for v in picks]))
    return out


def table(header, rows):
    """A Markdown table, columns as wide as their widest cell; numbers right-aligned."""
    cells = [list(map(str, r)) for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for number, r in enumerate(cells):
        pairs = enumerate(zip(r, widths, strict=True))
        line = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        print("| " + " | ".join(line) + " |")
        if number == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def report(runs, hops):
    off, on = runs[OFF], runs[ON]
    quiet = runs.get(QUIET)
    rps = {ns: median([r["rps"] for r in runs[ns]]) for ns in runs}
    print(f"\nMesh benchmark: fortio {FORTIO_VERSION} -qps {QPS} -c {CONNECTIONS} -t {SECONDS}s"
          f" -> proxy NodePort on 127.0.0.1 -> webserver v1/v2 (1 replica each),"
          f" median of {RUNS} runs")  # fmt: skip
    busy = median([r["host_busy"] for rs in runs.values() for r in rs]) * 100
    print(f"machine: 2 cores, {busy:.0f}% busy during the runs (every process on it),"
          f" load average now {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(
        "achieved: "
        + ", ".join(f"{rps[m]:.1f} rps {m}" for m in runs)
        + "; non-200: "
        + " / ".join(str(sum(r["errors"] for r in runs[m])) for m in runs)
        + "\n"
    )

    # Sidecars alone: telemetry off when it was measured; telemetry: what it adds on top.
    bare = quiet or on
    rows = []
    for p in PERCENTILES:
        added = median([b["p"][p] - a["p"][p] for a, b in zip(off, bare, strict=True)])
        goal = f"{GOAL_ADDED_MS[p]:.1f}" if GOAL_ADDED_MS[p] else "-"
        row = [f"p{p}", f"{median([r['p'][p] for r in off]):.2f}"]
        if quiet:
            by_telemetry = median([b["p"][p] - a["p"][p] for a, b in zip(quiet, on, strict=True)])
            row += [f"{median([r['p'][p] for r in quiet]):.2f}"]
        row += [f"{median([r['p'][p] for r in on]):.2f}", f"{added:.2f}"]
        if quiet:
            row += [f"{by_telemetry:.2f}"]
        rows.append((*row, goal))
    header = ["latency (ms)", "without sidecars"]
    if quiet:
        header += ["sidecars, telemetry off"]
    header += ["sidecars" + (", telemetry on" if quiet else ""), "added by sidecars"]
    if quiet:
        header += ["added by telemetry"]
    table([*header, "goal: added"], rows)
    print("(added: median over the runs of the difference, each pair run back to back)\n")

    rows, totals = [], {}
    modes = [QUIET, ON] if quiet else [ON]
    for mode in modes:
        sidecars = per_app(runs[mode], SIDECAR)
        webservers = max(len(sidecars) - 1, 1)
        total_cpu, total_mb = 0.0, 0.0
        for app, (vcpu, mb) in sidecars.items():
            # The proxy's sidecar sees every call twice (in, out); the split halves the rest.
            through = rps[mode] if app == "proxy" else rps[mode] / webservers
            name = f"{app} ({'in+out' if app == 'proxy' else 'in'})"
            if quiet:
                name += ", telemetry " + ("off" if mode == QUIET else "on")
            total_cpu, total_mb = total_cpu + vcpu, total_mb + mb
            rows.append((name, f"{through:.0f}", f"{vcpu:.3f}", f"{vcpu * 1000 / through:.3f}",
                         f"{mb:.1f}", f"{mb * 1000 / through:.0f}",
                         f"{GOAL_VCPU:.2f} vCPU, {GOAL_MB:.0f} MB"))  # fmt: skip
        totals[mode] = (total_cpu, total_mb)
        name = "all of a call (sum)" + (f", telemetry {'off' if mode == QUIET else 'on'}"
                                        if quiet else "")  # fmt: skip
        rows.append((name, f"{rps[mode]:.0f}", f"{total_cpu:.3f}",
                     f"{total_cpu * 1000 / rps[mode]:.3f}", f"{total_mb:.1f}",
                     f"{total_mb * 1000 / rps[mode]:.0f}",
                     f"{2 * GOAL_VCPU:.2f} vCPU, {2 * GOAL_MB:.0f} MB"))  # fmt: skip
    header = ("sidecar (istio-proxy)", "rps through it", "vCPU", "vCPU per 1,000 rps",
              "MB working set", "MB per 1,000 rps", "goal per 1,000 rps")  # fmt: skip
    table(header, rows)
    print("(MB per 1,000 rps divides the working set by the rate; most of it is a baseline that"
          " does not grow with the rate, so compare the working set with 60 MB too)")  # fmt: skip
    if quiet:
        (cpu_off, mb_off), (cpu_on, mb_on) = totals[QUIET], totals[ON]
        print(f"telemetry (metrics + tracing) costs the sidecars of a call {cpu_on - cpu_off:+.3f}"
              f" vCPU and {mb_on - mb_off:+.1f} MB at {rps[ON]:.0f} rps")  # fmt: skip
    print()

    rows = []
    for container in ("proxy", "webserver"):
        a, b = per_app(off, container), per_app(bare, container)
        for app in sorted(set(a) | set(b)):
            va, vb = a.get(app, (NAN,))[0], b.get(app, (NAN,))[0]
            rows.append((app, f"{va:.3f}", f"{vb:.3f}", f"{va * 1000 / rps[OFF]:.3f}",
                         f"{vb * 1000 / rps[QUIET if quiet else ON]:.3f}"))  # fmt: skip
    header = ("app container", "vCPU without", "vCPU with", "per 1,000 calls without", "with")
    table(header, rows)

    if hops:
        print("\nEnvoy hops with sidecars, from their access logs (ms resolution, means):\n")
        rows = []
        for key in sorted({k for h in hops for k in h}):
            parts = [h[key] for h in hops if key in h]
            count = sum(n for n, _, _ in parts)
            whole = sum(n * d for n, d, _ in parts) / count
            upstream = sum(n * u for n, _, u in parts) / count
            rows.append((" ".join(key), count, f"{whole:.2f}", f"{upstream:.2f}",
                         f"{whole - upstream:.2f}"))  # fmt: skip
        header = ("hop", "requests", "whole request (ms)", "its upstream (ms)", "the sidecar's own")
        table(header, rows)


if __name__ == "__main__":
    main()
