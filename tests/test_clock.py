"""Times as teachers are told them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dojoguard.clock import when

LONDON = ZoneInfo("Europe/London")


def test_a_time_is_said_in_the_schools_time_zone():
    """07:00 UTC in British Summer Time is 8.00am, on the school's day, with no leading zero on the hour."""
    assert when(datetime(2027, 4, 12, 7, 0, tzinfo=UTC), LONDON) == "8.00am on Monday 12 April"


def test_noon_and_midnight_are_twelve():
    """The 12-hour clock says 12, never 0, at noon and at midnight."""
    assert when(datetime(2026, 11, 30, 12, 5, tzinfo=UTC), LONDON) == "12.05pm on Monday 30 November"
    assert when(datetime(2026, 11, 30, 0, 0, tzinfo=UTC), LONDON) == "12.00am on Monday 30 November"


def test_without_a_time_zone_the_time_is_said_as_given():
    """No school time zone: the time is said in the zone it carries."""
    assert when(datetime(2026, 12, 4, 15, 30, tzinfo=UTC), None) == "3.30pm on Friday 4 December"
