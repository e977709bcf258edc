"""School calendar files: terms, INSET days, closures, and the errors they can have."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from dojoguard.rules.calendar import Closure, load_calendar
from dojoguard.yamlfile import FileProblems

from .conftest import EXAMPLE_CALENDAR, write


def test_example_calendar_loads():
    """The shipped example calendar loads; holidays fall between terms and INSET days are not holidays."""
    calendar = load_calendar(EXAMPLE_CALENDAR)
    assert calendar.covers == (date(2026, 9, 3), date(2027, 7, 21))
    assert date(2026, 10, 28) in calendar.days(Closure.SCHOOL_HOLIDAYS)     # half term
    assert date(2026, 12, 25) in calendar.days(Closure.SCHOOL_HOLIDAYS)
    assert date(2027, 1, 4) not in calendar.days(Closure.SCHOOL_HOLIDAYS)   # INSET day between terms
    assert date(2027, 1, 4) in calendar.days(Closure.INSET_DAYS)
    assert date(2027, 5, 6) in calendar.days(Closure.CLOSURES)
    assert date(2026, 11, 30) not in calendar.days(Closure.SCHOOL_HOLIDAYS)
    assert len(calendar.digest) == 64


def test_closure_range_covers_every_day(tmp_path: Path):
    """A closure with from and to closes every day between them, inclusive."""
    path = write(tmp_path / "cal.yaml", "terms:\n  - {from: 2026-09-01, to: 2026-12-18}\n"
                 "closures:\n  - {from: 2026-11-30, to: 2026-12-02, reason: heating failure}\n")
    calendar = load_calendar(path)
    assert calendar.closures == {date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)}


@pytest.mark.parametrize("text, code", [
    ("terms:\n  - {from: 2026-02-30, to: 2026-03-01}\n", "DG-CALENDAR-DATE"),
    ("terms:\n  - {from: 2026-09-10, to: 2026-09-01}\n", "DG-CALENDAR-DATE"),
    ("terms:\n  - {from: 2026/09/01, to: 2026-09-10}\n", "DG-CALENDAR-VALUE"),
    ("terms:\n  - {from: 2026-09-01, to: 2026-09-10}\nholidays: []\n", "DG-CALENDAR-UNKNOWN-KEY"),
    ("inset_days: []\n", "DG-CALENDAR-MISSING-KEY"),
    ("terms:\n  - {from: 20260901, to: 2026-09-10}\n", "DG-CALENDAR-TYPE"),
    ("terms:\n  - {from: 2026-09-01, to: 2026-09-10}\nclosures:\n  - {from: 2026-10-01}\n",
     "DG-CALENDAR-MISSING-KEY"),
])
def test_calendar_problems(tmp_path: Path, text: str, code: str):
    """Each kind of calendar mistake gets its own code and a line number."""
    with pytest.raises(FileProblems) as caught:
        load_calendar(write(tmp_path / "cal.yaml", text))
    problem = caught.value.problems[0]
    assert problem.code == code, str(problem)
    assert problem.line >= 1


def test_policy_reports_calendar_problems(tmp_path: Path):
    """A broken calendar stops the policy loading, with the calendar's own problems."""
    from dojoguard.rules.policy import load_policy

    bad = write(tmp_path / "cal.yaml", "terms:\n  - {from: 2026-13-01, to: 2026-12-01}\n")
    with pytest.raises(FileProblems) as caught:
        load_policy("builtin", calendar=bad)
    assert caught.value.problems[0].code == "DG-CALENDAR-DATE"
