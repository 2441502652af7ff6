"""Helpers of the end-to-end tests: the deployed apps answering through real pods.

Everything goes over real sockets to real processes: the proxy's NodePort on 127.0.0.1 (served
by kube-proxy of the real node), the cluster's API, Ansible's playbooks.
"""

import os
import re
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field

# The cluster (re-exported for the suite's tests): tests/realnode.py defines it.
from realnode import CONTEXT as CONTEXT
from realnode import KUBECONFIG as KUBECONFIG
from realnode import REPO, STATE_DIR

# A namespace of the tests' own: the learner's playground (mesh-playground) is left as it is.
NAMESPACE = "mesh-e2e"
PLAYBOOK_ARGS = ("-e", f"playground_namespace={NAMESPACE}")
IMAGES_VARS = STATE_DIR / "images.yml"

# The proxy's answer for a webserver answer (seed format), e.g.
# "Proxying value: WebServer V1 requested from / on webserverv1-6786d88d65-cp28t with code 200
#  - Took 3 milliseconds"
ANSWER = re.compile(
    r"^Proxying value: (?P<content>WebServer V(?P<version>\d)) requested from (?P<path>\S+)"
    r" on (?P<host>\S+) with code (?P<code>\d{3}) - Took \d+ milliseconds$"
)


def run(
    *cmd: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a command from the repository root; output shown by pytest when a test fails."""
    result = subprocess.run(
        list(cmd),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=os.environ | (env or {}),
    )
    print(
        f"$ {' '.join(cmd)} -> {result.returncode}\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
    )
    return result


@dataclass
class Answer:
    status: int
    body: str

    @property
    def parsed(self) -> re.Match[str] | None:
        return ANSWER.match(self.body) if self.status == 200 else None


def get(url: str, timeout: float = 10) -> Answer:
    """One request on a new connection (as a browser tab or curl would); errors become answers."""
    request = urllib.request.Request(url, headers={"Connection": "close"})  # noqa: S310 (our URL)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Answer(response.status, response.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read().decode(errors="replace"))
    except OSError as error:  # refused, reset, timed out
        return Answer(0, f"{type(error).__name__}: {error}")


@dataclass
class Load:
    """Steady traffic through the proxy from background threads, each answer recorded."""

    url: str
    threads: int = 2
    interval: float = 0.05  # per thread: about 40 requests/s in all with 2 threads
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> "Load":
        for _ in range(self.threads):
            worker = threading.Thread(target=self._send, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _send(self) -> None:
        while not self._stop.is_set():
            self.answers.append(get(self.url))
            # Pacing, not synchronisation: keeps the load steady on a shared 2-core machine.
            self._stop.wait(self.interval)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def failures(self) -> list[Answer]:
        return [a for a in self.answers if not (a.parsed and a.parsed["code"] == "200")]
