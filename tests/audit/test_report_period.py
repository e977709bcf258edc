"""Tests for the report's period: --from/--to, or the --week, --last-week and --term shortcuts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from dojoguard.audit.log import AuditLog
from dojoguard.audit.report import calendar_term, conventional_term, easter_sunday, last_week, this_week
from dojoguard.clock import FixedClock

from .conftest import invoke, make_action, make_decision, write_config

WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # the report's "today": Wednesday 25 November 2026


def test_weeks_run_monday_to_today_and_monday_to_sunday():
    assert this_week(date(2026, 11, 25)) == (date(2026, 11, 23), date(2026, 11, 25))
    assert this_week(date(2026, 11, 23)) == (date(2026, 11, 23), date(2026, 11, 23))
    assert last_week(date(2026, 11, 25)) == (date(2026, 11, 16), date(2026, 11, 22))
    assert last_week(date(2026, 11, 29)) == (date(2026, 11, 16), date(2026, 11, 22))  # a Sunday
    assert last_week(date(2026, 11, 30)) == (date(2026, 11, 23), date(2026, 11, 29))


def test_easter_and_the_conventional_terms():
    assert [easter_sunday(y) for y in (2024, 2025, 2026, 2027)] == [
        date(2024, 3, 31), date(2025, 4, 20), date(2026, 4, 5), date(2027, 3, 28)]
    assert conventional_term(date(2026, 11, 25)) == ("Autumn term 2026", date(2026, 9, 1), date(2026, 12, 31))
    assert conventional_term(date(2026, 2, 10)) == ("Spring term 2026", date(2026, 1, 1), date(2026, 4, 5))
    assert conventional_term(date(2026, 4, 6)) == ("Summer term 2026", date(2026, 4, 6), date(2026, 7, 31))
    assert conventional_term(date(2026, 8, 15))[0] == "Summer term 2026"  # August: the term just ended


def test_calendar_term_is_the_term_holding_today_or_the_one_just_ended():
    terms = ((date(2026, 9, 2), date(2026, 10, 23)), (date(2026, 11, 2), date(2026, 12, 18)))
    assert calendar_term(date(2026, 11, 25), terms) == terms[1]
    assert calendar_term(date(2026, 10, 28), terms) == terms[0]  # half-term holiday: the term just ended
    assert calendar_term(date(2027, 1, 10), terms) is None      # the calendar does not reach today
    assert calendar_term(date(2026, 8, 1), terms) is None


@pytest.fixture
def setup(tmp_path):
    clock = FixedClock(WEDNESDAY)

    def make(text: str = ""):
        write_config(tmp_path, text)
        with AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False) as log:
            for day in (datetime(2026, 9, 10, 9, tzinfo=UTC), datetime(2026, 11, 4, 9, tzinfo=UTC),
                        datetime(2026, 11, 18, 9, tzinfo=UTC), datetime(2026, 11, 24, 9, tzinfo=UTC)):
                clock.set(day)
                log.append_decision(make_action(), make_decision())
        clock.set(WEDNESDAY)
        return tmp_path / "config.yaml"

    def run(*args):
        out = tmp_path / "r.json"
        result, output = invoke(tmp_path / "config.yaml", "audit", "report", *args, "--format", "json", "-o", out,
                                clock=clock)
        doc = json.loads(out.read_text()) if result.exit_code == 0 else None
        return result, output, doc

    return make, run


def test_week_and_last_week(setup):
    make, run = setup
    make()
    result, output, doc = run("--week")
    assert result.exit_code == 0, output
    assert (doc["period"]["start"], doc["period"]["end"]) == ("2026-11-23 00:00", "2026-11-26 00:00")
    assert doc["decisions"] == 1 and doc["period"]["label"].startswith("this week")
    result, output, doc = run("--last-week")
    assert result.exit_code == 0, output
    assert (doc["period"]["start"], doc["period"]["end"]) == ("2026-11-16 00:00", "2026-11-23 00:00")
    assert doc["decisions"] == 1


def test_term_by_convention_without_a_calendar(setup):
    make, run = setup
    make()
    result, output, doc = run("--term")
    assert result.exit_code == 0, output
    assert (doc["period"]["start"], doc["period"]["end"]) == ("2026-09-01 00:00", "2026-11-26 00:00")
    assert doc["decisions"] == 4 and "Autumn term 2026" in doc["period"]["label"]


def test_term_from_the_school_calendar(setup, tmp_path):
    make, run = setup
    (tmp_path / "calendar.yaml").write_text(
        "terms:\n  - {name: Autumn 1, from: 2026-09-02, to: 2026-10-23}\n"
        "  - {name: Autumn 2, from: 2026-11-02, to: 2026-12-18}\n", "utf-8")
    make(f'rules:\n  calendar: "{tmp_path / "calendar.yaml"}"\n')
    result, output, doc = run("--term")
    assert result.exit_code == 0, output
    assert (doc["period"]["start"], doc["period"]["end"]) == ("2026-11-02 00:00", "2026-11-26 00:00")
    assert doc["decisions"] == 3 and "school calendar" in doc["period"]["label"]


@pytest.mark.parametrize(("args", "message"), [
    ((), "no period: give the period as --from DAY --to DAY, or as one of --week, --last-week or --term"),
    (("--from", "2026-11-23"), "--from needs --to too"),
    (("--to", "2026-11-27"), "--to needs --from too"),
    (("--week", "--last-week"), "--week and --last-week were both given"),
    (("--term", "--from", "2026-11-23", "--to", "2026-11-27"), "--term and --from and --to were both given"),
    (("--week", "--to", "2026-11-27"), "--week and --to were both given"),
])
def test_exactly_one_way_of_giving_the_period(setup, args, message):
    make, run = setup
    make()
    result, output, _ = run(*args)
    assert result.exit_code == 2 and message in output, output


def test_from_and_to_still_work(setup):
    make, run = setup
    make()
    result, output, doc = run("--from", "2026-11-01", "--to", "2026-11-30")
    assert result.exit_code == 0, output
    assert doc["decisions"] == 3 and doc["period"]["label"] == "01 November 2026 to 30 November 2026"
