"""Send real requests and count what came back: the measuring half of every mesh check.

    python playbooks/files/traffic.py URL [--count N] [--concurrency C] [--header 'Name: value']...

Prints one JSON object: how many answers had each HTTP status, each webserver version and
upstream code (from the proxy's seed-format answer), each answer the mesh gave instead of the
webserver (`other`: "fault filter abort", "upstream request timeout", ...), the milliseconds the
proxy reported (`Took N milliseconds`), the client's own wall time per request, a few bodies.
Each request goes on a new connection (as curl would), so the mesh routes every one afresh.
playbooks/canary.yml measures each step with it, Molecule verify steps assert on its counts,
and pytest imports `measure`.
"""

import argparse
import http.client
import json
import re
import sys
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

# The proxy's seed-format answer, and inside it the webserver's (absent when the mesh answered
# instead: "fault filter abort", "upstream request timeout", "RBAC: access denied").
PROXIED = re.compile(r"^Proxying value: (?P<content>.*) - Took (?P<took>\d+) milliseconds$", re.S)
WEBSERVER = re.compile(
    r"^(?P<text>.*?) requested from (?P<path>\S+) on (?P<host>\S+) with code (?P<code>\d{3})$", re.S
)
VERSION = re.compile(r"^WebServer (V\d+)")


def one(url: str, headers: dict[str, str], timeout: float) -> dict:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    try:
        connection.request("GET", target, headers={"Connection": "close", **headers})
        response = connection.getresponse()
        status, body = response.status, response.read().decode(errors="replace")
        location = response.getheader("Location")
    except OSError as error:
        status, body, location = 0, f"{type(error).__name__}: {error}", None
    finally:
        connection.close()
    answer = {"status": status, "body": body, "ms": (time.monotonic() - started) * 1000}
    if location:
        answer["location"] = location
    proxied = PROXIED.match(body)
    if proxied:
        answer["took"] = int(proxied["took"])
        webserver = WEBSERVER.match(proxied["content"])
        if webserver:
            version = VERSION.match(webserver["text"])
            answer.update(
                code=webserver["code"],
                upstream_path=webserver["path"],
                host=webserver["host"],
                version=version[1].lower() if version else webserver["text"][:60],
            )
        else:
            answer["other"] = proxied["content"][:120]
    return answer


def measure(
    url: str,
    count: int,
    concurrency: int = 4,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> dict:
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda _: one(url, headers or {}, timeout), range(count)))
    return {
        "count": count,
        "status": dict(Counter(str(a["status"]) for a in answers)),
        "version": dict(Counter(a["version"] for a in answers if "version" in a)),
        "code": dict(Counter(a["code"] for a in answers if "code" in a)),
        # version -> upstream code -> count: each version's own error rate (canary verdicts)
        "by_version": {
            version: dict(Counter(a["code"] for a in answers if a.get("version") == version))
            for version in sorted({a["version"] for a in answers if "version" in a})
        },
        "other": dict(Counter(a["other"] for a in answers if "other" in a)),
        "hosts": sorted({a["host"] for a in answers if "host" in a}),
        "took": sorted(a["took"] for a in answers if "took" in a),
        "ms": sorted(round(a["ms"]) for a in answers),
        "locations": sorted({a["location"] for a in answers if "location" in a}),
        "upstream_paths": sorted({a["upstream_path"] for a in answers if "upstream_path" in a}),
        "bodies": sorted({a["body"][:200] for a in answers})[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    json.dump(measure(args.url, args.count, args.concurrency, headers, args.timeout), sys.stdout)
    print()


if __name__ == "__main__":
    main()
