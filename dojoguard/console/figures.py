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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dojoguard.audit.events import EVENTS
from dojoguard.audit.record import format_time, parse_time

_RELATED = tuple(sorted(n for n in EVENTS if n.startswith(("hold.", "defer.", "teacher.")) or n == "exemption.used"))
VERDICTS = ("allow", "warn", "redact", "defer", "hold", "block")
PAGE_SIZE = 50


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


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


_COUNT = ("SELECT json_extract(body, '$.verdict'), json_extract(body, '$.teacher'), COUNT(*) FROM records "
          "WHERE at >= ? AND at < ? AND type = 'decision' GROUP BY 1, 2")
_RULES = ("SELECT json_extract(m.value, '$.rule'), COUNT(*) FROM records AS r, json_each(r.body, '$.matched') AS m "
          "WHERE r.at >= ? AND r.at < ? AND r.type = 'decision' GROUP BY 1")


def overview(conn, today: date, tz: ZoneInfo, *, weeks: int = 12) -> Overview:
    """This week's figures (Monday to ``today``), per teacher and per rule, and the last ``weeks`` weeks."""
    first = week_start(today)
    by_verdict: Counter = Counter()
    by_teacher: dict[str, Counter] = defaultdict(Counter)
    start, end = local_bounds(first, today, tz)
    for verdict, teacher, n in conn.execute(_COUNT, (start, end)):
        by_verdict[verdict] += n
        by_teacher[teacher or ""][verdict] += n
    by_rule = Counter(dict(conn.execute(_RULES, (start, end)).fetchall()))
    trend = []
    for back in range(weeks - 1, -1, -1):
        monday = first - timedelta(weeks=back)
        week = Week(monday)
        s, e = local_bounds(monday, monday + timedelta(days=6), tz)
        for verdict, n in conn.execute("SELECT json_extract(body, '$.verdict'), COUNT(*) FROM records "
                                       "WHERE at >= ? AND at < ? AND type = 'decision' GROUP BY 1", (s, e)):
            week.by_verdict[verdict] += n
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
    where, args = ["at >= ?", "at < ?", "type = 'decision'"], [start, end]
    if query.teacher:
        where.append("json_extract(body, '$.teacher') = ?")
        args.append(query.teacher)
    if query.klass:
        where.append("json_extract(body, '$.class') = ?")
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
    rows = conn.execute(f"SELECT at, type, body FROM records WHERE type IN ({', '.join('?' * len(_RELATED))}) "
                        "AND json_extract(body, '$.decision_id') = ? ORDER BY seq LIMIT ?",
                        (*_RELATED, decision_id, limit)).fetchall()
    return [(at, type_, json.loads(body)) for at, type_, body in rows]
