"""Waiting for audit records to reach the disk, with the real flusher process."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from dojoguard.audit import durability
from dojoguard.audit.durability import FlushProcess
from dojoguard.audit.log import CHECKPOINT_EVERY_COMMITS, AuditLog

from .conftest import make_action, make_decision


@pytest.fixture
async def flushed(tmp_path, clock):
    """A deferred-sync audit log and its running flusher helper, stopped afterwards whatever a test did to it."""
    with AuditLog.open(tmp_path / "audit.sqlite", clock=clock, deferred_sync=True) as log:
        flush = FlushProcess(log)
        await flush.start()
        try:
            yield log, flush
        finally:
            if flush._process.poll() is None:
                os.kill(flush._process.pid, signal.SIGCONT)  # a test may have stopped it
            await flush.stop()


def commit(log: AuditLog) -> int:
    return log.try_append_decision(make_action(), make_decision()).seq


async def test_a_committed_record_is_flushed_by_the_helper(flushed):
    log, flush = flushed
    seq = commit(log)
    waiting = durability.request(log, seq, flush)
    assert await asyncio.wait_for(waiting.wait(), 10) is None
    assert log.synced_seq >= seq and waiting.done()


async def test_if_the_helper_dies_every_waiter_is_told_and_later_records_are_refused(flushed):
    log, flush = flushed
    await asyncio.wait_for(durability.request(log, log.committed_seq, flush).wait(), 10)
    os.kill(flush._process.pid, signal.SIGSTOP)  # it can neither answer nor flush
    waiting = durability.request(log, commit(log), flush)
    pending = asyncio.create_task(waiting.wait())
    await asyncio.sleep(0.1)
    assert not pending.done()
    os.kill(flush._process.pid, signal.SIGKILL)
    problem = await asyncio.wait_for(pending, 10)
    assert "flusher process stopped" in problem
    assert log.sync_failure is not None
    try:
        commit(log)
    except Exception as exc:  # noqa: BLE001 - the type is checked below
        assert "could not be flushed" in str(exc)
    else:
        raise AssertionError("a record was accepted after the flusher died")


async def test_without_the_helper_a_thread_flushes(tmp_path, clock):
    """Tools and tests that drive the judge without a running proxy still get durable records."""
    with AuditLog.open(tmp_path / "audit.sqlite", clock=clock, deferred_sync=True) as log:
        seq = commit(log)
        assert log.synced_seq < seq
        assert await durability.request(log, seq, None).wait() is None
        assert log.synced_seq >= seq


async def test_answers_are_read_in_passing_and_the_pipe_is_watched_only_while_someone_waits(flushed):
    """The usual case: the flush is over before anyone asks, so the answer is read by the check itself."""
    log, flush = flushed
    waiting = durability.request(log, commit(log), flush)
    assert not flush._watching
    for _ in range(500):  # the helper answers within milliseconds; nothing reads its pipe meanwhile
        if waiting.done():
            break
        await asyncio.sleep(0.01)
    assert waiting.done() and waiting.problem() is None and not flush._watching

    # A writer that has to wait is woken by the answer, and the pipe is let go afterwards.
    os.kill(flush._process.pid, signal.SIGSTOP)
    waiting = durability.request(log, commit(log), flush)
    pending = asyncio.create_task(waiting.wait())
    await asyncio.sleep(0.05)
    assert flush._watching and not pending.done()
    os.kill(flush._process.pid, signal.SIGCONT)
    assert await asyncio.wait_for(pending, 10) is None
    assert not flush._watching


async def test_a_helper_that_died_while_idle_is_noticed_by_the_next_request(flushed):
    """Nothing watches the pipe between writes; asking for the next flush finds the helper gone."""
    log, flush = flushed
    await asyncio.wait_for(durability.request(log, log.committed_seq, flush).wait(), 10)
    flush._process.kill()
    flush._process.wait(10)
    waiting = durability.request(log, commit(log), flush)
    assert waiting.done() and "flusher process stopped" in waiting.problem()
    assert log.sync_failure is not None


async def test_a_grown_write_ahead_log_is_checkpointed_after_a_flush(flushed):
    """Once enough records are committed, the answer to a flush starts a checkpoint off the event loop."""
    log, flush = flushed
    for _ in range(CHECKPOINT_EVERY_COMMITS):
        seq = commit(log)
    assert log.wants_checkpoint
    assert await asyncio.wait_for(durability.request(log, seq, flush).wait(), 10) is None
    for _ in range(500):
        if not log.wants_checkpoint and flush._checkpointing is None:
            break
        await asyncio.sleep(0.01)
    assert not log.wants_checkpoint and flush._checkpointing is None
