"""Tests for the leaders' report: the counts, the period, escaping, CSV safety, and what a browser shows."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dojoguard.audit.render import render
from dojoguard.audit.report import build_report, day_label, period_bounds, review_due
from dojoguard.rules.decision import Verdict

from .conftest import START, invoke, make_action, make_decision, populate, write_config

LONDON = ZoneInfo("Europe/London")
HOSTILE_RULE = "<script>document.title='pwned'</script>"
HOSTILE_REASON = "<img src=x onerror=\"document.title='pwned'\">"
HOSTILE_TEACHER = "\"><script>document.title='pwned'</script>"


def week(log, **kw):
    start, end = period_bounds(date(2026, 11, 23), date(2026, 11, 29), LONDON)
    return build_report(log, start, end, tz=LONDON, now=START + timedelta(days=7),
                        label=day_label(date(2026, 11, 23), date(2026, 11, 29)), **kw)


def test_counts_by_verdict_rule_class_and_teacher(log, clock):
    """Each decision in the period is counted once under its verdict, rules, class and teacher."""
    log.append_decision(make_action(teacher_id="t-1", class_id="c-A"), make_decision(Verdict.BLOCK, rule="r-1"))
    log.append_decision(make_action(teacher_id="t-1", class_id="c-B"), make_decision(Verdict.HOLD, rule="r-2"))
    log.append_decision(make_action(teacher_id="t-2", class_id="c-A"), make_decision(Verdict.ALLOW))
    report = week(log)
    assert report.decisions == 3
    assert report.by_verdict["block"] == 1 and report.by_verdict["hold"] == 1 and report.by_verdict["allow"] == 1
    assert {r.key: r.total for r in report.by_teacher} == {"t-1": 2, "t-2": 1}
    assert {r.key: r.total for r in report.by_class} == {"c-A": 2, "c-B": 1}
    assert {r.key: r.verdicts["block"] for r in report.by_rule}["r-1"] == 1
    assert [i.verdict for i in report.stopped] == ["block", "hold"]
    assert report.chain_ok and report.chain_records == 4


def test_period_is_local_days_and_heatmap_uses_local_hours(log, clock):
    """A record at 23:30 UTC on Sunday 22 November (GMT) is outside; 08:15 local Monday lands in Mon 08:00."""
    clock.set(datetime(2026, 11, 22, 23, 30, tzinfo=UTC))
    log.append_decision(make_action(), make_decision(Verdict.BLOCK))
    clock.set(datetime(2026, 11, 23, 8, 15, tzinfo=UTC))
    log.append_decision(make_action(), make_decision(Verdict.BLOCK))
    report = week(log)
    assert report.decisions == 1
    assert report.heatmap[0][8] == 1 and sum(map(sum, report.heatmap)) == 1


def test_events_fill_exemptions_consent_health_and_policy_sections(log, clock):
    """Exemptions, consent changes, erasures and health events appear in their own sections."""
    populate(log, clock, days=2, teachers=2, per_teacher_day=3)
    report = week(log, policy_reviewed="2025-09-01")
    assert len(report.exemptions_granted) == 1
    assert len(report.consent_changes) == 1 and len(report.erasures) == 1
    assert report.health["write.unclassified"] == 2 and report.health["policy.rejected"] == 1
    assert report.is_review_overdue and report.review_due == "2026-09-01"
    assert len(report.revisions) == 1 and report.revisions[0].decisions == report.decisions


def test_review_due_is_a_year_after_the_review():
    """The annual review falls due a year after the recorded review (28 February after a 29 February)."""
    assert review_due("2025-09-01") == date(2026, 9, 1)
    assert review_due("2024-02-29") == date(2025, 2, 28)


def hostile_log(log):
    log.append_decision(make_action(teacher_id=HOSTILE_TEACHER, class_id="<b>c</b>"),
                        make_decision(Verdict.BLOCK, rule=HOSTILE_RULE, reason=HOSTILE_REASON))


def test_html_escapes_everything_from_teachers_and_rule_files(log):
    """Markup in a rule id, reason, teacher id or class id is shown as text, never as HTML."""
    hostile_log(log)
    html = render(week(log), "html").decode("utf-8")
    assert "<script>" not in html and "<img src=x" not in html and "<b>c</b>" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html


def test_html_is_self_contained(log, clock):
    """The HTML file loads nothing from the network: charts are inline data, no external references."""
    populate(log, clock, days=1, teachers=2, per_teacher_day=2)
    html = render(week(log), "html").decode("utf-8")
    assert html.count('src="data:image/png;base64,') == 4
    assert "http://" not in html and "https://" not in html.replace("https://dojoguard.invalid", "")


def test_csv_has_every_record_and_neutralises_formulas(log):
    """The CSV lists each record of the period, and a cell starting with = is prefixed so it stays text."""
    log.append_decision(make_action(teacher_id="=HYPERLINK(\"http://x\")"), make_decision(rule="@rule"))
    log.append_event("policy.reloaded", {"policy_revision": "abc", "rules": 3})
    text = render(week(log), "csv").decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["type"] for r in rows] == ["audit.created", "decision", "policy.reloaded"]
    assert rows[1]["teacher"] == "'=HYPERLINK(\"http://x\")" and rows[1]["rules"] == "'@rule"
    assert rows[2]["details"] == "policy revision: abc; rules: 3"


def test_json_holds_the_same_figures(log, clock):
    """The JSON report carries the same counts as the HTML for machines."""
    populate(log, clock, days=1, teachers=2, per_teacher_day=4)
    report = week(log)
    doc = json.loads(render(report, "json"))
    assert doc["decisions"] == report.decisions == 8
    assert doc["by_verdict"] == report.by_verdict
    assert len(doc["heatmap"]["counts"]) == 7 and len(doc["heatmap"]["counts"][0]) == 24


def test_report_command_writes_each_format(tmp_path, clock):
    """`audit report` writes HTML, CSV and JSON files for the days asked for."""
    cfg_path = tmp_path / "config.yaml"
    write_config(tmp_path)
    from dojoguard.audit.log import AuditLog
    with AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False) as log:
        populate(log, clock, days=2, teachers=2, per_teacher_day=2)
    for fmt in ("html", "csv", "json"):
        out = tmp_path / f"report.{fmt}"
        result, output = invoke(cfg_path, "audit", "report", "--from", "2026-11-23", "--to", "2026-11-27",
                                "--format", fmt, "-o", out, clock=clock)
        assert result.exit_code == 0, output
        assert out.stat().st_size > 100
    assert json.loads((tmp_path / "report.json").read_text())["decisions"] == 8
    result, output = invoke(cfg_path, "audit", "report", "--from", "2026-11-27", "--to", "2026-11-23",
                            "-o", tmp_path / "x.html", clock=clock)
    assert result.exit_code == 1 and "before it starts" in output


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed (scripts/setup --test installs Debian's chromium): "
                    "the report is not rendered in a browser")
    return path


def headless(tmp_path, *args, timeout=90):
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp_path / 'chrome-profile'}", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path, log, clock):
    """In a real browser the report shows its headline figures and sections, and no injected script runs."""
    populate(log, clock, days=5, teachers=4, per_teacher_day=5)
    hostile_log(log)
    log.append_event("hold.uncertain", {"hold": "3f9c2a1b7d20", "kind": "hold", "decision_id": "d-1",
                                        "teacher_id": "t-100", "class_id": "c-3A",
                                        "sent_at": "2026-11-24T08:00:00+00:00", "error": "no answer (proxy stopped)"})
    report = week(log, policy_reviewed="2025-09-01")
    page = tmp_path / "report.html"
    page.write_bytes(render(report, "html"))
    result = headless(tmp_path, "--dump-dom", page.as_uri())
    dom = result.stdout
    assert "ClassDojo policy report" in dom, result.stderr[-2000:]
    assert "<title>ClassDojo policy report" in dom and "pwned" not in dom.split("</title>")[0]
    blocked = report.by_verdict["block"]
    assert f'<div class="n" id="count-block">{blocked}</div>' in dom
    assert '<div class="n" id="chain-status">intact</div>' in dom
    assert "The policy review is overdue" in dom
    for heading in ("Decisions by outcome", "Rules that stepped in", "When the policy stepped in",
                    "Blocked, held and delayed items", "By class", "By teacher", "Exemptions",
                    "Consent changes and erasures", "System health", "Policy revisions and review",
                    "Held and queued items", "Needs a person"):
        assert heading in dom
    assert 'dojoguard held resend 3f9c2a1b7d20 --by "YOUR NAME"' in dom
    assert "&lt;script&gt;document.title" in dom  # the hostile rule id is shown as text
    shot = tmp_path / "report.png"
    headless(tmp_path, "--hide-scrollbars", "--window-size=1100,1600", f"--screenshot={shot}", page.as_uri())
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20000


def test_each_rule_row_counts_the_verdict_that_rule_gave(log):
    """A warn-only rule matching beside a blocking one is counted under "warn", not under the decision's "block"."""
    from dojoguard.rules.decision import Match

    both = (Match("photo-consent", Verdict.BLOCK, "A face has no consent", "notice"),
            Match("points-five-areas", Verdict.WARN, "Points are for the five areas", "notice"))
    log.append_decision(make_action(), make_decision(Verdict.BLOCK, matches=both))
    log.append_decision(make_action(), make_decision(Verdict.WARN, rule="points-five-areas"))
    log.append_decision(make_action(), make_decision(Verdict.ALLOW))
    rows = {r.key: r for r in week(log).by_rule}
    assert rows["points-five-areas"].verdicts["warn"] == 2 and rows["points-five-areas"].verdicts["block"] == 0
    assert rows["points-five-areas"].total == 2
    assert rows["photo-consent"].verdicts["block"] == 1 and rows["photo-consent"].total == 1
    assert rows["(no rule: default)"].verdicts["allow"] == 1


