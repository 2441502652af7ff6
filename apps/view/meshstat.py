#!/usr/bin/env python3
"""meshstat: the mesh's traffic per destination workload and version, like `linkerd viz stat`.

    python3 apps/view/meshstat.py --prometheus http://127.0.0.1:30090 \\
        --namespace mesh-playground [--window 1m]

Reads the same Prometheus queries as the live view (meshmetrics.py; standard library only).
Exit 2, with one line on stderr, when an argument is malformed or Prometheus does not answer.
"""

import argparse
import re
import sys

import meshmetrics

COLUMNS = ("WORKLOAD", "VERSION", "RPS", "SUCCESS", "P50", "P99", "REQUESTS")


def _form(pattern, expected):
    def check(raw):
        if not re.fullmatch(pattern, raw):
            raise argparse.ArgumentTypeError(f"{raw!r}: expected {expected}")
        return raw

    return check


def _cell(value, unit, digits):
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def table(rows):
    """The rows as a text table, columns aligned."""
    lines = [COLUMNS]
    for row in rows:
        lines.append(
            (
                row["workload"],
                row["version"],
                _cell(row["rps"], "", 2),
                _cell(None if row["success_rate"] is None else row["success_rate"] * 100, "%", 2),
                _cell(row["p50_ms"], "ms", 1),
                _cell(row["p99_ms"], "ms", 1),
                str(row["requests"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join(
        "   ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="meshstat", description="The mesh's traffic per destination workload and version."
    )
    parser.add_argument(
        "--prometheus",
        required=True,
        type=_form(meshmetrics.PROMETHEUS_URL_FORM, meshmetrics.PROMETHEUS_URL_EXPECTED),
        help="Prometheus' address, http://host[:port]",
    )
    parser.add_argument(
        "--namespace",
        default="mesh-playground",
        type=_form(meshmetrics.NAMESPACE_FORM, meshmetrics.NAMESPACE_EXPECTED),
        help="the app namespace (default: %(default)s)",
    )
    parser.add_argument(
        "--window",
        default="1m",
        type=_form(meshmetrics.WINDOW_FORM, meshmetrics.WINDOW_EXPECTED),
        help="rate window (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        samples = meshmetrics.fetch(args.prometheus, args.namespace, args.window)
    except meshmetrics.PrometheusError as error:
        print(f"meshstat: Prometheus did not answer: {error}", file=sys.stderr)
        return 2
    rows = meshmetrics.stat_rows(meshmetrics.edges(samples, args.window))
    if not rows:
        print(f"no traffic in namespace {args.namespace} over the last {args.window}")
        return 0
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
