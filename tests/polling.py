"""Polling with a deadline: how every test and benchmark waits (never a bare sleep).

The one poller of the Python side, like wait_until in cluster/lib.sh for the scripts.
"""

import time
from collections.abc import Callable

import pytest


def wait_for(
    condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2
) -> object:
    """Polls condition() every `interval` seconds until it returns something truthy (and returns
    that); fails after timeout seconds, saying what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # polling interval, not synchronisation
