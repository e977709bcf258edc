"""The days a school is closed: bank holidays, school holidays, INSET days and closures.

Bank holidays come from the ``holidays`` package; term dates, INSET days and
one-off closures from a school calendar file (format in docs/rules.md). The
sets are built once at load, so asking "is this day closed?" is a set lookup.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import holidays

from dojoguard import schemaproblems, yamlfile
from dojoguard.rules import codes
from dojoguard.rules.codes import Code
from dojoguard.yamlfile import FileProblems, Located, Problem


class Closure(enum.StrEnum):
    """Kinds of day on which a window can stay closed (``closed_on``)."""

    BANK_HOLIDAYS = "bank_holidays"
    SCHOOL_HOLIDAYS = "school_holidays"
    INSET_DAYS = "inset_days"
    CLOSURES = "closures"


# The `holidays` package's subdivision codes for the UK.
REGIONS = {"england-and-wales": "ENG", "scotland": "SCT", "northern-ireland": "NIR", "none": None}


class BankHolidays:
    """Bank holidays of one UK region, computed a year at a time and cached."""

    def __init__(self, region: str = "england-and-wales"):
        self.region = region
        self._subdivision = REGIONS[region]
        self._years: dict[int, frozenset[date]] = {}
        if self._subdivision is not None:
            # Import the country's rules now (tens of milliseconds, once per
            # process), while the policy loads, not on a teacher's first request.
            holidays.country_holidays("GB", subdiv=self._subdivision, years=())

    def __contains__(self, day: date) -> bool:
        if self._subdivision is None:
            return False
        year = self._years.get(day.year)
        if year is None:
            year = self._years[day.year] = frozenset(
                holidays.country_holidays("GB", subdiv=self._subdivision, years=day.year))
        return day in year

    def name(self, day: date) -> str | None:
        if self._subdivision is None:
            return None
        return holidays.country_holidays("GB", subdiv=self._subdivision, years=day.year).get(day)


@dataclass(frozen=True)
class SchoolCalendar:
    """Term dates, INSET days and closures of one school."""

    terms: tuple[tuple[date, date], ...] = ()
    inset_days: frozenset[date] = frozenset()
    closures: frozenset[date] = frozenset()
    file: str = ""
    digest: str = ""
    # Days between the first term's start and the last term's end that fall in no term
    # and are not INSET days.
    school_holidays: frozenset[date] = field(default=frozenset())

    @property
    def covers(self) -> tuple[date, date] | None:
        """First and last day the calendar knows about (outside it, no school holidays are known)."""
        if not self.terms:
            return None
        return min(t[0] for t in self.terms), max(t[1] for t in self.terms)

    def days(self, kind: Closure) -> frozenset[date]:
        if kind is Closure.SCHOOL_HOLIDAYS:
            return self.school_holidays
        if kind is Closure.INSET_DAYS:
            return self.inset_days
        if kind is Closure.CLOSURES:
            return self.closures
        return frozenset()


EMPTY = SchoolCalendar()


def load_calendar(path: str | Path) -> SchoolCalendar:
    """Read and check a school calendar file; raises ``FileProblems`` with every problem."""
    path = Path(path)
    located = yamlfile.load(path)
    raw = path.read_bytes()
    return parse_calendar(located, hashlib.sha256(raw).hexdigest())


def parse_calendar(located: Located, digest: str = "") -> SchoolCalendar:
    if located.data is None:
        located.data = {}
    schema = schemaproblems.validator("dojoguard.rules", "calendar.schema.json")
    problems = schemaproblems.check(located, schema, codes.CALENDAR)
    if problems:
        raise FileProblems(problems)
    data = located.data
    terms = []
    for i, term in enumerate(data["terms"]):
        first = _date(located, ("terms", i, "from"), term["from"], problems)
        last = _date(located, ("terms", i, "to"), term["to"], problems)
        if first and last:
            if last < first:
                problems.append(located.problem(("terms", i, "to"), Code.CALENDAR_DATE,
                                                "the term ends before it starts",
                                                "Swap `from` and `to`, or check the year."))
            else:
                terms.append((first, last))
    inset = {_date(located, ("inset_days", i, "date"), d["date"], problems)
             for i, d in enumerate(data.get("inset_days") or [])}
    closures: set[date] = set()
    for i, closure in enumerate(data.get("closures") or []):
        first = _date(located, ("closures", i, "from"), closure["from"], problems)
        last = _date(located, ("closures", i, "to"), closure.get("to", closure["from"]), problems)
        if first and last:
            if last < first:
                problems.append(located.problem(("closures", i, "to"), Code.CALENDAR_DATE,
                                                "the closure ends before it starts", "Swap `from` and `to`."))
            elif (last - first).days > 400:
                problems.append(located.problem(("closures", i, "to"), Code.CALENDAR_DATE,
                                                "a closure longer than a year", "Check the year."))
            else:
                closures.update(first + timedelta(days=n) for n in range((last - first).days + 1))
    if problems:
        raise FileProblems(problems)
    terms.sort()
    inset_days = frozenset(inset - {None})
    # Staff are in school on INSET days, so they are not school holidays even between terms.
    return SchoolCalendar(tuple(terms), inset_days, frozenset(closures), located.file, digest,
                          _between_terms(terms) - inset_days)


def _between_terms(terms: list[tuple[date, date]]) -> frozenset[date]:
    holidays_: set[date] = set()
    for (_, end), (start, _) in pairwise(terms):
        day = end + timedelta(days=1)
        while day < start:
            holidays_.add(day)
            day += timedelta(days=1)
    return frozenset(holidays_)


def _date(located: Located, path: tuple, value: str, problems: list[Problem]) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(located.problem(path, Code.CALENDAR_DATE, f"{value!r} is not a real date",
                                        "Write the date as YYYY-MM-DD and check the day exists."))
        return None
