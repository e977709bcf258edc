"""What an alert email says about a scheduled check's finding: the check, its description and the class, no more."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dojoguard.alerts.compose import body
from dojoguard.alerts.outbox import Batch, alerts_of

AT = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def test_a_check_finding_reads_as_a_finding_naming_the_class():
    fields = {"check": "two-videos-a-week", "per": "class", "class": "c-owls", "count": 1, "limit": 2,
              "comparison": "fewer_than", "within": "this week",
              "alerts": [{"rule": "two-videos-a-week", "to": ["headteacher"], "when": "now"}]}
    [alert] = alerts_of(7, "r" * 32, AT.isoformat(), "check.found", fields)
    batch = Batch("b1", "headteacher", "now", AT, 0, AT, None, None, None, None)
    text = body(batch, [alert], ZoneInfo("Europe/London"),
                names=lambda kind, id_: "Owls" if (kind, id_) == ("class", "c-owls") else None,
                describe=lambda rule: "Classes that posted fewer than two videos this week"
                if rule == "two-videos-a-week" else None)
    assert "a scheduled check found something, under rule two-videos-a-week" in text
    assert "Rule: Classes that posted fewer than two videos this week" in text
    assert "Class: Owls (c-owls)" in text and "Teacher" not in text