def test_rule_rows_of_records_without_matched_verdicts_use_the_decision_verdict(log):
    """A record written before each rule's verdict was recorded still counts its rules, under the decision's verdict."""
    fields = {"verdict": "hold", "rules": ["old-rule"], "kind": "message.send", "channel": "message",
              "teacher": "t-1", "class": "c-1", "policy_revision": "abc"}
    from dojoguard.audit.report import _Tally

    tally = _Tally(LONDON)
    tally.add((1, "r1", "2026-11-23T09:00:00.000000Z", "decision", json.dumps(fields), "", ""))
    assert dict(tally.groups["rule"]["old-rule"]) == {"hold": 1}


def test_no_review_date_is_said_neutrally_not_as_overdue(log):
    """Without a review date the report says so, in a neutral notice; it never calls the review overdue."""
    report = week(log, policy_reviewed=None)
    assert not report.is_review_overdue and report.review_due is None
    html = render(report, "html").decode("utf-8")
    assert 'class="notice neutral" id="review">No review date set' in html
    assert "overdue" not in html.lower()


def test_review_notice_follows_the_recorded_review_date(log):
    """A review a year old is overdue (red); a recent one is not (green, with its due date)."""
    overdue = render(week(log, policy_reviewed="2025-09-01"), "html").decode("utf-8")
    assert 'class="notice bad" id="review">The policy review is overdue' in overdue
    recent = render(week(log, policy_reviewed="2026-09-01"), "html").decode("utf-8")
    assert 'class="notice ok" id="review">Policy last reviewed 2026-09-01; next review due by 2027-09-01' in recent
    assert "overdue" not in recent.lower()


