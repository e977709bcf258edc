"""Tests for what the leaders' report says in words: exemptions, consent, who decided held items, who revoked
exemptions, names instead of ids, the weekly trend and the per-teacher table."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

from dojoguard.audit.render import render
from dojoguard.audit.report import TREND_WEEKS
from dojoguard.rules.decision import Verdict

from .conftest import make_action, make_decision
from .test_report import week
from .test_report_holds import MON, Steps


def html_of(report) -> str:
    return render(report, "html").decode("utf-8")


def text_between(html: str, start: str, end: str) -> str:
    """The text a reader sees between two element ids (tags removed, entities left as they are)."""
    first = html.index(">", html.index(f'id="{start}"')) + 1
    last = html.rindex("<", 0, html.index(f'id="{end}"'))
    return re.sub(r"<[^>]*>", " ", html[first:last])


def grant(log, **fields):
    """An exemption.granted record with the fields the grant command writes (rules/exemption_trail.py)."""
    base = {"exemption": "ex-trip", "rules": ["no-messages-after-hours"], "teacher": ["t-101"], "class": None,
            "everyone": False, "starts": "2026-11-23T08:00:00+00:00", "ends": "2026-11-27T18:00:00+00:00",
            "granted_by": "head-1", "reason": "Residential trip updates"}
    log.append_event("exemption.granted", {**base, **fields})


def test_exemptions_read_as_words_not_structures(log):
    """A grant scoped to one teacher reads "teacher t-101", one for all "everyone"; never null, false or brackets."""
    grant(log)
    grant(log, exemption="ex-all", teacher=None, everyone=True, rules=["a-rule", "b-rule"])
    grant(log, exemption="ex-class", teacher=None, **{"class": ["c-3B"]})
    report = week(log)
    by_id = {g.exemption: g for g in report.exemptions_granted}
    assert by_id["ex-trip"].teachers == ("t-101",) and by_id["ex-trip"].classes == () and not by_id["ex-trip"].everyone
    assert by_id["ex-trip"].starts == "2026-11-23 08:00" and by_id["ex-trip"].granted_by == "head-1"
    html = html_of(report)
    section = text_between(html, "exemptions", "consent")
    assert "teacher t-101" in section and "everyone" in section and "class c-3B" in section
    assert "a-rule, b-rule" in section and "Residential trip updates" in section
    assert "2026-11-23 08:00 to 2026-11-27 18:00" in section and "by head-1" in section
    assert "teachers t-101" not in section
    for raw in ("null", "false", "['", '["', "class=", "everyone="):
        assert raw not in section, raw
    rows = list(csv.DictReader(io.StringIO(render(report, "csv").decode("utf-8-sig"))))
    details = {r["exemptions"]: r["details"] for r in rows if r["type"] == "exemption.granted"}
    assert details["ex-trip"] == ("ex-trip: no-messages-after-hours switched off for teacher t-101, "
                                  "2026-11-23 08:00 to 2026-11-27 18:00; granted by head-1; "
                                  "reason: Residential trip updates")
    assert "switched off for everyone" in details["ex-all"] and "for class c-3B" in details["ex-class"]


def test_consent_changes_and_erasures_read_as_sentences(log):
    """Consent changes, imports and erasures are described in words: no key=value pairs, nulls or lists."""
    log.append_event("consent.changed", {"pupil": "s-5", "purpose": "class_story", "from": "given", "to": "refused",
                                         "source": "mis import"})
    log.append_event("consent.changed", {"staff": "st-2", "purpose": "biometric", "from": "given",
                                         "to": "withdrawn", "source": "form", "templates_removed": 2})
    log.append_event("consent.imported", {"source": "consent.csv", "pupils": 28, "changed": 3, "conflicts": 0,
                                          "accepted": 0})
    log.append_event("pupil.erased", {"pupil": "s-9", "templates_removed": 1, "requested_by": "dpo"})
    report = week(log)
    details = [i.details for i in report.consent_changes + report.erasures]
    pseudonym = json.loads(render(report, "json"))["consent"]["changes"][0]["details"].split(":")[0]
    assert pseudonym.startswith("pupil ") and "s-5" not in pseudonym  # pupils appear as pseudonyms only
    assert details[0] == f"{pseudonym}: class_story changed from given to refused; source: mis import"
    assert details[1] == ("staff member st-2: biometric changed from given to withdrawn; source: form; "
                          "2 face templates deleted")
    assert details[2] == "imported consent.csv: 28 pupils, 3 changes"
    assert details[3].endswith(" erased; 1 face template deleted; requested by dpo")
    html = html_of(report)
    section = text_between(html, "consent", "health")
    assert "consent changed" in section and "import from the MIS" in section and "erased from the registry" in section
    for raw in ("null", "=", "['", '["', "consent.changed"):
        assert raw not in section, raw


def test_revocations_say_who_revoked_each_exemption(log, clock):
    """exemption.revoked's revoked_by is shown, in the revocations table and against a grant of the same period."""
    grant(log)
    clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    log.append_event("exemption.revoked", {"exemption": "ex-trip", "revoked_by": "deputy-2",
                                           "at": "2026-11-24T10:00:00+00:00"})
    log.append_event("exemption.revoked", {"exemption": "ex-older", "revoked_by": "head-1"})
    report = week(log)
    assert [(i.exemptions, i.by) for i in report.revocations] == [("ex-trip", "deputy-2"), ("ex-older", "head-1")]
    assert report.exemptions_granted[0].revoked_by == "deputy-2"
    assert report.exemptions_granted[0].revoked_at == "2026-11-24 10:00"
    html = html_of(report)
    table = html[html.index('id="revocations-table"'):]
    assert "<code>ex-trip</code></td><td>deputy-2</td>" in table and "<code>ex-older</code></td><td>head-1</td>" in table
    assert '<span class="when">2026-11-24 10:00</span><br>by deputy-2' in html
    doc = json.loads(render(report, "json"))["exemptions"]
    assert [r["by"] for r in doc["revoked"]] == ["deputy-2", "head-1"]


