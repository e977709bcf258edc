"""Tests for the report's "Held and queued items" section, on a real audit log.

The steps of each item are written as the proxy and the `held` commands write
them (``hold.created`` after its decision, then approvals, sends, failures and
a person's follow-up), and the report is built from that log alone.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from dojoguard.audit.events import EVENTS
from dojoguard.audit.privacy import ContentRefused
from dojoguard.audit.render import render
from dojoguard.audit.report import HOLD_GRACE_DAYS, HOLD_OUTCOMES, build_report, period_bounds
from dojoguard.rules.decision import Verdict

from .conftest import invoke, make_action, make_decision, write_config
from .test_report import LONDON, week

# The report's week is Monday 23 to Sunday 29 November 2026 (London is on GMT: local = UTC).
MON = datetime(2026, 11, 23, tzinfo=UTC)
LAST_WEEK = MON - timedelta(days=7)
NEXT_MON = MON + timedelta(days=7)
TEXT = "Please remember Tom's inhaler tomorrow"  # what make_action's teacher typed
TEACHER_NAME = "Mrs Amelia Hartley"


class Steps:
    """Writes held and queued items' steps into the log, with the fields the proxy and commands give."""

    def __init__(self, log, clock):
        self.log, self.clock = log, clock
        self.items: dict[str, dict] = {}

    def created(self, hold: str, when: datetime, *, teacher="t-100", klass="c-6B", kind="hold") -> str:
        """The decision that held (or queued) it, then its created record; returns the decision id."""
        self.clock.set(when)
        decision = make_decision(Verdict.HOLD if kind == "hold" else Verdict.DEFER, rule="video-review")
        self.log.append_decision(make_action(teacher_id=teacher, class_id=klass), decision)
        self.items[hold] = {"decision_id": decision.decision_id, "kind": kind, "teacher_id": teacher,
                            "class_id": klass}
        # Like the proxy: hold.created names the item, its decision and the rules, not the teacher.
        self.log.append_event(f"{kind}.created", {"hold": hold, "decision_id": decision.decision_id,
                                                  "rules": ["video-review"]})
        return decision.decision_id

    def step(self, event: str, hold: str, when: datetime, **fields) -> None:
        """One later step; the item's kind, decision, teacher and class as the releaser records them."""
        self.clock.set(when)
        known = self.items.setdefault(hold, {"decision_id": f"d-{hold}", "kind": event.split(".")[0],
                                             "teacher_id": "t-100", "class_id": "c-6B"})
        self.log.append_event(event, {"hold": hold, **known, **fields})


@pytest.fixture
def steps(log, clock) -> Steps:
    return Steps(log, clock)


def needs(report) -> dict[str, object]:
    return {i.hold: i for i in report.needs_person}


def test_counts_each_step_of_the_period_by_kind(log, steps):
    """Each step (held, queued, approved, rejected, released, failed, expired, uncertain, closed) is counted
    in the period only, split by kind."""
    steps.created("h-before", LAST_WEEK)  # before the period: not counted as held this week
    steps.step("hold.approved", "h-before", LAST_WEEK + timedelta(hours=1), by="Mrs Head")
    steps.step("hold.released", "h-before", LAST_WEEK + timedelta(hours=2), attempts=1, status=200)
    for n in range(3):
        steps.created(f"h-{n}", MON + timedelta(hours=9 + n))
    steps.step("hold.approved", "h-0", MON + timedelta(hours=11), by="Mrs Head")
    steps.step("hold.released", "h-0", MON + timedelta(hours=11, minutes=1), attempts=1, status=200)
    steps.step("hold.rejected", "h-1", MON + timedelta(hours=12), by="Mrs Head", reason="No consent", state="pending")
    steps.step("defer.released", "d-0", MON + timedelta(days=1, hours=8), attempts=1)
    steps.step("defer.failed", "d-1", MON + timedelta(days=1, hours=8), attempts=5, error="HTTPError 503")
    steps.step("defer.expired", "d-2", MON + timedelta(days=2), waiting_since="2026-11-16T08:00:00+00:00")
    steps.step("defer.uncertain", "d-3", MON + timedelta(days=2), sent_at="2026-11-25T08:00:00+00:00",
               error="no answer (proxy stopped)")
    steps.step("hold.closed", "d-3", MON + timedelta(days=3), kind="defer", by="IT office",
               reason="It is on ClassDojo", state="uncertain")
    steps.step("hold.rejected", "d-4", MON + timedelta(days=3), kind="defer", by="Mrs Head", reason="Not needed",
               state="pending")
    steps.step("defer.released", "d-5", NEXT_MON + timedelta(hours=8), attempts=1)  # after the period
    report = week(log)
    counts = {r.key: r.total for r in report.hold_outcomes}
    assert counts == {"held": 3, "queued": 0, "approved": 1, "rejected": 2, "released": 2, "failed": 1,
                      "expired": 1, "uncertain": 1, "closed": 1}
    by_kind = {r.key: r.verdicts for r in report.hold_outcomes}
    assert by_kind["rejected"] == {"hold": 1, "defer": 1} and by_kind["released"] == {"hold": 1, "defer": 1}
    assert tuple(r.key for r in report.hold_outcomes) == HOLD_OUTCOMES


