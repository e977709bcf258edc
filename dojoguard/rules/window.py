"""Named weekly time windows ("08:00-17:00 Monday to Friday") in the school's time zone.

Times are wall-clock: a window that opens at 08:00 opens at 08:00 GMT in
winter and 08:00 BST in summer, so the clock changes need no special case.
``from`` is inclusive and ``to`` exclusive: 16:59 is inside 08:00-17:00,
17:00 is not.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dojoguard.rules.calendar import BankHolidays, Closure, SchoolCalendar

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# What a window closed on calendar days is on a date the calendar does not cover.
CLOSED, OPEN, INCOMPLETE = "closed", "open", "incomplete"
_CALENDAR_KINDS = frozenset({Closure.SCHOOL_HOLIDAYS, Closure.INSET_DAYS, Closure.CLOSURES})

# How far ahead to look for the next opening before giving up (a window that
# never opens is a rule-file mistake caught at load).
_SEARCH_DAYS = 800
# Actions dated outside these years are nonsense (or hostile); windows are
# closed for them rather than worked out.
_SANE_YEARS = (1971, 9000)


@dataclass(frozen=True)
class Window:
    name: str
    days: frozenset[int]
    start: int  # minutes after midnight, inclusive
    end: int  # minutes after midnight, exclusive
    closed_dates: frozenset[date]
    bank_holidays: BankHolidays | None
    timezone: ZoneInfo
    # For a window closed on calendar days (school holidays, INSET days, closures): the days the school
    # calendar covers (None: no calendar), and what the window is outside them (``outside_calendar``).
    covers: tuple[date, date] | None = None
    outside_calendar: str | None = None

    # Opening and closing instants (seconds since the epoch), alternating, for
    # the years asked about so far: "is it open?" becomes one bisection, with
    # the clock changes already worked out when the edges were built.
    _edges: "_Edges" = field(default_factory=lambda: _Edges(), compare=False, repr=False)

    def is_open_at(self, at: datetime) -> bool:
        """Whether the aware time ``at`` falls inside the window (never, for absurd years)."""
        ts = at.timestamp()
        edges = self._edges
        if not edges.low <= ts < edges.high:
            if not _SANE_YEARS[0] <= at.year <= _SANE_YEARS[1]:
                return False
            self._cover(at)
            edges = self._edges
        return bisect_right(edges.instants, ts) & 1 == 1

    def is_open(self, local: datetime) -> bool:
        """Whether ``local`` (already in the window's time zone) falls inside the window."""
        if local.weekday() not in self.days:
            return False
        minute = local.hour * 60 + local.minute
        if minute < self.start or minute >= self.end:
            return False
        return not self.is_closed(local.date())

    def is_closed(self, day: date) -> bool:
        if day in self.closed_dates:
            return True
        if self.outside_calendar in (CLOSED, INCOMPLETE) and not self.knows(day):
            # A date the calendar does not cover may be a school holiday: closed, the safe reading.
            return True
        return self.bank_holidays is not None and day in self.bank_holidays

    def knows(self, day: date) -> bool:
        """Whether the school calendar covers ``day`` (always, for a window that does not depend on it)."""
        if self.outside_calendar is None:
            return True
        return self.covers is not None and self.covers[0] <= day <= self.covers[1]

    @property
    def depends_on_calendar(self) -> bool:
        return self.outside_calendar is not None

    def _cover(self, at: datetime) -> None:
        year = at.astimezone(self.timezone).year
        edges = self._edges
        first, last = year - 1, year + 1
        if edges.years and edges.years[1] - edges.years[0] < 8:
            first, last = min(first, edges.years[0]), max(last, edges.years[1])
        instants: list[float] = []
        day, end = date(first, 1, 1), date(last, 12, 31)
        while day <= end:
            if day.weekday() in self.days and not self.is_closed(day):
                instants.append(self._instant(day, self.start))
                instants.append(self._instant(day, self.end))
            day += timedelta(days=1)
        low = datetime(first, 1, 1, tzinfo=self.timezone).timestamp()
        high = datetime(last + 1, 1, 1, tzinfo=self.timezone).timestamp()
        object.__setattr__(self, "_edges", _Edges(low, high, instants, (first, last)))

    def _instant(self, day: date, minute: int) -> float:
        if minute >= 24 * 60:
            return datetime.combine(day + timedelta(days=1), time(0, 0), self.timezone).timestamp()
        return datetime.combine(day, time(minute // 60, minute % 60), self.timezone).timestamp()

    def next_opening(self, at: datetime) -> datetime:
        """When the window is next open at or after ``at`` (``at`` itself when it is open)."""
        ts = at.timestamp()
        edges = self._edges
        if not edges.low <= ts < edges.high:
            if not _SANE_YEARS[0] <= at.year <= _SANE_YEARS[1]:
                raise ValueError(f"no opening of window {self.name!r} is worked out for the year {at.year}")
            self._cover(at)
            edges = self._edges
        index = bisect_right(edges.instants, ts)
        if index & 1:
            return at
        if index < len(edges.instants):
            return datetime.fromtimestamp(edges.instants[index], self.timezone)
        return self._search_opening(at)

    def _search_opening(self, at: datetime) -> datetime:
        # Beyond the years already worked out: walk forward day by day.
        local = at.astimezone(self.timezone)
        day = local.date()
        for _ in range(_SEARCH_DAYS):
            if day.weekday() in self.days and not self.is_closed(day):
                opening = datetime.combine(day, time(self.start // 60, self.start % 60), self.timezone)
                if opening >= local:
                    return opening
            day += timedelta(days=1)
        raise ValueError(f"window {self.name!r} does not open in the next {_SEARCH_DAYS} days")


@dataclass(frozen=True)
class _Edges:
    low: float = 0.0
    high: float = 0.0
    instants: list[float] = field(default_factory=list)
    years: tuple[int, int] | None = None


def build_window(name: str, spec: dict, timezone: ZoneInfo, calendar: SchoolCalendar,
                 bank_holidays: BankHolidays) -> Window:
    """A window from its (schema-checked) rule-file mapping; the caller checks from < to."""
    closed_on = {Closure(c) for c in spec.get("closed_on", [])}
    depends = bool(closed_on & _CALENDAR_KINDS)
    closed: set[date] = set()
    for kind in closed_on - {Closure.BANK_HOLIDAYS}:
        closed |= calendar.days(kind)
    return Window(
        name=name,
        days=frozenset(DAY_NAMES.index(d) for d in spec["days"]),
        start=minutes(spec["from"]),
        end=minutes(spec["to"]),
        closed_dates=frozenset(closed),
        bank_holidays=bank_holidays if Closure.BANK_HOLIDAYS in closed_on else None,
        timezone=timezone,
        covers=calendar.covers,
        outside_calendar=spec.get("outside_calendar", CLOSED) if depends else None,
    )


def minutes(text: str) -> int:
    hours, mins = text.split(":")
    return int(hours) * 60 + int(mins)
