"""The hand-over to the audit thread: results and failures come back to the waiting write."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dojoguard.audit.thread import AUDIT_THREAD, AuditThread


async def test_work_runs_off_the_event_loop_and_its_result_comes_back():
    """A call handed to the audit thread runs on another thread and its return value reaches the caller."""
    writer = AuditThread()
    loop_thread = threading.get_ident()
    ran_on = await writer.run(threading.get_ident)
    assert ran_on != loop_thread
    assert await writer.run(sum, [1, 2, 3]) == 6


async def test_a_failed_write_raises_in_the_waiting_caller():
    """An exception in the audit thread is raised where the write waits, so the write can fail closed."""
    writer = AuditThread()

    def broken():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await writer.run(broken)
    assert await writer.run(lambda: "still serving") == "still serving"


async def test_writes_are_made_in_the_order_they_were_handed_over():
    """Concurrent writes are committed one at a time, in the order the event loop handed them over."""
    seen: list[int] = []
    await asyncio.gather(*(AUDIT_THREAD.run(seen.append, i) for i in range(50)))
    assert seen == list(range(50))


def test_one_thread_serves_every_event_loop():
    """The same thread answers writes from successive event loops (a test's, then the proxy's)."""
    first = asyncio.run(AUDIT_THREAD.run(threading.get_ident))
    second = asyncio.run(AUDIT_THREAD.run(threading.get_ident))
    assert first == second != threading.get_ident()
