"""Apps benchmark: wrk on loopback against our apps and the seed's own Node.js pair, same run.

Configurations: each webserver alone, and proxy -> webserver, ours (gunicorn with the apps'
default settings, JSON access log on, to a file) and the seed's (node, its code extracted from
the seed text into ~/.cache/mesh-playground/seed-node, `request` from npm). All four servers
run at once; the configurations are measured in turns, BENCH_ROUNDS times, so that a change in
the machine's load affects ours and the seed's alike; the table shows the median round, with
the servers' CPU time per request (user + system, from /proc: less sensitive to other jobs on
the machine than requests/s).
Environment: BENCH_DURATION (s per measurement, default 5), BENCH_ROUNDS (default 3),
BENCH_CONNECTIONS (default 32), BENCH_THREADS (wrk threads, default 2), BENCH_SKIP_NODE=1.
A second table gives the CPU time of one upstream call of the proxy, by client layer, measured in
this process against our webserver (BENCH_CALLS calls each, default 2000): what the proxy's
choice of `requests` costs against the layers under it, beside the CPU budget that the goal
leaves per proxied request on this machine.
"""

import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paths  # first: the test helpers below are found through it

sys.path.insert(0, str(paths.REPO / "tests" / "apps"))

import seed_node
from apps_live import DEADLINE, POLL, Gunicorn, free_port, raw_request
from polling import wait_for

