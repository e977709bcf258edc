"""The text of an alert email: who, when, which rule, what happened, and the reference; never content.

An alert line is built from the audit record's identifiers only (teacher and
class ids, shown by their display names; the verdict; the kind of action),
so no message text, photo or pupil's name can reach an inbox even by mistake:
none of them is in what this module is given.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from dojoguard.alerts.outbox import DAILY, Alert, Batch

Names = Callable[[str, str], str | None]

VERDICTS = {"block": "refused", "hold": "held for a leader", "defer": "queued", "warn": "sent, with a warning",
            "redact": "sent, with a part removed", "allow": "sent"}
KINDS = {"message.send": "a message to parents", "story.post": "a story post", "comment.post": "a comment",
         "points.award": "a points award", "portfolio.post": "a portfolio post", "attachment.upload": "an upload",
         "unclassified.write": "a request dojoguard did not recognise"}
# Records other than decisions that can alert (see docs/alerts.md).
EVENTS = {"inbound.language": "a parent's message in a thread a teacher opened",
          "check.found": "a scheduled check found something"}

FOOTER = ("Alerts never carry the message text, photos or pupils' names. Look a reference up in the leaders'\n"
          "console (Decisions) or with `dojoguard audit show REFERENCE`, and speak to the teacher.\n")


def subject(batch: Batch, items: list[Alert], tz: ZoneInfo) -> str:
    rules = sorted({a.rule for a in items})
    shown = ", ".join(rules[:3]) + (f" and {len(rules) - 3} more" if len(rules) > 3 else "")
    count = f"{len(items)} alert{'s' if len(items) != 1 else ''}"
    if batch.cadence == DAILY:
        return f"dojoguard daily digest for {batch.group}: {count} ({shown}), {_day(batch.formed_at, tz)}"
    return f"dojoguard alert for {batch.group}: {count} ({shown})"


def body(batch: Batch, items: list[Alert], tz: ZoneInfo, *, names: Names, describe: Callable[[str], str | None],
         most: int = 200) -> str:
    """The plain-text email: one paragraph per alert (at most ``most``; the rest are counted)."""
    lead = (f"The day's digest for the {batch.group} recipient group" if batch.cadence == DAILY
            else f"For the {batch.group} recipient group")
    lines = [f"{lead}: dojoguard stepped in {len(items)} time{'s' if len(items) != 1 else ''}.", ""]
    for alert in items[:most]:
        lines.extend(_paragraph(alert, tz, names, describe))
        lines.append("")
    if len(items) > most:
        lines += [f"... and {len(items) - most} more: see the leaders' console or the weekly report.", ""]
    lines.append(FOOTER)
    return "\n".join(lines)


def _paragraph(alert: Alert, tz: ZoneInfo, names: Names, describe: Callable[[str], str | None]) -> list[str]:
    f = alert.facts
    when = _time(alert.at, tz)
    if alert.record_type in EVENTS:
        what = EVENTS[alert.record_type]
        head = f"{when}: {what}, under rule {alert.rule}"
    else:
        verdict = VERDICTS.get(str(f.get("verdict")), str(f.get("verdict", "decided")))
        what = KINDS.get(str(f.get("kind")), f"a {f.get('kind', 'request')}")
        head = f"{when}: {what}, {verdict}, under rule {alert.rule}"
    out = [head]
    description = describe(alert.rule)
    if description:
        out.append(f"  Rule: {description}")
    # A scheduled check's finding is about a class (or a teacher), not something a teacher did.
    who = [] if alert.record_type == "check.found" and not f.get("teacher") else \
        [f"Teacher: {_named(names, 'teacher', f.get('teacher'))}"]
    if f.get("class"):
        who.append(f"Class: {_named(names, 'class', f.get('class'))}")
    if f.get("thread"):
        who.append(f"Thread: {f['thread']}")
    out.append("  " + ". ".join(who) + ".")
    out.append(f"  Reference: {alert.record_id[:8]} (in full: {alert.record_id})")
    return out


def _named(names: Names, kind: str, id_) -> str:
    if not id_:
        return "not known"
    try:
        name = names(kind, str(id_))
    except Exception:  # noqa: BLE001 - a name is a courtesy; the id always identifies them
        name = None
    return f"{name} ({id_})" if name else f"id {id_}"


def _time(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    return f"{local:%H:%M} on {local:%A} {local.day} {local:%B %Y}"


def _day(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    return f"{local:%A} {local.day} {local:%B %Y}"
