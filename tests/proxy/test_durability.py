"""Waiting for audit records to reach the disk, with the real flusher process."""

from __future__ import annotations

import asyncio
import os
import signal

from dojoguard.audit.log import AuditLog
from dojoguard.proxy import durability
from dojoguard.proxy.durability import FlushProcess
from tests.audit.conftest import make_action, make_decision


async def test_a_committed_record_is_flushed_by_the_helper(tmp_path, clock):
    with AuditLog.open(tmp_path / "audit.sqlite", clock=clock, deferred_sync=True) as log:
        flush = FlushProcess(log)
        await flush.start()
        try:
            record = log.try_append_decision(make_action(), make_decision())
            waiting = durability.request(log, record.seq, flush)
            assert await asyncio.wait_for(waiting.wait(), 10) is None
            assert log.synced_seq >= record.seq and waiting.done()
        finally:
            await flush.stop()


async def test_if_the_helper_dies_every_waiter_is_told_and_later_records_are_refused(tmp_path, clock):
    with AuditLog.open(tmp_path / "audit.sqlite", clock=clock, deferred_sync=True) as log:
        flush = FlushProcess(log)
        await flush.start()
        await asyncio.wait_for(durability.request(log, log.committed_seq, flush).wait(), 10)
        os.kill(flush._process.pid, signal.SIGSTOP)  # it can neither answer nor flush
        record = log.try_append_decision(make_action(), make_decision())
        waiting = durability.request(log, record.seq, flush)
        pending = asyncio.create_task(waiting.wait())
        await asyncio.sleep(0.1)
        assert not pending.done()
        os.kill(flush._process.pid, signal.SIGKILL)
        problem = await asyncio.wait_for(pending, 10)
        assert "flusher process stopped" in problem
        assert log.sync_failure is not None
        try:
            log.try_append_decision(make_action(), make_decision())
        except Exception as exc:  # noqa: BLE001 - the type is checked below
            assert "could not be flushed" in str(exc)
        else:
            raise AssertionError("a record was accepted after the flusher died")
        await flush.stop()


async def test_without_the_helper_a_thread_flushes(tmp_path, clock):
    """Tools and tests that drive the judge without a running proxy still get durable records."""
    with AuditLog.open(tmp_path / "audit.sqlite", clock=clock, deferred_sync=True) as log:
        record = log.try_append_decision(make_action(), make_decision())
        assert log.synced_seq < record.seq
        assert await durability.request(log, record.seq, None).wait() is None
        assert log.synced_seq >= record.seq


async def test_answers_are_read_in_passing_and_the_pipe_is_watched_only_while_someone_waits(tmp_path, clock):
    """The usual case: the flush is over before anyone asks, so the answer is read by the check itself."""
    with AuditLog.open(tmp_path / "audit.sqlite", clock=clock, deferred_sync=True) as log:
        flush = FlushProcess(log)
        await flush.start()
        try:
            record = log.try_append_decision(make_action(), make_decision())
            waiting = durability.request(log, record.seq, flush)
            assert not flush._watching
            for _ in range(500):  # the helper answers within milliseconds; nothing reads its pipe meanwhile
                if waiting.done():
                    break
                await asyncio.sleep(0.01)
            assert waiting.done() and waiting.problem() is None and not flush._watching

            # A writer that has to wait is woken by the answer, and the pipe is let go afterwards.
            os.kill(flush._process.pid, signal.SIGSTOP)
            record = log.try_append_decision(make_action(), make_decision())
            waiting = durability.request(log, record.seq, flush)
            pending = asyncio.create_task(waiting.wait())
            await asyncio.sleep(0.05)
            assert flush._watching and not pending.done()
            os.kill(flush._process.pid, signal.SIGCONT)
            assert await asyncio.wait_for(pending, 10) is None
            assert not flush._watching
        finally:
            os.kill(flush._process.pid, signal.SIGCONT)
            await flush.stop()


async def test_a_helper_that_died_while_idle_is_noticed_by_the_next_request(tmp_path, clock):
    """Nothing watches the pipe between writes; asking for the next flush finds the helper gone."""
    with AuditLog.open(tmp_path / "audit.sqlite", clock=clock, deferred_sync=True) as log:
        flush = FlushProcess(log)
        await flush.start()
        await asyncio.wait_for(durability.request(log, log.committed_seq, flush).wait(), 10)
        flush._process.kill()
        flush._process.wait(10)
        record = log.try_append_decision(make_action(), make_decision())
        waiting = durability.request(log, record.seq, flush)
        assert waiting.done() and "flusher process stopped" in waiting.problem()
        assert log.sync_failure is not None
        await flush.stop()
