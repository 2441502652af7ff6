"""The apps' settings reader: every app reads its environment with these, and only these.

Each function reads one variable once (at start); unset or empty means the default. A bad value
raises SettingError, a SystemExit: the start stops with one line that names the variable, shows
the value with repr (nothing it holds reaches a log unescaped) and says what is expected:

    PORT='80a': expected a whole number from 1 to 65535
    PROXY_FORWARD_HEADERS: 'connection' cannot be forwarded (...)    (one entry of a list)

Numbers are plain decimals: "1e3", " 8", "8_0" or "nan" are refused. No gunicorn import here:
serve.py checks WEB_CONCURRENCY with env_int before gunicorn is imported. See README.md.
"""

import math
import os
import re


class SettingError(SystemExit):
    """A setting the app cannot start with; the message says what to fix."""

    def __init__(self, name, value, problem, *, entry=False):
        where = f"{name}: {value!r}" if entry else f"{name}={value!r}:"
        super().__init__(f"{where} {problem}")


def env(name, default=""):
    """A variable's text as it is (the caller checks it, raising SettingError)."""
    return os.environ.get(name) or default


def env_int(name, default, low=1, high=1_000_000):
    """A whole number from `low` to `high`."""
    raw = env(name)
    if not raw:
        return default
    value = int(raw) if re.fullmatch(r"[0-9]{1,10}", raw) else low - 1
    if not low <= value <= high:
        raise SettingError(name, raw, f"expected a whole number from {low} to {high}")
    return value


def env_float(name, default, low, high):
    """A decimal number (digits, an optional fraction) from `low` to `high`."""
    raw = env(name)
    if not raw:
        return default
    value = float(raw) if re.fullmatch(r"[0-9]{1,10}(\.[0-9]{1,9})?", raw) else math.nan
    if not low <= value <= high:  # also refuses nan
        raise SettingError(name, raw, f"expected a decimal number from {low:g} to {high:g}")
    return value


def env_match(name, pattern, expected, default=""):
    """Text matching the regular expression `pattern` as a whole; `expected` describes it."""
    raw = env(name)
    if raw and not re.fullmatch(pattern, raw):
        raise SettingError(name, raw, f"expected {expected}")
    return raw or default


def env_choice(name, choices, default):
    """One of `choices` (exactly as written)."""
    raw = env(name, default)
    if raw not in choices:
        raise SettingError(name, raw, f"expected {' or '.join(choices)}")
    return raw


def env_text(*names, default, limit=4096):
    """The first set of `names`: UTF-8 text of at most `limit` bytes, no control characters but
    tab and newline (fit for a text/plain; charset=utf-8 body)."""
    for name in names:
        raw = env(name)
        if not raw:
            continue
        try:
            size = len(raw.encode())  # undecodable bytes come as surrogates: refused here
        except UnicodeEncodeError:
            size = -1
        if not 0 < size <= limit or any(c < " " and c not in "\t\n" for c in raw):
            raise SettingError(
                name,
                raw,
                f"expected UTF-8 text of at most {limit} bytes, without control characters",
            )
        return raw
    return default


def env_list(name, parse, lower=False):
    """A comma-separated list: [parse(entry), ...] for its non-blank entries, stripped (and
    lower-cased with `lower`). `parse` raises ValueError(problem) for a bad entry, which stops
    the start with `NAME: 'entry' <problem>`.
    """
    values = []
    raw = env(name).lower() if lower else env(name)
    for entry in filter(None, (entry.strip() for entry in raw.split(","))):
        try:
            values.append(parse(entry))
        except ValueError as problem:
            raise SettingError(name, entry, str(problem), entry=True) from None
    return values
