"""Turning a ``Report`` into a file: HTML (self-contained, charts inline), CSV or JSON.

HTML is rendered by Jinja2 with autoescaping on, so a rule id, reason or
teacher id holding markup is shown as text. CSV cells that a spreadsheet would
run as a formula (starting with = + - @, tab or carriage return) are prefixed
with an apostrophe.
"""

from __future__ import annotations

import csv
import io
import json

import jinja2

from dojoguard.audit import charts
from dojoguard.audit.events import EVENTS
from dojoguard.audit.report import LIST_LIMIT, VERDICTS, Report

FORMATS = ("html", "csv", "json")
CSV_COLUMNS = ("time", "type", "id", "verdict", "kind", "channel", "teacher", "class", "device", "rules",
               "reason", "exemptions", "pupils", "faces_found", "faces_not_permitted", "details", "seq", "by",
               "teacher_name", "class_name")
_FORMULA_CHARS = "=+-@\t\r"
# How each kind of action reads in the report.
KIND_LABELS = {"message.send": "message to families", "story.post": "story post", "comment.post": "comment",
               "points.award": "points", "attachment.upload": "upload", "portfolio.post": "portfolio post",
               "unclassified.write": "unrecognised write"}
# How the held and queued items section names its rows and kinds.
HOLD_OUTCOME_LABELS = {"held": "held for a leader", "queued": "queued until their time",
                       "approved": "approved by a leader", "rejected": "rejected (never sent)",
                       "released": "sent on to ClassDojo", "failed": "failed to send",
                       "expired": "expired (waited too long)", "uncertain": "uncertain (send cut short)",
                       "closed": "closed by a person (not sent)"}
HOLD_KIND_LABELS = {"hold": "held", "defer": "queued"}
# How the consent section names its events.
EVENT_LABELS = {"consent.changed": "consent changed", "consent.imported": "import from the MIS",
                "pupil.erased": "erased from the registry"}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("dojoguard.audit", "templates"),
    autoescape=True,  # every template is HTML; never rely on the file name
    undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True,
)


def render(report: Report, fmt: str) -> bytes:
    if fmt == "html":
        return render_html(report).encode("utf-8")
    if fmt == "csv":
        return render_csv(report).encode("utf-8-sig")  # the BOM makes Excel read UTF-8
    if fmt == "json":
        return (json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


def render_html(report: Report) -> str:
    images = {
        "verdicts": charts.verdict_bars(report.by_verdict),
        "rules": charts.rule_bars(report.by_rule),
        "heatmap": charts.heatmap(report.heatmap),
        "trend": charts.trend(report.trend),
    }
    return _templates.get_template("report.html.j2").render(
        r=report, period=report.period, charts=images, verdicts=VERDICTS, limit=LIST_LIMIT, kinds=KIND_LABELS,
        hold_outcomes=HOLD_OUTCOME_LABELS, hold_kinds=HOLD_KIND_LABELS, event_labels=EVENT_LABELS,
        event_names={name: EVENTS[name].summary for name in EVENTS})


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    teachers, classes = report.names.get("teacher", {}), report.names.get("class", {})
    for i in report.all_items:
        writer.writerow([_cell(v) for v in (i.at, i.type, i.record_id, i.verdict, i.kind, i.channel, i.teacher,
                                            i.klass, i.device, i.rules, i.reason, i.exemptions, i.pupils,
                                            i.faces_found, i.faces_not_permitted, i.details, i.seq, i.by,
                                            teachers.get(i.teacher, ""), classes.get(i.klass, ""))])
    return out.getvalue()


def _cell(value):
    if value.__class__ is str and value and value[0] in _FORMULA_CHARS:
        return "'" + value
    return value
