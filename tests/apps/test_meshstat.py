"""meshstat (apps/view/meshstat.py), the terminal command, against the stub Prometheus."""

import subprocess
import sys

from apps_live import APPS, DEADLINE, free_port

MESHSTAT = [sys.executable, str(APPS / "view" / "meshstat.py")]


def meshstat(*args):
    return subprocess.run(
        [*MESHSTAT, *args], capture_output=True, text=True, timeout=DEADLINE, check=False
    )


def test_the_table_has_a_row_per_destination_workload_and_version(prometheus):
    run = meshstat("--prometheus", prometheus.url, "--namespace", "mesh-playground")
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [
        "WORKLOAD      VERSION     RPS   SUCCESS      P50      P99   REQUESTS",
        "proxy         v1        10.00    98.00%   14.0ms   95.0ms        600",
        "webserverv1   v1         8.00    95.00%    4.2ms   24.5ms        480",
        "webserverv2   v2         2.00   100.00%    5.5ms   48.0ms        120",
    ]
    assert all("[1m])" in query for query in prometheus.queries)


def test_the_window_and_namespace_go_into_the_queries(prometheus):
    run = meshstat("--prometheus", prometheus.url, "--namespace", "elsewhere", "--window", "30s")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[1].split()[:3] == ["webv1", "v1", "50.00"]
    assert len(run.stdout.splitlines()) == 2
    assert all('namespace="elsewhere"' in q and "[30s])" in q for q in prometheus.queries)


def test_no_traffic_says_so(prometheus):
    prometheus.series = []
    run = meshstat("--prometheus", prometheus.url)
    assert (run.returncode, run.stdout) == (
        0,
        "no traffic in namespace mesh-playground over the last 1m\n",
    )


def test_prometheus_down_is_one_line_and_exit_2(silent):
    down = f"http://127.0.0.1:{free_port()}"
    for url, reason in ((down, "Connection refused"), (silent.url, "did not answer within 2 s")):
        run = meshstat("--prometheus", url)
        assert run.returncode == 2
        assert run.stdout == ""
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
        assert run.stderr.startswith("meshstat: Prometheus did not answer: ")
        assert reason in run.stderr


def test_bad_arguments_exit_2_naming_the_form():
    run = meshstat("--prometheus", "prometheus:9090")
    assert run.returncode == 2
    assert "'prometheus:9090': expected http://host[:port]" in run.stderr
    run = meshstat("--prometheus", "http://p", "--window", "abc")
    assert run.returncode == 2 and "'abc': expected a duration" in run.stderr