DURATION = int(os.environ.get("BENCH_DURATION", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
CALLS = int(os.environ.get("BENCH_CALLS", "2000"))
WARMUP = 1
OURS_PROXIED = "ours: proxy -> webserver"
OURS_KEEPALIVE = "ours: proxy -> web, keep-alive"  # PROXY_UPSTREAM_KEEPALIVE, as behind a mesh
SEED_PROXIED = "seed: proxy -> webserver (node)"
GOAL = 0.33  # ours / seed, proxied (the issue "Hardening the apps", restated goal)


def wrk(port, duration):
    """(requests/s, p50 ms, p99 ms, errors: non-2xx + socket errors) of one wrk run."""
    out = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency",
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def latency(percent):
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    requests = int(re.search(r"(\d+) requests in", out)[1])
    return rps, latency(50), latency(99), errors, requests


def cpu_seconds(roots):
    """CPU time (user + system) used so far by the processes `roots` and their children."""
    stats = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or gone meanwhile
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, ticks
    pids, ticks = set(roots), 0
    for pid, (ppid, used) in sorted(stats.items()):
        if pid in pids or ppid in pids:
            pids.add(pid)
            ticks += used
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(port, roots):
    """One wrk run, with the servers' CPU time per request (microseconds)."""
    wrk(port, WARMUP)
    before = cpu_seconds(roots)
    rps, p50, p99, errors, requests = wrk(port, DURATION)
    cpu_us = (cpu_seconds(roots) - before) / max(requests, 1) * 1e6
    return rps, p50, p99, cpu_us, errors


def start_node(name, log_dir, **env):
    port = free_port()
    log = open(Path(log_dir) / f"node-{name}.log", "wb")
    process = seed_node.start(name, port, log, **env)

    def up():
        try:
            return raw_request(port, "/", timeout=2)
        except OSError:
            return None

    wait_for(up, DEADLINE, f"the seed's node {name}", POLL)
    return process, port


def start_all(logs, with_node):
    """{configuration: (port, server pids)} and the processes to stop."""
    unset = {"WEB_CONCURRENCY": None, "GUNICORN_THREADS": None}  # the apps' own defaults
    web = Gunicorn("webserver", logs, unset).start()
    proxy_env = {**unset, "PROXYURL": f"http://127.0.0.1:{web.port}"}
    proxy = Gunicorn("proxy", logs, proxy_env).start()
    kept = Gunicorn("proxy", logs, {**proxy_env, "PROXY_UPSTREAM_KEEPALIVE": "60"}).start()
    web_pid = web.process.pid
    ports = {
        "ours: webserver (gunicorn)": (web.port, [web_pid]),
        OURS_PROXIED: (proxy.port, [proxy.process.pid, web_pid]),
        OURS_KEEPALIVE: (kept.port, [kept.process.pid, web_pid]),
    }
    processes = [proxy, kept, web]
    if with_node:
        seed_node.prepare(with_request=True)
        node_web, node_web_port = start_node("webserver", logs)
        node_proxy, node_proxy_port = start_node(
            "proxy", logs, PROXYURL=f"http://127.0.0.1:{node_web_port}"
        )
        ports["seed: webserver (node)"] = (node_web_port, [node_web.pid])
        ports[SEED_PROXIED] = (node_proxy_port, [node_proxy.pid, node_web.pid])
        processes += [node_proxy, node_web]
    return ports, processes


def stop_all(processes):
    for process in processes:
        if isinstance(process, Gunicorn):
            process.stop()
        else:
            process.terminate()
            process.wait(timeout=10)


def upstream_call_costs(web_port):
    """[(client layer, CPU us per call)] of one GET / of our webserver, a new connection each
    (the proxy's default), measured in this process with time.process_time (user + system)."""
    os.environ["PROXYURL"] = f"http://127.0.0.1:{web_port}"
    apps = paths.REPO / "apps"
    sys.path[:0] = [str(apps / "proxy"), str(apps / "common")]
    import upstream
    import urllib3

    url = upstream.upstream_url("/")
    pool = urllib3.HTTPConnectionPool("127.0.0.1", web_port, maxsize=1)
    close = {"Connection": "close"}

    def with_http_client():
        connection = http.client.HTTPConnection("127.0.0.1", web_port)
        connection.request("GET", "/", headers=close)
        connection.getresponse().read()
        connection.close()

    def with_socket():
        with socket.create_connection(("127.0.0.1", web_port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            while sock.recv(65536):
                pass

    layers = [
        ("upstream.fetch (requests, hardened)", lambda: upstream.fetch(url, {})),
        ("urllib3 pool.urlopen", lambda: pool.urlopen("GET", "/", headers=close).data),
        ("http.client", with_http_client),
        ("socket, request bytes written by hand", with_socket),
    ]
    costs = []
    for name, call in layers:
        call()
        start = time.process_time()
        for _ in range(CALLS):
            call()
        costs.append((name, (time.process_time() - start) / CALLS * 1e6))
    return costs


def print_call_costs(costs, seed_rps):
    row = "| {:<41} | {:>12} |"
    print(f"\n## The proxy's upstream call: CPU per call by client layer ({CALLS} calls each)")
    print(row.format("client layer", "CPU us/call"))
    print(row.format("-" * 41, "-" * 12).replace(" ", "-"))
    for name, cpu_us in costs:
        print(row.format(name, f"{cpu_us:,.0f}"))
    if seed_rps:
        budget = os.cpu_count() * 1e6 / (GOAL * seed_rps)
        print(
            f"\nThe goal ({GOAL:.2f} x {seed_rps:,.0f} req/s) leaves at most {budget:,.0f} us of "
            f"CPU per proxied request on {os.cpu_count()} CPUs, for wrk, the proxy (its serving "
            "and this call) and the webserver together."
        )


def main():
    if not shutil.which("wrk"):
        sys.exit("bench/apps.py needs wrk: apt-get update && apt-get install -y wrk")
    with_node = os.environ.get("BENCH_SKIP_NODE") != "1"
    if with_node and seed_node.missing():
        sys.exit(f"bench/apps.py needs the seed's Node apps: {seed_node.missing()}")
    load = os.getloadavg()[0]
    print(
        f"\n## Apps: wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION}s on loopback, median of "
        f"{ROUNDS} rounds, {os.cpu_count()} CPUs, load average {load:.2f} at start"
    )
    if load > 1.0:
        print("   (the machine is busy: absolute numbers are lower than on an idle machine)")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench-apps-") as logs:
        ports, processes = start_all(logs, with_node)
        try:
            for round_ in range(1, ROUNDS + 1):
                print(f">> round {round_}/{ROUNDS}", file=sys.stderr, flush=True)
                for name, (port, roots) in ports.items():
                    runs.setdefault(name, []).append(measure(port, roots))
            print(">> the upstream call, by client layer", file=sys.stderr, flush=True)
            costs = upstream_call_costs(ports["ours: webserver (gunicorn)"][0])
        finally:
            stop_all(processes)
    row = "| {:<31} | {:>7} | {:>6} | {:>6} | {:>10} | {:>6} |"
    print(row.format("configuration", "req/s", "p50 ms", "p99 ms", "CPU us/req", "errors"))
    print(row.format("-" * 31, "-" * 7, "-" * 6, "-" * 6, "-" * 10, "-" * 6).replace(" ", "-"))
    median = {}
    for name, results in runs.items():
        rps, p50, p99, cpu_us, errors = sorted(results)[len(results) // 2]  # median by req/s
        median[name] = rps
        print(row.format(name, f"{rps:,.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{cpu_us:,.0f}", errors))
    if with_node:
        for ours_name in (OURS_PROXIED, OURS_KEEPALIVE):
            ratio = median[ours_name] / median[SEED_PROXIED]
            rounds = [
                ours[0] / seed[0]
                for ours, seed in zip(runs[ours_name], runs[SEED_PROXIED], strict=True)
            ]
            verdict = "met" if ratio >= GOAL else "NOT met"
            print(
                f"\n{ours_name} / seed: {ratio:.2f} (goal >= {GOAL:.2f}: {verdict}; "
                f"per round: {', '.join(f'{r:.2f}' for r in rounds)}; "
                f"median {statistics.median(rounds):.2f})"
            )
    print_call_costs(costs, median.get(SEED_PROXIED))


if __name__ == "__main__":
    main()