@pytest.mark.skipif("defer.created" not in EVENTS, reason="defer.created is not in the event catalogue yet")
def test_defer_created_counts_as_queued(log, steps):
    """A deferred item's defer.created counts as queued, not held, and never as waiting for a leader."""
    steps.created("d-new", MON + timedelta(hours=20), kind="defer")
    report = week(log)
    counts = {r.key: r.total for r in report.hold_outcomes}
    assert counts["queued"] == 1 and counts["held"] == 0
    assert report.needs_person == ()


def test_wait_for_a_leader_median_and_longest(log, steps):
    """The wait runs from hold.created to the first approve or reject, even when the hold was made before the period."""
    steps.created("h-late", MON - timedelta(days=3))                       # Friday 20 Nov, 00:00
    steps.step("hold.approved", "h-late", MON + timedelta(hours=18), by="Mrs Head")   # 90 hours later
    steps.created("h-quick", MON + timedelta(hours=9))
    steps.step("hold.approved", "h-quick", MON + timedelta(hours=11), by="Mrs Head")  # 2 hours
    steps.step("hold.rejected", "h-quick", MON + timedelta(hours=12), by="Mrs Head", reason="Changed my mind",
               state="approved")  # a second decision on the same hold: not a second wait
    steps.created("h-slow", MON + timedelta(hours=10))
    steps.step("hold.rejected", "h-slow", MON + timedelta(hours=40), by="Mrs Head", reason="No consent",
               state="pending")  # 30 hours
    # A queued message a leader rejected never waited for a leader.
    steps.step("hold.rejected", "d-0", MON + timedelta(hours=50), kind="defer", by="Mrs Head", reason="x",
               state="pending")
    report = week(log)
    assert report.hold_wait == {"decisions": 3, "median_hours": 30.0, "longest_hours": 90.0}


def test_no_decision_means_no_wait_figures(log, steps):
    """Without a decision in the period the wait figures are empty, not zero."""
    steps.created("h-0", MON + timedelta(hours=9))
    report = week(log)
    assert report.hold_wait == {"decisions": 0, "median_hours": None, "longest_hours": None}
    assert "No held item was approved or rejected in this period." in render(report, "html").decode()


