"""Scheduled checks: counts looked at on a timetable ("Friday 15:00: classes with fewer than two videos
this week"), for what did not happen, which no decision on a write can see.

A check is not a decision on anything a teacher sent: it produces a line in
the leaders' report and, if it names recipients, an alert. The proxy runs
the checks that fall due (``dojoguard.proxy.scheduled``); ``dojoguard rules
test`` can run one against given counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from dojoguard.rules.conditions import Tally
from dojoguard.rules.decision import Alert
from dojoguard.rules.history import History
from dojoguard.rules.spans import Span


@dataclass(frozen=True)
class Check:
    id: str
    description: str
    clause: str
    days: frozenset[int]  # 0 Monday .. 6 Sunday
    minute: int  # minutes after midnight, school time
    tally: Tally
    span: Span
    compare: Callable[[int, int], bool]
    limit: int
    comparison: str  # "fewer_than", ... as written
    per: str  # "class" or "teacher"
    alert: Alert | None = None
    file: str = ""
    line: int = 0

    def due_at(self, local: datetime) -> bool:
        """Whether the check runs in the minute ``local`` (already in the school's time zone)."""
        return local.weekday() in self.days and local.hour * 60 + local.minute == self.minute

    def run(self, now: datetime, history: History, keys: Iterable[str], tz: ZoneInfo) -> list[tuple[str, int]]:
        """Each key (class or teacher id) whose count over the span ending ``now`` meets the comparison.

        ``keys`` are every class (or teacher) the school has: one that did nothing at all has a count of
        0 and is found by ``fewer_than``, which is the point of a scheduled check.
        """
        since, until = self.span.start(now, tz), now.timestamp() + 1e-6
        every = set(keys) | set(history.keys(self.tally.id))
        every.discard("?")
        found = []
        for key in sorted(every):
            n = history.count(self.tally.id, key, since, until)
            if self.compare(n, self.limit):
                found.append((key, n))
        return found
