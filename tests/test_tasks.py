"""Tasks nobody awaits are kept until they end."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from dojoguard import tasks


async def test_a_started_task_outlives_every_other_reference():
    """A task waiting on a future only it knows of is not garbage-collected, and is let go once it ends."""
    loop = asyncio.get_running_loop()

    async def waits_forever():
        await loop.create_future()

    task = tasks.start(waits_forever(), name="kept")
    await asyncio.sleep(0)  # it now waits on a future nothing else references
    kept = weakref.ref(task)
    del task
    gc.collect()
    task = kept()
    assert task is not None and not task.done() and task.get_name() == "kept"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task not in tasks._RUNNING