def test_fresh_install_report_does_not_call_the_review_overdue(tmp_path, clock):
    """With the shipped settings (no review recorded yet) the report has no overdue banner."""
    cfg = write_config(tmp_path)
    assert cfg["reports"]["policy_reviewed"] is None
    from dojoguard.audit.log import AuditLog
    with AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False) as opened:
        opened.append_decision(make_action(), make_decision(Verdict.BLOCK))
    out = tmp_path / "fresh.html"
    result, output = invoke(tmp_path / "config.yaml", "audit", "report", "--from", "2026-11-23", "--to", "2026-11-27",
                            "-o", out, clock=clock)
    assert result.exit_code == 0, output
    html = out.read_text("utf-8")
    assert "No review date set" in html and "overdue" not in html.lower()


def test_a_recorded_review_date_in_the_settings_reaches_the_report(tmp_path, clock):
    write_config(tmp_path, 'reports:\n  policy_reviewed: "2025-09-01"\n')
    from dojoguard.audit.log import AuditLog
    with AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False) as opened:
        opened.append_decision(make_action(), make_decision(Verdict.BLOCK))
    out = tmp_path / "week.json"
    result, output = invoke(tmp_path / "config.yaml", "audit", "report", "--from", "2026-11-23", "--to", "2026-11-27",
                            "--format", "json", "-o", out, clock=clock)
    assert result.exit_code == 0, output
    policy = json.loads(out.read_text())["policy"]
    assert policy["reviewed"] == "2025-09-01" and policy["review_due"] == "2026-09-01" and policy["review_overdue"]


