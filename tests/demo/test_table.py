"""How steps are shown: an aligned table with the notice a teacher sees, or one JSON object per line."""

from __future__ import annotations

import io
import json

from dojoguard.demo.day import StepResult
from dojoguard.demo.table import JsonLines, Table

BLOCKED = StepResult(11, "17:30", "Message to a parent after 17:00", 403, "abc123", "block", ("messaging-hours",),
                     notice="Messages only 8am to 5pm. (Reference: abc123)", reached_classdojo=False,
                     name="evening_message")


def test_table_row_shows_verdict_rules_and_the_teachers_notice():
    """A blocked step's row has its verdict, that it did not reach ClassDojo, its rule, decision and notice."""
    out = io.StringIO()
    table = Table(out)
    table.header()
    table.row(BLOCKED)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("#") and "verdict" in lines[0]
    row = lines[2].split()
    assert row[:2] == ["11", "17:30"] and "block" in row and "no" in row and row[-1] == "messaging-hours"
    assert "decision abc123" in lines[3]
    assert "teacher sees: Messages only 8am to 5pm." in out.getvalue()


def test_json_lines_are_one_object_per_step():
    """--json output is one parseable object per step, with a stable name for scripts."""
    out = io.StringIO()
    JsonLines(out).row(BLOCKED)
    JsonLines(out).footer("/r.html", None)
    first, last = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["name"] == "evening_message" and first["verdict"] == "block" and first["rules"] == ["messaging-hours"]
    assert last == {"report": "/r.html", "kept": None}
