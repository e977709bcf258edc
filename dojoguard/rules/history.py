"""What the counting conditions count: for each tally and key, when the actions it counted happened.

A tally is one ``count`` condition's ``of`` and ``per`` (or the teacher's
strikes); its key is the teacher's id, the class's id, or both. Only times
are kept (seconds since the epoch), sorted, so "how many since Monday?" is
two bisections. Nothing of what the action said is kept.

This in-memory history is what ``dojoguard decide`` and the companion tests
use; the proxy keeps one that is also written to its state file
(``dojoguard.proxy.counting``), so counts survive a restart.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections.abc import Iterable

from dojoguard.rules.spans import LONGEST

# The key for an action whose teacher or class is not known: all of them are counted together, so a limit
# is reached sooner for unknown senders, never later.
UNKNOWN_KEY = "?"


class History:
    def __init__(self, *, keep_s: int = LONGEST):
        self.keep_s = keep_s
        self._times: dict[tuple[str, str], list[float]] = {}
        self._pending: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()

    def count(self, tally: str, key: str, since: float, before: float) -> int:
        """How many counted actions of ``tally`` for ``key`` happened at or after ``since`` and before ``before``."""
        times = self._times.get((tally, key))
        if not times:
            return 0
        return max(0, bisect_left(times, before) - bisect_left(times, since))

    def add(self, tally: str, key: str, at: float) -> None:
        with self._lock:
            insort(self._times.setdefault((tally, key), []), at)
            self._pending.append((tally, key, at))

    def keys(self, tally: str) -> list[str]:
        """Every key ``tally`` has counted something for."""
        return sorted(k for t, k in list(self._times) if t == tally)

    def load(self, rows: Iterable[tuple[str, str, float]]) -> None:
        """Add what an earlier run counted (not written again)."""
        with self._lock:
            for tally, key, at in rows:
                insort(self._times.setdefault((tally, key), []), at)

    def take_pending(self) -> list[tuple[str, str, float]]:
        """What was added since the last call, for a durable store to write."""
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def requeue(self, rows: list[tuple[str, str, float]]) -> None:
        """Put back rows a store could not write, to be taken again (they are already counted)."""
        with self._lock:
            self._pending[:0] = rows

    def forget_before(self, cutoff: float) -> None:
        """Drop everything counted before ``cutoff`` (no span reaches that far back)."""
        with self._lock:
            for k in list(self._times):
                times = self._times[k]
                del times[:bisect_left(times, cutoff)]
                if not times:
                    del self._times[k]