# Measures the page as laid out and writes the figures into the DOM for --dump-dom to carry out.
LAYOUT_PROBE = """<script>
(function () {
  const root = document.documentElement;
  const reason = document.querySelector('#stopped-table td.reason');
  const overflowing = [];
  for (const cell of document.querySelectorAll('td, th')) {
    if (cell.scrollWidth > cell.clientWidth + 1) overflowing.push(cell.closest('table').id + ': ' + cell.textContent.slice(0, 60));
  }
  const main = document.querySelector('main').getBoundingClientRect();
  const wide = [...document.querySelectorAll('table, img')].filter(e => e.getBoundingClientRect().right > main.right + 1)
      .map(e => e.id || e.alt || e.tagName);
  const probe = document.createElement('pre');
  probe.id = 'layout-probe';
  probe.textContent = JSON.stringify({viewport: root.clientWidth, scroll: root.scrollWidth,
      reason: reason ? reason.getBoundingClientRect().width : 0, overflowing: overflowing, wide: wide});
  document.body.appendChild(probe);
})();
</script>"""


def long_report_log(log, clock):
    """A week with the longest things a real report holds: 32-character decision ids, ClassDojo's 24-character
    teacher ids, long rule ids and reasons, names, grants, held items and long event details."""
    populate(log, clock, days=2, teachers=3, per_teacher_day=4)
    teacher, klass = "5f3a9c01b2d4e6f8a0c2e4f6", "6c1d2e3f4a5b6c7d8e9f0a1b"
    reason = ("A face in the photo belongs to a pupil without Class Story photo consent; the post is blocked "
              "until the photo is replaced or the face is removed, as the policy's section 4.2 requires "
              "for every pupil whose parents have not given consent")
    for verdict in (Verdict.BLOCK, Verdict.HOLD, Verdict.DEFER):
        log.append_decision(make_action(teacher_id=teacher, class_id=klass),
                            make_decision(verdict, rule="photo-consent-required-for-every-pupil-in-class-story",
                                          reason=reason))
    log.append_event("exemption.granted", {"exemption": "ex-residential-trip-2026", "rules": ["no-messages-after-hours",
                     "photo-consent-required-for-every-pupil-in-class-story"], "teacher": [teacher], "class": None,
                     "everyone": False, "starts": "2026-11-23T08:00:00+00:00", "ends": "2026-11-27T18:00:00+00:00",
                     "granted_by": "headteacher-office-0001", "reason": reason})
    log.append_event("policy.rejected", {"source": "/etc/dojoguard/rules/messages-and-photos-for-families.yaml",
                                         "problems": 20, "codes": ["DG-RULE-UNKNOWN"] * 20,
                                         "places": ["messages-and-photos-for-families.yaml:12:3:DG-RULE-UNKNOWN"] * 20})
    steps_clock = clock
    steps_clock.set(START + timedelta(hours=3))
    log.append_event("hold.uncertain", {"hold": "3f9c2a1b7d20", "kind": "hold", "decision_id": "d-1",
                                        "teacher_id": teacher, "class_id": klass,
                                        "sent_at": "2026-11-24T08:00:00+00:00", "error": "no answer (proxy stopped)"})
    return {("teacher", teacher): "Mrs Evangeline Fitzwilliam-Hargreaves", ("class", klass): "Year 6 Oak (6B)"}


@pytest.mark.slow
def test_report_fits_a_1280_pixel_window_in_headless_chromium(tmp_path, log, clock):
    """At 1280 px nothing runs off the page or out of its cell, and the reason column is wide enough to read."""
    known = long_report_log(log, clock)
    report = week(log, policy_reviewed="2026-09-01", names=lambda kind, key: known.get((kind, key)))
    html = render(report, "html").decode("utf-8")
    # The report itself allows no script (its Content-Security-Policy); this copy lets the probe run.
    html = html.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    page = tmp_path / "layout.html"
    page.write_text(html.replace("</body>", LAYOUT_PROBE + "</body>"), "utf-8")
    result = headless(tmp_path, "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=1280,2000",
                      "--dump-dom", page.as_uri())
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', result.stdout)
    assert found, result.stderr[-2000:]
    metrics = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert metrics["viewport"] == 1280, metrics
    assert metrics["scroll"] <= 1280, metrics
    assert metrics["reason"] > 200, metrics
    assert metrics["wide"] == [], metrics
    assert metrics["overflowing"] == [], metrics