def test_held_card_counts_items_still_waiting_and_who_decided_each(log, clock):
    """Two holds both decided: the card says 0 waiting (not "2 held"); the table says who approved or rejected."""
    steps = Steps(log, clock)
    steps.created("h-1", MON + timedelta(hours=9), teacher="t-7", klass="c-3A")
    steps.created("h-2", MON + timedelta(hours=10))
    steps.step("hold.approved", "h-1", MON + timedelta(hours=11), by="head-1")
    steps.step("hold.rejected", "h-2", MON + timedelta(hours=12), by="deputy-2", reason="No consent for photos",
               state="pending")
    report = week(log)
    assert report.by_verdict["hold"] == 2 and report.waiting_for_leader == 0
    html = html_of(report)
    assert '<div class="n" id="count-hold">0</div>' in html and "2 held in this period" in html
    decided = {i.hold: i for i in report.hold_decisions}
    assert (decided["h-1"].state, decided["h-1"].by, decided["h-1"].teacher) == ("approved", "head-1", "t-7")
    assert (decided["h-2"].state, decided["h-2"].by, decided["h-2"].reason) == ("rejected", "deputy-2",
                                                                                "No consent for photos")
    table = html[html.index('id="hold-decisions-table"'):]
    assert "<td>approved</td><td>head-1</td>" in table and "<td>rejected</td><td>deputy-2</td>" in table
    doc = json.loads(render(report, "json"))["holds"]
    assert doc["waiting_for_a_leader"] == 0 and [d["by"] for d in doc["decisions"]] == ["head-1", "deputy-2"]


def test_held_card_counts_undecided_holds_at_the_periods_end(log, clock):
    """A hold still undecided at the end counts; one decided after the end still counts; expired ones do not."""
    steps = Steps(log, clock)
    steps.created("h-open", MON + timedelta(days=2))
    steps.created("h-later", MON + timedelta(days=3))
    steps.step("hold.approved", "h-later", MON + timedelta(days=8), by="head-1")  # after the period
    steps.created("h-expired", MON - timedelta(days=8))
    steps.step("hold.expired", "h-expired", MON + timedelta(days=1), waiting_since="2026-11-15T00:00:00+00:00")
    steps.created("d-queued", MON + timedelta(days=1), kind="defer")  # queued, not waiting for a leader
    report = week(log)
    assert report.waiting_for_leader == 2
    assert '<div class="n" id="count-hold">2</div>' in html_of(report)