def test_needs_a_person_lists_each_state_uncertain_first(log, steps):
    """Uncertain, failed and expired items and holds waiting over a day are listed, uncertain first; others are not."""
    steps.created("h-waiting", MON + timedelta(days=1, hours=9), teacher="t-7", klass="c-3A")
    steps.created("h-fresh", NEXT_MON - timedelta(hours=4))  # waiting, but for less than a day
    steps.created("h-sending", MON + timedelta(hours=9))
    steps.step("hold.approved", "h-sending", MON + timedelta(hours=10), by="Mrs Head")
    steps.step("hold.retrying", "h-sending", MON + timedelta(hours=10), attempts=1, error="HTTPError 503")
    steps.step("defer.waiting_for_login", "d-login", MON + timedelta(hours=8), status=401, error="logged out")
    steps.step("defer.released", "d-sent", MON + timedelta(hours=8), attempts=1)
    steps.step("hold.failed", "h-failed", MON + timedelta(days=1), attempts=5, error="HTTPError 503",
               teacher_id="t-8", class_id="c-4B")
    steps.step("defer.expired", "d-expired", MON + timedelta(days=2), waiting_since="2026-11-16T08:00:00+00:00")
    steps.step("defer.uncertain", "d-uncertain", MON + timedelta(days=3, hours=8, minutes=1),
               sent_at="2026-11-26T08:00:00+00:00", error="no answer (proxy stopped)")
    report = week(log)
    listed = needs(report)
    assert [i.hold for i in report.needs_person] == ["d-uncertain", "h-failed", "d-expired", "h-waiting"]
    assert [i.state for i in report.needs_person] == ["uncertain", "failed", "expired", "waiting"]
    uncertain = listed["d-uncertain"]
    assert uncertain.kind == "defer" and uncertain.at == "2026-11-26 08:01"
    assert uncertain.reason.startswith("uncertain: send began 08:00 Thu 26 Nov; no answer (proxy stopped)")
    assert uncertain.command.splitlines() == [
        "dojoguard held show d-uncertain", 'dojoguard held resend d-uncertain --by "YOUR NAME"',
        'dojoguard held close d-uncertain --reason "It is on ClassDojo" --by "YOUR NAME"']
    failed = listed["h-failed"]
    assert (failed.teacher, failed.klass) == ("t-8", "c-4B")
    assert failed.reason == "failed after 5 attempt(s): HTTPError 503; not sent"
    assert "dojoguard held retry h-failed" in failed.command and "held close h-failed" in failed.command
    assert listed["d-expired"].reason == "expired: waiting since 08:00 Mon 16 Nov, never sent"
    assert "held retry d-expired" in listed["d-expired"].command
    waiting = listed["h-waiting"]
    # hold.created names no teacher: the report takes it from the hold's decision record.
    assert (waiting.kind, waiting.teacher, waiting.klass, waiting.rules) == ("hold", "t-7", "c-3A", "video-review")
    assert waiting.reason == "waiting for a leader's decision since 09:00 Tue 24 Nov (5 day(s))"
    assert "dojoguard held approve h-waiting" in waiting.command and "held reject h-waiting" in waiting.command


def test_expired_hold_never_approved_is_offered_approve_or_reject(log, steps):
    """A hold that expired waiting for a leader is offered approve or reject; one that expired after its
    approval is offered retry or close (approving it again would be refused)."""
    steps.created("h-undecided", MON - timedelta(days=6))
    steps.step("hold.expired", "h-undecided", MON + timedelta(days=1), waiting_since="2026-11-17T00:00:00+00:00")
    steps.created("h-approved", MON - timedelta(days=6))
    steps.step("hold.approved", "h-approved", MON - timedelta(days=6, hours=-1), by="Mrs Head")
    steps.step("hold.waiting_for_login", "h-approved", MON - timedelta(days=6, hours=-2), status=401, error="x")
    steps.step("hold.expired", "h-approved", MON + timedelta(days=1), waiting_since="2026-11-17T02:00:00+00:00")
    listed = needs(week(log))
    assert "held approve h-undecided" in listed["h-undecided"].command
    approved = listed["h-approved"].command
    assert "held approve" not in approved and "held retry h-approved" in approved


