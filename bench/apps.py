"""Apps benchmark: wrk on loopback against our apps and the seed's own Node.js pair, same run.

Configurations: each webserver alone, and proxy -> webserver, ours (gunicorn, the default
settings of apps/common/gunicorn_base.py, JSON access log on) and the seed's (node, code
extracted from the seed text into ~/.cache/mesh-playground/seed-node, `request` from npm).
Prints requests/s, p50 and p99 per configuration and the ratio of the proxied stacks.
Environment: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 32), BENCH_THREADS
(wrk threads, default 2), BENCH_SKIP_NODE=1 to measure ours only.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "apps"))

import seed_node
from apps_live import Gunicorn, free_port, raw_request, wait_for

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
WARMUP = 2


def wrk(port, duration):
    """requests/s, p50 ms, p99 ms, errors (non-2xx + socket errors) of one wrk run."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{duration}s",
            "--latency",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(percent):
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    return rps, latency(50), latency(99), errors


def measure(name, port, results):
    wrk(port, WARMUP)
    rps, p50, p99, errors = wrk(port, DURATION)
    results[name] = rps
    print(f"| {name:<34} | {rps:>9,.0f} | {p50:>7.2f} | {p99:>7.2f} | {errors:>6} |", flush=True)


def start_node(name, log_dir, **env):
    port = free_port()
    log = open(Path(log_dir) / f"node-{name}.log", "wb")
    process = seed_node.start(name, port, log, **env)

    def up():
        try:
            return raw_request(port, "/", timeout=2)
        except OSError:
            return None

    wait_for(up, f"the seed's node {name}")
    return process, port


def main():
    if not shutil.which("wrk"):
        sys.exit("bench/apps.py needs wrk: apt-get update && apt-get install -y wrk")
    skip_node = os.environ.get("BENCH_SKIP_NODE") == "1"
    if not skip_node and seed_node.missing():
        sys.exit(f"bench/apps.py needs the seed's Node apps: {seed_node.missing()}")
    load = os.getloadavg()[0]
    print(
        f"\n## Apps: wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}s on loopback, "
        f"{os.cpu_count()} CPUs, load average {load:.2f} at start"
    )
    if load > 1.0:
        print("   (the machine is busy: numbers are lower than on an idle machine)")
    print("| configuration                      |     req/s | p50 ms  | p99 ms  | errors |")
    print("|------------------------------------|-----------|---------|---------|--------|")
    results = {}
    stop = []
    with tempfile.TemporaryDirectory(prefix="bench-apps-") as logs:
        try:
            web = Gunicorn("webserver", logs, {"WEB_CONCURRENCY": None, "GUNICORN_THREADS": None})
            stop.append(web.start())
            measure("ours: webserver (gunicorn)", web.port, results)
            proxy = Gunicorn(
                "proxy",
                logs,
                {
                    "PROXYURL": f"http://127.0.0.1:{web.port}",
                    "WEB_CONCURRENCY": None,
                    "GUNICORN_THREADS": None,
                },
            )
            stop.append(proxy.start())
            measure("ours: proxy -> webserver", proxy.port, results)
            for server in stop:
                server.stop()
            stop.clear()
            if not skip_node:
                seed_node.prepare(with_request=True)
                node_web, node_web_port = start_node("webserver", logs)
                stop.append(node_web)
                measure("seed: webserver (node)", node_web_port, results)
                node_proxy, node_proxy_port = start_node(
                    "proxy", logs, PROXYURL=f"http://127.0.0.1:{node_web_port}"
                )
                stop.append(node_proxy)
                measure("seed: proxy -> webserver (node)", node_proxy_port, results)
        finally:
            for server in stop:
                if isinstance(server, Gunicorn):
                    server.stop()
                else:
                    server.terminate()
                    server.wait(timeout=10)
    if not skip_node:
        ratio = results["ours: proxy -> webserver"] / results["seed: proxy -> webserver (node)"]
        verdict = "goal met" if ratio >= 1.0 else "goal NOT met"
        print(f"\nours / seed, proxy -> webserver: {ratio:.2f} (goal >= 1.00: {verdict})")


if __name__ == "__main__":
    main()
