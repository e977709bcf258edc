"""Waiting for something a running proxy does in the background (a record written, a line logged)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout_s: float = 15.0, *, every_s: float = 0.1) -> T:
    """``check()``'s first truthy answer within ``timeout_s``; AssertionError naming the wait if none comes."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"nothing came within {timeout_s} s")
        time.sleep(every_s)