def test_uncertain_item_from_before_the_period_still_shows(log, steps):
    """An item held last week whose send was cut short last week is still listed this week, though not counted."""
    steps.created("h-old", LAST_WEEK + timedelta(hours=10), teacher="t-9", klass="c-5A")
    steps.step("hold.approved", "h-old", LAST_WEEK + timedelta(hours=12), by="Mrs Head")
    steps.step("hold.uncertain", "h-old", MON - timedelta(days=3, hours=-8, minutes=-5),
               sent_at="2026-11-20T08:00:00+00:00", error="no answer (proxy stopped)")
    report = week(log)
    assert [i.hold for i in report.needs_person] == ["h-old"]
    item = report.needs_person[0]
    assert item.state == "uncertain" and item.at == "2026-11-20 08:05" and (item.teacher, item.klass) == ("t-9", "c-5A")
    assert "send began 08:00 Fri 20 Nov" in item.reason
    assert {r.key: r.total for r in report.hold_outcomes}["uncertain"] == 0


def test_items_acted_on_later_leave_the_list(log, steps):
    """Resent, closed, retried, rejected, released or approved later: the latest record decides, so they are gone."""
    steps.step("hold.uncertain", "h-resent", LAST_WEEK, sent_at="2026-11-16T08:00:00+00:00", error="no answer")
    steps.step("hold.resent", "h-resent", MON + timedelta(hours=9), by="IT office")
    steps.step("defer.uncertain", "d-closed", LAST_WEEK, sent_at="2026-11-16T08:00:00+00:00", error="no answer")
    steps.step("hold.closed", "d-closed", MON + timedelta(hours=9), kind="defer", by="IT office",
               reason="It is on ClassDojo", state="uncertain")
    steps.step("defer.failed", "d-retried", MON, attempts=5, error="HTTPError 503")
    steps.step("hold.retried", "d-retried", MON + timedelta(hours=9), kind="defer", by="IT office")
    steps.step("defer.released", "d-retried", MON + timedelta(hours=9, minutes=1), attempts=1)
    steps.created("h-decided", MON - timedelta(days=3))
    steps.step("hold.expired", "h-decided", MON, waiting_since="2026-11-20T00:00:00+00:00")
    steps.step("hold.rejected", "h-decided", MON + timedelta(hours=9), by="Mrs Head", reason="x", state="expired")
    steps.created("h-approved", MON)
    steps.step("hold.approved", "h-approved", MON + timedelta(days=3), by="Mrs Head")
    assert week(log).needs_person == ()


def test_an_item_uncertain_again_after_a_resend_is_listed_again(log, steps):
    """A resend does not clear an item for good: cut short again, it is back on the list."""
    steps.step("hold.uncertain", "h-0", MON, sent_at="2026-11-23T00:00:00+00:00", error="no answer")
    steps.step("hold.resent", "h-0", MON + timedelta(hours=9), by="IT office")
    steps.step("hold.uncertain", "h-0", MON + timedelta(hours=10), sent_at="2026-11-23T09:59:00+00:00",
               error="HTTPError 502")
    report = week(log)
    assert [(i.hold, i.state, i.at) for i in report.needs_person] == [("h-0", "uncertain", "2026-11-23 10:00")]
    assert "send began 09:59 Mon 23 Nov; HTTPError 502" in report.needs_person[0].reason


def test_a_step_after_the_period_does_not_change_it(log, steps):
    """The list is as the period ended: an item closed after the end is still listed in that period's report."""
    steps.step("hold.failed", "h-0", MON + timedelta(days=2), attempts=5, error="HTTPError 503")
    steps.step("hold.closed", "h-0", NEXT_MON + timedelta(hours=9), kind="hold", by="IT office", reason="x",
               state="failed")
    assert [i.hold for i in week(log).needs_person] == ["h-0"]
    start, end = period_bounds(date(2026, 11, 30), date(2026, 12, 6), LONDON)
    later = build_report(log, start, end, tz=LONDON, now=end)
    assert later.needs_person == () and {r.key: r.total for r in later.hold_outcomes}["closed"] == 1