def test_names_are_shown_with_their_ids_when_known(log, clock):
    """A names function turns teacher and class ids into names (id kept beside them); unknown ids stay ids."""
    known = {("teacher", "t-100"): "Mrs Khan", ("class", "c-6B"): "6B (Oak)", ("teacher", "t-7"): "Mr Lee"}
    asked: list[tuple[str, str]] = []

    def names(kind: str, key: str) -> str | None:
        asked.append((kind, key))
        return known.get((kind, key))

    for _ in range(3):
        log.append_decision(make_action(), make_decision(Verdict.BLOCK))
    log.append_decision(make_action(teacher_id="t-200", class_id=None), make_decision(Verdict.HOLD))
    grant(log, teacher=["t-100", "t-200"])
    steps = Steps(log, clock)
    steps.created("h-1", MON + timedelta(hours=9), teacher="t-7", klass="c-6B")
    steps.step("hold.approved", "h-1", MON + timedelta(hours=11), by="head-1")
    report = week(log, names=names)
    assert len(asked) == len(set(asked)), "each id is looked up once"
    assert ("class", "(no class)") not in asked and ("teacher", "(unknown)") not in asked
    assert report.names == {"teacher": {"t-100": "Mrs Khan", "t-7": "Mr Lee"}, "class": {"c-6B": "6B (Oak)"}}
    html = html_of(report)
    khan = '<span class="name" title="teacher id t-100">Mrs Khan</span> <span class="id">t-100</span>'
    oak = '<span class="name" title="class id c-6B">6B (Oak)</span> <span class="id">c-6B</span>'
    for section, following in (("stopped", "holds"), ("teachers", "exemptions"), ("exemptions", "consent")):
        part = html[html.index(f'id="{section}"'):html.index(f'id="{following}"')]
        assert khan in part, section
    for section, following in (("stopped", "holds"), ("classes", "teachers")):
        assert oak in html[html.index(f'id="{section}"'):html.index(f'id="{following}"')], section
    decisions = html[html.index('id="hold-decisions-table"'):]
    assert '<span class="name" title="teacher id t-7">Mr Lee</span>' in decisions
    assert "teachers " + khan + ", t-200" in html
    teachers = html[html.index('id="teacher-table"'):html.index('id="exemptions"')]
    assert "<td class=\"key\">t-200</td>" in teachers  # no name known: the id alone
    rows = list(csv.DictReader(io.StringIO(render(report, "csv").decode("utf-8-sig"))))
    decision_rows = [r for r in rows if r["type"] == "decision" and r["teacher"] == "t-100"]
    assert decision_rows and all(r["teacher_name"] == "Mrs Khan" and r["class_name"] == "6B (Oak)"
                                 for r in decision_rows)
    assert json.loads(render(report, "json"))["names"]["teacher"]["t-100"] == "Mrs Khan"


def test_names_are_escaped_and_never_looked_up_without_a_function(log):
    """A name holding markup is text; without a names function the report shows ids only."""
    log.append_decision(make_action(), make_decision(Verdict.BLOCK))
    html = html_of(week(log, names=lambda kind, key: "<script>document.title='x'</script>"))
    assert "<script>document" not in html and "&lt;script&gt;document.title" in html
    plain = week(log)
    assert plain.names == {"teacher": {}, "class": {}} and 'class="name"' not in html_of(plain)


def test_trend_counts_twelve_weeks_by_verdict(log, clock):
    """Decisions per local week (Monday to Sunday) by verdict, the twelve weeks ending with the period's week."""
    def decide(at: datetime, verdict: Verdict) -> None:
        clock.set(at)
        log.append_decision(make_action(), make_decision(verdict))

    decide(MON + timedelta(hours=9), Verdict.BLOCK)
    decide(MON + timedelta(days=6, hours=23, minutes=59), Verdict.ALLOW)     # Sunday night: this week
    decide(MON - timedelta(minutes=1), Verdict.WARN)                          # Sunday before: last week
    decide(MON - timedelta(weeks=11), Verdict.HOLD)                           # the first of the twelve
    # Sunday 6 September 23:59 in London (summer time): the week before the twelve, not shown.
    decide(MON - timedelta(weeks=11, minutes=61), Verdict.HOLD)
    decide(MON + timedelta(weeks=1), Verdict.BLOCK)                           # after the period: not shown
    log.append_event("policy.reloaded", {"policy_revision": "abc", "rules": 3})  # not a decision
    report = week(log)
    assert len(report.trend) == TREND_WEEKS == 12
    assert report.trend[-1].key == "2026-11-23" and report.trend[0].key == "2026-09-07"
    assert (report.trend[-1].total, report.trend[-1].verdicts["block"], report.trend[-1].verdicts["allow"]) == (2, 1, 1)
    assert (report.trend[-2].total, report.trend[-2].verdicts["warn"]) == (1, 1)
    assert (report.trend[0].total, report.trend[0].verdicts["hold"]) == (1, 1)
    assert sum(w.total for w in report.trend) == 4
    html = html_of(report)
    table = html[html.index('id="trend-table"'):]
    assert '<tr><td class="when">2026-11-23</td><td class="n">2</td>' in table
    assert json.loads(render(report, "json"))["trend"]["weeks"][-1]["verdicts"]["block"] == 1


