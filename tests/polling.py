"""Polling with a deadline: how the cluster and end-to-end tests wait (never a bare sleep)."""

import time
from collections.abc import Callable

import pytest


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Polls condition() until it returns something truthy; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