def test_the_look_back_is_bounded_by_the_maximum_age(log, steps):
    """Items are followed back holds.max_age_days plus the grace period before the period, and no further."""
    reach = 7 + HOLD_GRACE_DAYS
    steps.step("hold.failed", "h-inside", MON - timedelta(days=reach) + timedelta(minutes=1), attempts=5, error="x")
    # London is on summer time five weeks back: the look-back starts at local midnight (23:00 UTC).
    steps.step("hold.failed", "h-outside", MON - timedelta(days=reach + 1) + timedelta(hours=2), attempts=5,
               error="x")
    report = week(log)
    assert [i.hold for i in report.needs_person] == ["h-inside"]
    assert report.holds_since == "2026-10-19 00:00"
    # A school that lets items wait longer looks back further.
    assert {i.hold for i in week(log, hold_max_age_days=8).needs_person} == {"h-inside", "h-outside"}
    for bad in (-1, "7", 1.5, True):
        with pytest.raises(ValueError, match="holds.max_age_days"):
            week(log, hold_max_age_days=bad)


def test_tampered_item_is_not_listed_and_its_found_fields_are_not_used(log, steps):
    """An item set aside as tampered is not offered for sending; the teacher named in the changed row is not shown."""
    steps.step("hold.failed", "h-0", MON + timedelta(days=1), attempts=5, error="HTTPError 503")
    steps.step("hold.tampered", "h-0", MON + timedelta(days=2), found="its seal does not match",
               teacher_id="t-forged", state="approved")
    steps.step("hold.failed", "h-1", MON + timedelta(days=1), attempts=5, error="HTTPError 503")
    steps.step("hold.tampered", "h-1", MON + timedelta(days=2), found="its seal does not match",
               teacher_id="t-forged")
    steps.step("hold.failed", "h-1", MON + timedelta(days=3), attempts=5, error="HTTPError 503")
    report = week(log)
    assert [(i.hold, i.teacher) for i in report.needs_person] == [("h-1", "t-100")]
    assert report.health["hold.tampered"] == 2


def test_no_message_text_or_name_appears_in_any_format(log, steps):
    """The section is built from ids and steps: the teacher's text and name never reach HTML, JSON or CSV."""
    steps.created("h-0", MON + timedelta(hours=9))
    steps.step("hold.approved", "h-0", MON + timedelta(hours=10), by="Mrs Head")
    steps.step("hold.uncertain", "h-0", MON + timedelta(hours=11), sent_at="2026-11-23T10:59:00+00:00",
               error="no answer")
    report = week(log)
    assert [i.hold for i in report.needs_person] == ["h-0"]
    for fmt in ("html", "json", "csv"):
        out = render(report, fmt).decode("utf-8-sig")
        assert "inhaler" not in out and TEXT not in out and "Hartley" not in out, fmt


def test_a_step_carrying_message_text_is_refused_by_the_log(log, steps):
    """The way round: text cannot be smuggled into the section through a hold step, the log refuses it."""
    with pytest.raises(ContentRefused):
        steps.step("hold.failed", "h-0", MON, attempts=5, error="x", message=TEXT)
    with pytest.raises(ContentRefused):
        steps.step("hold.uncertain", "h-0", MON, sent_at="2026-11-23T00:00:00+00:00", error="x" * 1001)
    assert week(log).needs_person == ()


def test_json_and_html_carry_the_section(log, steps):
    """The JSON has counts, waits and the list with ids, states and commands; the HTML shows the same."""
    steps.created("h-0", MON + timedelta(hours=9))
    steps.step("hold.approved", "h-0", MON + timedelta(hours=13), by="Mrs Head")
    steps.step("hold.uncertain", "h-0", MON + timedelta(hours=14), sent_at="2026-11-23T13:59:00+00:00",
               error="no answer (proxy stopped)")
    steps.step("defer.failed", "d-1", MON + timedelta(hours=15), attempts=5, error="HTTPError 503")
    report = week(log)
    doc = json.loads(render(report, "json"))["holds"]
    assert doc["counts"]["held"] == 1 and doc["counts"]["uncertain"] == 1 and doc["counts"]["failed"] == 1
    assert doc["wait_for_leader"] == {"decisions": 1, "median_hours": 4.0, "longest_hours": 4.0}
    assert [(i["hold"], i["state"], i["kind"]) for i in doc["needs_a_person"]] == [("h-0", "uncertain", "hold"),
                                                                                  ("d-1", "failed", "defer")]
    assert doc["needs_a_person"][0]["command"].splitlines()[1] == 'dojoguard held resend h-0 --by "YOUR NAME"'
    assert doc["looked_back_to"] == "2026-10-19 00:00"
    html = render(report, "html").decode("utf-8")
    assert "Held and queued items" in html and "Needs a person" in html
    assert '<td class="n" id="holds-uncertain">1</td>' in html
    assert "<code>dojoguard held resend h-0 --by &#34;YOUR NAME&#34;</code>" in html
    assert "uncertain: send began 13:59 Mon 23 Nov" in html
    assert html.index("<code>h-0</code>") < html.index("<code>d-1</code>")
    assert "waited 4.0 hours for a leader (median)" in html


