"""The audit thread: one long-lived thread that commits audit records off the event loop."""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable


class AuditThread:
    """One long-lived thread that commits audit records, off the event loop.

    Every write waits for its record to be committed before it is
    forwarded, so the hand-over sits on every write's path.
    ``asyncio.to_thread`` costs a context copy, an executor work item and a
    chain of wrapped futures each way; this costs one queue put and one
    ``call_soon_threadsafe``. The audit log serialises writers with its own
    lock anyway, so one thread loses no parallelism.
    """

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    async def run(self, fn: Callable, *args) -> Any:
        """``fn(*args)`` on the audit thread; its result, or its exception raised here."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._ensure_started()
        self._queue.put((loop, future, fn, args))
        return await future

    def _ensure_started(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._start:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._work, name="dojoguard-audit", daemon=True)
                    self._thread.start()

    def _work(self) -> None:
        while True:
            loop, future, fn, args = self._queue.get()
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting write, which fails closed
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:
                pass  # that event loop has closed: nobody is waiting for this answer any more


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


AUDIT_THREAD = AuditThread()
