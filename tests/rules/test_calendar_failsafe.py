"""A window closed on school holidays never opens on a date the school calendar does not know.

Each `outside_calendar` mode before, inside and after the calendar, and with
no calendar; a queued message whose window will not open again; the
warnings `rules check` and `decide` give; and the ways around it tried: a
calendar that ended yesterday, a bank-holidays-only window, a clock change
at the calendar's edge.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.decision import Verdict
from dojoguard.rules.policy import builtin_calendar, load_policy

from .conftest import write
from .test_cli import run

CALENDAR = ("school: Test School\nterms:\n  - {name: Autumn, from: 2026-09-03, to: 2026-12-18}\n"
            "  - {name: Spring, from: 2027-01-05, to: 2027-03-26}\n")


def rules(mode: str | None, closed_on: str = "[bank_holidays, school_holidays]") -> str:
    option = f"    outside_calendar: {mode}\n" if mode else ""
    return (f"default: {{verdict: allow}}\nwindows:\n  hours:\n    days: [mon, tue, wed, thu, fri]\n"
            f"    from: '08:00'\n    to: '17:00'\n    closed_on: {closed_on}\n{option}"
            "rules:\n"
            "  - {id: out-of-hours, when: {kind: message.send, outside: hours}, verdict: defer, "
            "release_window: hours, notice: n, clause: c}\n"
            "  - {id: cannot-tell, when: {incomplete: true}, verdict: hold, notice: n, clause: c}\n")


def message(at: str) -> Action:
    return Action(Kind.MESSAGE_SEND, Channel.MESSAGE, datetime.fromisoformat(at), teacher_id="t1", text="PE")


IN_TERM = "2026-11-30T10:00:00+00:00"  # a Monday in the autumn term
HALF_TERM = "2026-12-21T10:00:00+00:00"  # a Monday between the terms: the Christmas holidays
BEFORE = "2026-09-01T10:00:00+01:00"  # a Tuesday before the first term
AFTER = "2027-08-02T10:00:00+01:00"  # a Monday in the summer, after the last term


@pytest.fixture
def policy_of(tmp_path):
    def load(mode: str | None, *, calendar: bool = True, closed_on: str = "[bank_holidays, school_holidays]"):
        folder = tmp_path / f"{mode}-{calendar}-{len(closed_on)}"
        folder.mkdir()
        path = write(folder / "rules.yaml", rules(mode, closed_on))
        cal = write(folder / "school.calendar.yaml", CALENDAR) if calendar else None
        return load_policy(path, calendar=cal)
    return load


@pytest.mark.parametrize("mode", [None, "closed"])
def test_by_default_the_window_is_closed_before_and_after_the_calendar(policy_of, mode):
    policy = policy_of(mode)
    window = policy.windows["hours"]
    assert window.is_open_at(datetime.fromisoformat(IN_TERM))
    for at in (HALF_TERM, BEFORE, AFTER):
        assert not window.is_open_at(datetime.fromisoformat(at)), at
        assert policy.evaluate(message(at)).rule_ids[0] == "out-of-hours"


def test_without_a_calendar_it_is_closed_every_day(policy_of):
    policy = policy_of(None, calendar=False)
    for at in (IN_TERM, HALF_TERM, AFTER):
        assert not policy.windows["hours"].is_open_at(datetime.fromisoformat(at))
    # Deferred, it could never be released: a person decides instead.
    decision = policy.evaluate(message(IN_TERM))
    assert decision.verdict is Verdict.HOLD and decision.release_at is None
    assert "does not open again" in decision.notice


def test_open_follows_only_days_times_and_bank_holidays(policy_of):
    policy = policy_of("open")
    window = policy.windows["hours"]
    assert window.is_open_at(datetime.fromisoformat(BEFORE)) and window.is_open_at(datetime.fromisoformat(AFTER))
    assert not window.is_open_at(datetime.fromisoformat(HALF_TERM))  # a known holiday is still a holiday
    assert not window.is_open_at(datetime(2027, 5, 31, 10, tzinfo=UTC))  # Spring bank holiday


def test_incomplete_closes_the_window_and_makes_the_action_incomplete(policy_of):
    policy = policy_of("incomplete")
    after = policy.evaluate(message(AFTER))
    assert set(after.rule_ids) == {"out-of-hours", "cannot-tell"} and after.verdict is Verdict.HOLD
    assert policy.evaluate(message(IN_TERM)).verdict is Verdict.ALLOW
    # A holiday the calendar knows is just closed, not incomplete.
    assert "cannot-tell" not in policy.evaluate(message(HALF_TERM)).rule_ids


def test_a_bank_holidays_only_window_does_not_depend_on_the_calendar(policy_of):
    policy = policy_of(None, calendar=False, closed_on="[bank_holidays]")
    window = policy.windows["hours"]
    assert not window.depends_on_calendar
    assert window.is_open_at(datetime.fromisoformat(AFTER))


def test_a_message_on_the_last_afternoon_of_term_waits_for_the_next_term(policy_of):
    policy = policy_of(None)
    decision = policy.evaluate(message("2026-12-18T17:30:00+00:00"))
    assert decision.verdict is Verdict.DEFER
    assert decision.release_at == datetime(2027, 1, 5, 8, 0, tzinfo=UTC)


def test_after_the_last_term_a_queued_message_waits_for_a_person(policy_of):
    # After the spring term nothing is known: the window does not open again, so it cannot be queued.
    decision = policy_of(None).evaluate(message("2027-03-26T17:30:00+00:00"))
    assert decision.verdict is Verdict.HOLD and decision.release_at is None


def test_the_calendars_edge_is_the_schools_day_not_utc(policy_of, tmp_path):
    """The calendar covers the school's local days: 23:30 UTC on 2 September 2026 is already the 3rd (BST),
    the first day of term, so a message then is judged by the calendar, not as outside it."""
    window = policy_of(None).windows["hours"]
    assert window.knows(date(2027, 3, 26)) and not window.knows(date(2027, 3, 27))
    assert window.knows(datetime(2026, 9, 2, 23, 30, tzinfo=UTC).astimezone(window.timezone).date())  # 00:30 BST 3rd


def test_rules_check_warns_with_no_calendar_and_about_one_that_ended(tmp_path):
    settings = write(tmp_path / "config.yaml", f"data_dir: {tmp_path / 'data'}\n")
    path = write(tmp_path / "rules.yaml", rules(None))
    none = run(settings, "rules", "check", str(path))
    assert none.exit_code == 0
    assert "no school calendar is set, but window(s) hours close on school holidays" in none.output
    assert "closed on every day" in none.output
    ended = run(settings, "rules", "check", str(path), "--calendar", str(write(tmp_path / "s.calendar.yaml",
                                                                                CALENDAR)),
                now=datetime(2027, 3, 27, 9, tzinfo=UTC))
    assert ended.exit_code == 0 and "the school calendar ends on 2027-03-26" in ended.output
    assert "Add next year's terms" in ended.output
    soon = run(settings, "rules", "check", str(path), "--calendar", str(tmp_path / "s.calendar.yaml"),
               now=datetime(2027, 3, 1, 9, tzinfo=UTC))
    assert "add next year's terms soon" in soon.output
    fine = run(settings, "rules", "check", str(path), "--calendar", str(tmp_path / "s.calendar.yaml"),
               now=datetime(2026, 10, 1, 9, tzinfo=UTC))
    assert "warning" not in fine.output


def test_decide_says_when_a_date_is_outside_the_calendar(tmp_path):
    settings = write(tmp_path / "config.yaml", f"data_dir: {tmp_path / 'data'}\n")
    path = write(tmp_path / "rules.yaml", rules(None))
    result = run(settings, "decide", "--policy", str(path), "--calendar", str(builtin_calendar()), "--action", "-",
                 "--at", "2027-08-02T10:00", input='{"kind": "message.send", "channel": "message", "text": "hi"}')
    assert result.exit_code == 0, result.output
    assert "window hours: 2027-08-02 is outside the school calendar (which covers 2026-09-03 to 2027-07-21)" \
        in result.stderr
    assert '"verdict": "hold"' in result.stdout


def test_the_shipped_policy_uses_its_example_calendar_and_fails_safe_after_it():
    policy = load_policy("builtin")
    assert policy.calendar.covers == (date(2026, 9, 3), date(2027, 7, 21))
    summer = Action(Kind.MESSAGE_SEND, Channel.MESSAGE, datetime(2027, 8, 2, 10, tzinfo=UTC), teacher_id="t1",
                    device_address="10.20.1.5", text="See you in September")
    assert "messaging-hours" in policy.evaluate(summer).rule_ids