def test_trend_weeks_follow_local_time(log, clock):
    """In summer time a decision at 23:30 UTC on Sunday is Monday 00:30 local: the next week."""
    from datetime import date

    from dojoguard.audit.report import build_report, period_bounds

    from .test_report import LONDON
    clock.set(datetime(2026, 6, 7, 23, 30, tzinfo=UTC))  # Monday 8 June 00:30 BST
    log.append_decision(make_action(), make_decision(Verdict.BLOCK))
    start, end = period_bounds(date(2026, 6, 8), date(2026, 6, 10), LONDON)
    report = build_report(log, start, end, tz=LONDON, now=end)
    assert report.trend[-1].key == "2026-06-08" and report.trend[-1].total == 1
    assert report.trend[-2].total == 0


def test_per_teacher_table_has_decisions_blocked_held_deferred_and_warned(log):
    for verdict in (Verdict.BLOCK, Verdict.BLOCK, Verdict.HOLD, Verdict.DEFER, Verdict.WARN, Verdict.ALLOW):
        log.append_decision(make_action(teacher_id="t-1"), make_decision(verdict))
    html = html_of(week(log))
    table = html[html.index('id="teacher-table"'):html.index('id="exemptions"')]
    assert ("<tr><th>Teacher</th><th class=\"n\">decisions</th><th class=\"n\">blocked</th><th class=\"n\">held</th>"
            "<th class=\"n\">deferred</th><th class=\"n\">warned</th></tr>") in table
    assert ('<tr><td class="key">t-1</td><td class="n">6</td><td class="n">2</td><td class="n">1</td>'
            '<td class="n">1</td><td class="n">1</td></tr>') in table


def test_scheduled_check_findings_have_their_own_section_in_words(log):
    """A check.found record reads as a sentence in "Scheduled checks"; check.ran is not listed there."""
    log.append_event("check.found", {"check": "two-videos-a-week", "per": "class", "class": "c-owls", "count": 1,
                                     "limit": 2, "comparison": "fewer_than", "within": "this week",
                                     "alerts": [{"rule": "two-videos-a-week", "to": ["headteacher"], "when": "now"}]})
    log.append_event("check.ran", {"check": "two-videos-a-week", "looked_at": 3, "found": 1})
    report = week(log)
    assert [i.details for i in report.checks] == [
        "two-videos-a-week: class c-owls had 1 (fewer than 2, this week)"]
    section = text_between(html_of(report), "checks", "policy")
    assert "two-videos-a-week: class c-owls had 1 (fewer than 2, this week)" in section
    assert "check.ran" not in section
    assert report.to_dict()["checks"][0]["details"].startswith("two-videos-a-week")


def test_no_scheduled_checks_section_without_findings(log):
    assert 'id="checks"' not in html_of(week(log))


def test_system_health_shows_the_school_calendars_last_day(log, tmp_path):
    from dojoguard.audit.report import calendar_health
    from zoneinfo import ZoneInfo

    london = ZoneInfo("Europe/London")
    calendar = tmp_path / "school.calendar.yaml"
    calendar.write_text("school: T\nterms:\n  - {name: Summer, from: 2027-04-12, to: 2027-07-21}\n")
    line, attention = calendar_health(calendar, datetime(2027, 5, 1, tzinfo=UTC), london)
    assert line == "The school calendar runs to Wednesday 21 July 2027." and not attention
    line, attention = calendar_health(calendar, datetime(2027, 7, 1, tzinfo=UTC), london)
    assert "20 days away: add next year's terms" in line and attention
    line, attention = calendar_health(calendar, datetime(2027, 8, 1, tzinfo=UTC), london)
    assert line.startswith("The school calendar ended on Wednesday 21 July 2027") and attention
    line, attention = calendar_health(None, datetime(2027, 8, 1, tzinfo=UTC), london)
    assert line.startswith("No school calendar is set") and attention
    report = week(log)
    assert report.calendar_line == ""  # made without the settings: nothing said
    from dojoguard.audit.report import build_report

    report = build_report(log, report_start := datetime(2026, 11, 23, tzinfo=UTC), report_start + timedelta(days=7),
                          tz=london, now=datetime(2027, 8, 1, tzinfo=UTC), calendar=calendar)
    section = text_between(html_of(report), "health", "checks" if report.checks else "policy")
    assert "The school calendar ended on Wednesday 21 July 2027" in section
