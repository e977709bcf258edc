"""Tasks nobody awaits (reports, checkpoints), kept until they end.

The event loop keeps only a weak reference to a task: one that nobody else
references can be garbage-collected before it has finished. ``start`` is the
one way the proxy starts such a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_RUNNING: set[asyncio.Task] = set()


def start(coro: Coroutine[Any, Any, Any], *, name: str | None = None,
          loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Task:
    """Run ``coro`` as a task on ``loop`` (default: the running one), referenced until it is done."""
    task = (loop or asyncio.get_running_loop()).create_task(coro, name=name)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return task
