"""Settings from the environment, shared by gunicorn_base.py, serve.py and the view app.

No gunicorn import here: serve.py checks WEB_CONCURRENCY before gunicorn is imported (gunicorn
parses that variable at import and stops with a bare ValueError on a value like "1e3").
"""

import os
import re


def env_int(name, default, low=1, high=1_000_000):
    """An integer setting from the environment, refused with a clear message when invalid."""
    raw = os.environ.get(name, "")
    if not raw:
        return default
    value = int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else low - 1  # no "1e3", " 8", "8_0"
    if not low <= value <= high:
        raise SystemExit(f"{name}={raw!r}: expected a whole number from {low} to {high}")
    return value


def env_text(name, default, form, expected):
    """A text setting that must match the regular expression `form` (the whole value), refused
    with a clear message when it does not. default=None: the variable is required."""
    raw = os.environ.get(name, "")
    if not raw and default is not None:
        return default
    if not raw:
        raise SystemExit(f"{name} is not set: expected {expected}")
    if not re.fullmatch(form, raw):
        raise SystemExit(f"{name}={raw!r}: expected {expected}")
    return raw


def workers():
    """gunicorn worker processes: WEB_CONCURRENCY (the variable gunicorn itself reads)."""
    return env_int("WEB_CONCURRENCY", 2, 1, 64)
