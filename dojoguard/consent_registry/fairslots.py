"""Image-check slots handed out in turn between requesters, so one batch cannot starve everyone else.

The image workers took photos first come, first served: a teacher (or a
device) that sent ten huge pictures at once had every worker, and the next
teacher's ordinary photo waited behind all ten (21 s in the finding). Here
each requester has its own queue and free slots go round the requesters in
turn; and while more than one worker exists, one requester never holds all
of them, so a photo from someone else starts as soon as it arrives (except
that a check may borrow an idle worker for half of its detection while
nobody is waiting, see ``try_borrow``).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter, OrderedDict, deque
from contextlib import asynccontextmanager

# Who the current request is from ("teacher:ID" or "device:ADDRESS"); set by the
# proxy for the task that judges the request, read when a check asks for a slot.
REQUESTER: contextvars.ContextVar[str] = contextvars.ContextVar("dojoguard_requester", default="")


class FairSlots:
    """At most ``size`` jobs at once; at most ``per_requester`` of them one requester's; waiting in turns."""

    def __init__(self, size: int, per_requester: int | None = None):
        self.size = max(1, size)
        self.per_requester = max(1, per_requester or self.size)
        self._busy = 0
        self._running: Counter[str] = Counter()
        self._waiting: OrderedDict[str, deque[asyncio.Future]] = OrderedDict()
        # When each requester with work running or waiting was last given a slot.
        self._served: dict[str, int] = {}
        self._tick = 0

    @property
    def busy(self) -> int:
        return self._busy

    def waiting(self, requester: str | None = None) -> int:
        if requester is not None:
            return len(self._waiting.get(requester, ()))
        return sum(len(q) for q in self._waiting.values())

    @asynccontextmanager
    async def slot(self, requester: str):
        await self.acquire(requester)
        try:
            yield
        finally:
            self.release(requester)

    async def acquire(self, requester: str) -> None:
        if not self._waiting and self._may_run(requester):
            self._take(requester)
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(requester, deque()).append(future)
        self._dispatch()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(requester)  # granted just as it was cancelled: hand the slot on
            else:
                self._forget(requester, future)
            raise

    def try_borrow(self, requester: str) -> bool:
        """A slot beyond ``requester``'s share, taken at once, only while one is idle and nobody waits.

        For the second half of one photo's detection: it makes a lone check
        faster without making anyone wait for it (a request that arrives
        meanwhile waits at most until one half finishes). ``release`` returns it.
        """
        if self._waiting or self._busy >= self.size:
            return False
        self._take(requester)
        return True

    def release(self, requester: str) -> None:
        self._busy -= 1
        self._running[requester] -= 1
        if self._running[requester] <= 0:
            del self._running[requester]
            if requester not in self._waiting:
                self._served.pop(requester, None)
        self._dispatch()

    def _may_run(self, requester: str) -> bool:
        return self._busy < self.size and self._running[requester] < self.per_requester

    def _take(self, requester: str) -> None:
        self._busy += 1
        self._running[requester] += 1
        self._tick += 1
        self._served[requester] = self._tick

    def _dispatch(self) -> None:
        """Give each free slot to the waiting requester with the fewest jobs running, then the longest unserved."""
        while self._busy < self.size:
            ready = [r for r in self._waiting if self._running[r] < self.per_requester]
            if not ready:
                return
            requester = min(ready, key=lambda r: (self._running[r], self._served.get(r, 0)))
            queue = self._waiting[requester]
            future = queue.popleft()
            if not queue:
                del self._waiting[requester]
            if future.done():
                continue  # cancelled while it waited
            self._take(requester)
            future.set_result(None)

    def _forget(self, requester: str, future: asyncio.Future) -> None:
        queue = self._waiting.get(requester)
        if queue is None:
            return
        try:
            queue.remove(future)
        except ValueError:
            pass
        if not queue:
            del self._waiting[requester]
            if not self._running[requester]:
                self._served.pop(requester, None)