def test_empty_section_says_nothing_needs_a_person(log):
    """With no held or queued items the section is still there, with zero counts and a plain sentence."""
    report = week(log)
    assert all(r.total == 0 for r in report.hold_outcomes) and report.needs_person == ()
    html = render(report, "html").decode("utf-8")
    assert "Nothing needs a person" in html
    assert json.loads(render(report, "json"))["holds"]["needs_a_person"] == []


def test_hostile_ids_are_escaped_and_never_offered_as_a_command(log, steps):
    """An item id or teacher id holding markup or shell syntax is shown as text, and no command is built from it."""
    steps.step("hold.uncertain", "x; rm -rf ~", MON, sent_at="2026-11-23T00:00:00+00:00", error="no answer",
               teacher_id="<script>document.title='pwned'</script>")
    steps.step("hold.failed", "<b>h</b>", MON, attempts=5, error="<img src=x onerror=alert(1)>")
    report = week(log)
    assert len(report.needs_person) == 2
    for item in report.needs_person:
        assert "dojoguard held" in item.command and item.hold not in item.command
        assert "unexpected characters" in item.command
    html = render(report, "html").decode("utf-8")
    assert "<script>document" not in html and "<b>h</b>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;document.title" in html and "x; rm -rf ~" in html


def test_report_command_json_has_the_section(tmp_path, clock):
    """`dojoguard audit report --format json` carries the section for the days asked for."""
    write_config(tmp_path)
    from dojoguard.audit.log import AuditLog
    with AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False) as log:
        steps = Steps(log, clock)
        steps.step("defer.uncertain", "d-0", MON + timedelta(hours=8), sent_at="2026-11-23T07:59:00+00:00",
                   error="no answer (proxy stopped)")
    clock.set(NEXT_MON)
    out = tmp_path / "week.json"
    result, output = invoke(tmp_path / "config.yaml", "audit", "report", "--from", "2026-11-23", "--to",
                            "2026-11-29", "--format", "json", "-o", out, clock=clock)
    assert result.exit_code == 0, output
    doc = json.loads(out.read_text())["holds"]
    assert [i["hold"] for i in doc["needs_a_person"]] == ["d-0"] and doc["counts"]["uncertain"] == 1



@pytest.mark.parametrize(("max_age", "listed"), [(7, []), (30, ["h-old"])])
def test_report_command_looks_back_by_the_schools_maximum_age(tmp_path, clock, max_age, listed):
    """`audit report` follows items back by the school's holds.max_age_days: 50 days back is beyond 7 + 28
    days, and within 30 + 28."""
    write_config(tmp_path, f"holds:\n  max_age_days: {max_age}\n")
    from dojoguard.audit.log import AuditLog
    with AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False) as log:
        Steps(log, clock).step("hold.failed", "h-old", MON - timedelta(days=50), attempts=5, error="HTTPError 503")
    clock.set(NEXT_MON)
    out = tmp_path / "week.json"
    result, output = invoke(tmp_path / "config.yaml", "audit", "report", "--from", "2026-11-23", "--to",
                            "2026-11-29", "--format", "json", "-o", out, clock=clock)
    assert result.exit_code == 0, output
    assert [i["hold"] for i in json.loads(out.read_text())["holds"]["needs_a_person"]] == listed
