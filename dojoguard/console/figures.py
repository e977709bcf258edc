"""What the console's pages show, read straight from the audit log's indexes.

The overview and the search never build the whole report: they ask SQLite
for counts over the ``at`` index (``json_extract`` of the verdict, teacher
and class of each decision in the range) and for one page of matching
records, on a read-only snapshot connection so a proxy writing at the same
time is never held up. ``benchmarks/console_bench.py`` measures both against
a school year of decisions.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dojoguard.audit.events import EVENTS
from dojoguard.audit.record import format_time, parse_time
from dojoguard.audit.report import this_week
from dojoguard.audit.schema import DECISION_CLASS, DECISION_TEACHER

_RELATED = tuple(sorted(n for n in EVENTS if n.startswith(("hold.", "defer.", "teacher.")) or n == "exemption.used"))
VERDICTS = ("allow", "warn", "redact", "defer", "hold", "block")
PAGE_SIZE = 50


def week_start(day: date) -> date:
    return this_week(day)[0]


def local_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[str, str]:
    """The stored-time range [start, end) of the local days ``first`` to ``last`` inclusive."""
    return (format_time(datetime.combine(first, time(0), tz)),
            format_time(datetime.combine(last + timedelta(days=1), time(0), tz)))


@dataclass
class Week:
    first: date
    by_verdict: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_verdict.values())


@dataclass
class Overview:
    first: date
    last: date
    by_verdict: Counter
    by_teacher: dict[str, Counter]
    by_rule: Counter
    trend: list[Week]

    @property
    def total(self) -> int:
        return sum(self.by_verdict.values())


# ``+type``: read the range through the ``at`` index. Left to itself SQLite picks the type index and walks
# every decision of the log (0.33 s for a year against 0.28 s for twelve weeks through ``at``).
_DAY = ("SELECT json_extract(body, '$.verdict'), json_extract(body, '$.teacher'), COUNT(*) FROM records "
        "WHERE at >= ? AND at < ? AND +type = 'decision' GROUP BY 1, 2")
_DAY_RULES = ("SELECT json_extract(m.value, '$.rule'), COUNT(*) FROM records AS r, json_each(r.body, '$.matched') AS m "
              "WHERE r.at >= ? AND r.at < ? AND +r.type = 'decision' GROUP BY 1")
_DAY_STAMP = "SELECT COUNT(*), MAX(seq) FROM records WHERE at >= ? AND at < ?"


@dataclass(frozen=True)
class Day:
    """One local day's decisions counted by (verdict, teacher), and the rules that matched."""

    stamp: tuple[int, int | None]
    by_verdict_teacher: dict[tuple[str, str], int]
    by_rule: dict[str, int]


class Days:
    """Counted days, kept between requests and counted again only when their records change.

    A day is stamped with the number of its records and the highest seq among
    them, read from the ``at`` index alone (an index-only count: milliseconds
    for twelve weeks). A day whose stamp is unchanged is not read again: the
    log is append-only, so only today (or a day a purge cut) is counted anew.
    """

    def __init__(self) -> None:
        self._days: dict[date, Day] = {}
        self._lock = threading.Lock()

    def day(self, conn, day: date, tz: ZoneInfo) -> Day:
        start, end = local_bounds(day, day, tz)
        stamp = tuple(conn.execute(_DAY_STAMP, (start, end)).fetchone())
        with self._lock:
            known = self._days.get(day)
        if known is not None and known.stamp == stamp:
            return known
        counted = Day(stamp, {(v, t or ""): n for v, t, n in conn.execute(_DAY, (start, end))},
                      dict(conn.execute(_DAY_RULES, (start, end)).fetchall()))
        with self._lock:
            self._days[day] = counted
        return counted


