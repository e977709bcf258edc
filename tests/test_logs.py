"""Tests for the application logs: JSON lines for a SIEM, console on a terminal, and never any content."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from dojoguard.audit.log import AuditLog
from dojoguard.logs import configure_logging, enabled
from tests.audit.conftest import make_action, make_decision


@pytest.fixture(autouse=True)
def reset_structlog():
    yield
    structlog.reset_defaults()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_when_not_a_terminal():
    """With format auto and a pipe or file, each log call is one JSON object on its own line."""
    out = io.StringIO()
    configure_logging("info", "auto", stream=out)
    structlog.get_logger().info("policy reloaded", revision="abc", rules=12)
    line = json.loads(out.getvalue().strip())
    assert line["event"] == "policy reloaded" and line["revision"] == "abc" and line["rules"] == 12
    assert line["level"] == "info" and line["timestamp"].endswith("Z")


def test_console_rendering_on_a_terminal():
    """With format auto on a terminal the line is for people, not JSON."""
    out = Terminal()
    configure_logging("info", "auto", stream=out)
    structlog.get_logger().info("proxy started", port=8080)
    text = out.getvalue()
    assert "proxy started" in text and "port" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


@pytest.mark.parametrize("key", ["text", "body", "message", "image", "template", "name", "teacher_name",
                                 "message_body", "encodings"])
def test_content_bearing_keys_are_withheld(key):
    """Whatever a caller passes under a content-bearing key is replaced before rendering."""
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    structlog.get_logger().info("sent", **{key: "Tom's inhaler is in the office"}, nested={key: "secret"})
    line = json.loads(out.getvalue())
    assert line[key] == "[withheld]" and line["nested"][key] == "[withheld]"
    assert "inhaler" not in out.getvalue() and "secret" not in out.getvalue()


def test_level_filters_lower_levels():
    """At level warning, info lines are not written."""
    out = io.StringIO()
    configure_logging("warning", "json", stream=out)
    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("loud")
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["loud"]


def test_enabled_follows_the_configured_level():
    """Hot paths ask ``enabled`` before building a line; it answers as the loggers filter."""
    configure_logging("warning", "json", stream=io.StringIO())
    assert not enabled("info") and not enabled("debug") and enabled("warning") and enabled("error")
    configure_logging("info", "json", stream=io.StringIO())
    assert enabled("info") and not enabled("debug")


def test_unknown_level_or_format_is_refused():
    """A typo in the logging settings is an error, not silence."""
    with pytest.raises(ValueError, match="level"):
        configure_logging("verbose", "json")
    with pytest.raises(ValueError, match="format"):
        configure_logging("info", "xml")


def test_one_json_line_per_decision_without_content(tmp_path):
    """The audit log emits one JSON line per recorded decision, with ids and verdict but no text or names."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    with AuditLog.open(tmp_path / "audit.sqlite") as log:
        decision = make_decision()
        log.append_decision(make_action(), decision)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    decisions = [line for line in lines if line["event"] == "decision"]
    assert len(decisions) == 1
    assert decisions[0]["decision_id"] == decision.decision_id and decisions[0]["verdict"] == "block"
    assert decisions[0]["teacher"] == "t-100" and decisions[0]["pupils"] == 2
    assert "inhaler" not in out.getvalue() and "Hartley" not in out.getvalue()
