"""Time windows: wall-clock hours across the clock changes, closed days, and the next opening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dojoguard.rules.calendar import BankHolidays, SchoolCalendar
from dojoguard.rules.window import build_window

LONDON = ZoneInfo("Europe/London")
SPEC = {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "17:00",
        "closed_on": ["bank_holidays"]}


@pytest.fixture
def window():
    return build_window("school-hours", SPEC, LONDON, SchoolCalendar(), BankHolidays())


@pytest.mark.parametrize("at, expected", [
    ("2026-11-30T07:59:59+00:00", False),
    ("2026-11-30T08:00:00+00:00", True),
    ("2026-11-30T16:59:59+00:00", True),
    ("2026-11-30T17:00:00+00:00", False),
    ("2027-04-12T07:00:00+00:00", True),    # 08:00 BST
    ("2027-04-12T06:59:00+00:00", False),   # 07:59 BST
    ("2027-04-12T15:59:00+00:00", True),    # 16:59 BST
    ("2027-04-12T16:00:00+00:00", False),   # 17:00 BST
    ("2026-12-05T10:00:00+00:00", False),   # Saturday
    ("2026-12-25T10:00:00+00:00", False),   # Christmas Day
    ("2026-12-28T10:00:00+00:00", False),   # Boxing Day (observed), a Monday
])
def test_is_open_at(window, at, expected):
    """The window is open from 08:00 (inclusive) to 17:00 (exclusive) local time, weekdays, not bank holidays."""
    assert window.is_open_at(datetime.fromisoformat(at)) is expected


def test_fast_check_agrees_with_the_plain_one_for_two_years(window):
    """The precomputed bisection agrees with the plain local-time check, minute by minute, over two years."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for minutes in range(0, 2 * 366 * 24 * 60, 13):
        at = start + timedelta(minutes=minutes)
        assert window.is_open_at(at) == window.is_open(at.astimezone(LONDON)), at


@pytest.mark.parametrize("at, opening", [
    ("2026-11-30T10:00:00+00:00", "2026-11-30T10:00:00+00:00"),   # open now: now
    ("2026-11-30T17:00:00+00:00", "2026-12-01T08:00:00+00:00"),
    ("2026-12-04T18:00:00+00:00", "2026-12-07T08:00:00+00:00"),   # Friday evening -> Monday
    ("2026-12-24T18:00:00+00:00", "2026-12-29T08:00:00+00:00"),   # skips 25, 26, 28 Dec
    ("2027-03-27T12:00:00+00:00", "2027-03-30T08:00:00+01:00"),   # across the spring change, Easter Monday
    ("2026-10-24T12:00:00+01:00", "2026-10-26T08:00:00+00:00"),   # across the autumn change
])
def test_next_opening(window, at, opening):
    """The next opening is the first 08:00 local on an open day, in the right UTC offset."""
    assert window.next_opening(datetime.fromisoformat(at)) == datetime.fromisoformat(opening)


def test_school_calendar_closes_the_window():
    """Days the calendar names (closures, holidays) close a window that asks for them."""
    calendar = SchoolCalendar(terms=((datetime(2026, 9, 1).date(), datetime(2027, 7, 20).date()),),
                              closures=frozenset({datetime(2026, 12, 1).date()}))
    window = build_window("w", {**SPEC, "closed_on": ["closures"]}, LONDON, calendar, BankHolidays())
    assert not window.is_open_at(datetime(2026, 12, 1, 10, tzinfo=UTC))
    assert window.is_open_at(datetime(2026, 12, 2, 10, tzinfo=UTC))
    # Without bank holidays in closed_on, Christmas Day (a Friday) is open.
    assert window.is_open_at(datetime(2026, 12, 25, 10, tzinfo=UTC))


def test_window_until_midnight():
    """A window may end at 24:00, the end of the day."""
    window = build_window("late", {"days": ["mon"], "from": "18:00", "to": "24:00"}, LONDON, SchoolCalendar(),
                          BankHolidays())
    assert window.is_open_at(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert not window.is_open_at(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))


@pytest.mark.parametrize("region, day, closed", [
    ("england-and-wales", "2026-08-31", True),    # Late Summer Bank Holiday
    ("scotland", "2026-08-31", False),
    ("scotland", "2026-08-03", True),              # Summer Bank Holiday (Scotland)
    ("northern-ireland", "2026-03-17", True),      # St Patrick's Day
    ("none", "2026-12-25", False),
])
def test_bank_holiday_regions(region, day, closed):
    """Bank holidays follow the region the rule file names."""
    assert (datetime.fromisoformat(day).date() in BankHolidays(region)) is closed
