"""Stretches of time a rule counts over: "48 hours", "1 week" (sliding), or "today", "this week" (calendar).

A sliding span ends at the action and reaches back a fixed time; a calendar
span starts at the beginning of the school's day, week (Monday) or month, in
the school's time zone, so "this week" on a Monday morning holds only
Monday's actions. Spans are parsed once, when the policy loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
SLIDING = re.compile(r"^([1-9][0-9]{0,3}) (minute|hour|day|week)s?$")
CALENDAR = ("today", "this week", "this month")
# What a span may reach back at most: how long the proxy keeps what it counts (32 days covers a month).
LONGEST = 32 * 86400


class SpanError(ValueError):
    pass


@dataclass(frozen=True)
class Span:
    text: str
    seconds: int = 0  # sliding spans
    calendar: str = ""  # "today", "this week" or "this month"

    @property
    def reach(self) -> int:
        """The most seconds this span can reach back (what the store must keep)."""
        return self.seconds or {"today": 86400, "this week": 7 * 86400, "this month": 31 * 86400}[self.calendar]

    def start(self, at: datetime, tz: ZoneInfo) -> float:
        """When the span that ends at ``at`` begins, in seconds since the epoch."""
        if self.seconds:
            return at.timestamp() - self.seconds
        local = at.astimezone(tz)
        day = local.date()
        if self.calendar == "this week":
            day -= timedelta(days=local.weekday())
        elif self.calendar == "this month":
            day = day.replace(day=1)
        return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def parse_span(text: str) -> Span:
    """A span from its rule-file text; ``SpanError`` says what is wrong."""
    text = " ".join(str(text).split()).lower()
    if text in CALENDAR:
        return Span(text, calendar=text)
    found = SLIDING.match(text)
    if not found:
        raise SpanError(f"{text!r} is not a length of time")
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    if seconds > LONGEST:
        raise SpanError(f"{text!r} is longer than dojoguard keeps counts (32 days)")
    return Span(text, seconds=seconds)


def duration(text: str) -> timedelta:
    """A fixed length of time ("48 hours", "2 days"), for conditions that compare ages."""
    found = SLIDING.match(" ".join(str(text).split()).lower())
    if not found:
        raise SpanError(f"{text!r} is not a length of time")
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])
