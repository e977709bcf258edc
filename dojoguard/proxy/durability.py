"""Knowing when a committed audit record is on disk, from the event loop.

The proxy commits a decision before it forwards the write, then has the
audit log flushed while ClassDojo answers; the app's answer waits for the
flush (see ``Judge.record``). The flush is done by a helper process
(``dojoguard.audit.flusher``) driven over pipes from the event loop, so that
no thread of the proxy competes with the event loop for Python's lock: with
a flushing thread, every write measured slower than with no overlap at all.
Where the helper is not running (tools, tests that drive the judge
directly), a flush runs on a worker thread instead.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import structlog

from dojoguard.audit import flusher as helper

log = structlog.get_logger("dojoguard.proxy")


class Durability:
    """Whether one committed record is on disk yet; ``wait`` until it is (never raises)."""

    __slots__ = ("audit", "seq", "_flusher")

    def __init__(self, audit: Any, seq: int, flusher: "FlushProcess | None"):
        self.audit, self.seq, self._flusher = audit, seq, flusher

    def done(self) -> bool:
        return self.audit.synced_seq >= self.seq or self.audit.sync_failure is not None

    def problem(self) -> str | None:
        return None if self.audit.synced_seq >= self.seq else self.audit.sync_failure

    async def wait(self) -> str | None:
        """None once the record is on disk, or why it could not be put there."""
        if not self.done():
            if self._flusher is not None and self._flusher.running:
                await self._flusher.waiter(self)
            else:
                try:
                    await asyncio.to_thread(self.audit.sync, self.seq)
                except Exception:  # noqa: BLE001 - the log keeps the reason; problem() reports it
                    pass
        return self.problem()


def request(audit: Any, seq: int, flusher: "FlushProcess | None") -> Durability:
    """Ask for records up to ``seq`` to be flushed; returns at once."""
    durability = Durability(audit, seq, flusher)
    if getattr(audit, "deferred_sync", False) and not durability.done() and flusher is not None:
        flusher.request(seq)
    return durability


class FlushProcess:
    """The flusher helper process for one audit log, owned by the event loop that started it."""

    def __init__(self, audit: Any):
        self.audit = audit
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._checkpointing = False
        self._stopping = False
        self.running = False

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dojoguard.audit.flusher", str(self.audit.path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self.running = True
        self._reader = asyncio.create_task(self._read(self._process), name="dojoguard-audit-flusher")
        # Anything committed before the helper started is flushed by its first pass.
        self.request(self.audit.committed_seq)

    def request(self, seq: int) -> None:
        if self._process is not None and self.running:
            self._process.stdin.write(helper.request(seq))

    def waiter(self, durability: Durability) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((durability.seq, future))
        return future

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        size = helper.ANSWER.size
        try:
            while True:
                seq, _ = helper.ANSWER.unpack(await process.stdout.readexactly(size))
                if seq == helper.FAILED:
                    self.audit.mark_sync_failed("the disk reported an error while flushing")
                    break
                self.audit.mark_synced(seq)
                self._wake()
                if self.audit.wants_checkpoint and not self._checkpointing:
                    self._checkpointing = True
                    asyncio.create_task(self._checkpoint())
        except (asyncio.IncompleteReadError, ConnectionError):
            if not self._stopping:
                # Nobody can say what reached the disk since the last answer: fail closed.
                self.audit.mark_sync_failed("the audit flusher process stopped")
        finally:
            self.running = False
            self._wake(everyone=True)

    def _wake(self, everyone: bool = False) -> None:
        synced = self.audit.synced_seq
        still = []
        for seq, future in self._waiters:
            if everyone or seq <= synced:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((seq, future))
        self._waiters = still

    async def _checkpoint(self) -> None:
        try:
            await asyncio.to_thread(self.audit.checkpoint)
        finally:
            self._checkpointing = False

    async def stop(self) -> None:
        self._stopping = True
        if self._process is None:
            return
        if self._process.stdin is not None and not self._process.stdin.is_closing():
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