def overview(conn, today: date, tz: ZoneInfo, *, weeks: int = 12, days: Days | None = None) -> Overview:
    """This week's figures (Monday to ``today``), per teacher and per rule, and the last ``weeks`` weeks."""
    days = days or Days()
    first = week_start(today)
    by_verdict: Counter = Counter()
    by_teacher: dict[str, Counter] = defaultdict(Counter)
    by_rule: Counter = Counter()
    trend = []
    for back in range(weeks - 1, -1, -1):
        monday = first - timedelta(weeks=back)
        week = Week(monday)
        for offset in range(7):
            day = monday + timedelta(days=offset)
            if day > today:
                break
            counted = days.day(conn, day, tz)
            for (verdict, teacher), n in counted.by_verdict_teacher.items():
                week.by_verdict[verdict] += n
                if back == 0:
                    by_verdict[verdict] += n
                    by_teacher[teacher][verdict] += n
            if back == 0:
                by_rule.update(counted.by_rule)
        trend.append(week)
    return Overview(first, today, by_verdict, dict(by_teacher), by_rule, trend)


@dataclass(frozen=True)
class Query:
    first: date
    last: date
    teacher: str | None = None
    klass: str | None = None
    rule: str | None = None
    verdict: str | None = None
    page: int = 1


@dataclass(frozen=True)
class Found:
    seq: int
    id: str
    at: datetime
    fields: dict[str, Any]


@dataclass
class Results:
    rows: list[Found]
    more: bool
    page: int


def search(conn, query: Query, tz: ZoneInfo) -> Results:
    """One page of decisions matching ``query``, newest first."""
    start, end = local_bounds(query.first, query.last, tz)
    # With a teacher or class, their index finds the year's few hundred at once; otherwise the ``at`` index,
    # walked newest first, stops at the page's end.
    by_person = bool(query.teacher or query.klass)
    where, args = ["at >= ?", "at < ?", "type = 'decision'" if by_person else "+type = 'decision'"], [start, end]
    if query.teacher:
        where.append(f"{DECISION_TEACHER} = ?")  # the index's own expression, so that SQLite uses the index
        args.append(query.teacher)
    if query.klass:
        where.append(f"{DECISION_CLASS} = ?")
        args.append(query.klass)
    if query.verdict:
        where.append("json_extract(body, '$.verdict') = ?")
        args.append(query.verdict)
    if query.rule:
        where.append("EXISTS (SELECT 1 FROM json_each(body, '$.rules') WHERE value = ?)")
        args.append(query.rule)
    offset = (max(1, query.page) - 1) * PAGE_SIZE
    rows = conn.execute(f"SELECT seq, id, at, body FROM records WHERE {' AND '.join(where)} "
                        f"ORDER BY at DESC, seq DESC LIMIT ? OFFSET ?", (*args, PAGE_SIZE + 1, offset)).fetchall()
    found = [Found(seq, id_, parse_time(at), json.loads(body)) for seq, id_, at, body in rows[:PAGE_SIZE]]
    return Results(found, len(rows) > PAGE_SIZE, max(1, query.page))


def related(conn, decision_id: str, limit: int = 50) -> list[tuple[str, str, dict]]:
    """Events that name this decision (its hold's steps, the exemption used), oldest first."""
    # Through the type index: these are a few records a day among the decisions.
    rows = conn.execute(f"SELECT seq, at, type, body FROM records WHERE type IN ({', '.join('?' * len(_RELATED))}) "
                        "AND json_extract(body, '$.decision_id') = ? ORDER BY seq LIMIT ?",
                        (*_RELATED, decision_id, limit)).fetchall()
    # Who was told: the alert emails that name it (a list of references, not one decision_id).
    rows += conn.execute("SELECT seq, at, type, body FROM records WHERE type IN ('alert.sent', 'alert.failed') "
                         "AND EXISTS (SELECT 1 FROM json_each(body, '$.references') WHERE value = ?) "
                         "ORDER BY seq LIMIT ?", (decision_id, limit)).fetchall()
    return [(at, type_, json.loads(body)) for _seq, at, type_, body in sorted(rows)[:limit]]
