"""Tests that every audit event, command and setting is catalogued and documented for the people who use them."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from dojoguard import config as config_module
from dojoguard.audit import events
from dojoguard.cli import cli
from dojoguard.audit.privacy import ContentRefused

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Through the root group: importing dojoguard.audit.cli first would be a circular import.
audit_group = cli.commands["audit"]


def docs_text(*names: str) -> str:
    return "\n".join((DOCS / name).read_text("utf-8") for name in names)


@pytest.mark.parametrize("name", sorted(events.EVENTS))
def test_every_event_is_documented_with_its_fields(name):
    """docs/audit.md has a row for each event naming every field it carries."""
    text = docs_text("audit.md")
    row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), None)
    assert row is not None, f"{name} is not documented in docs/audit.md"
    for field in events.EVENTS[name].fields:
        assert f"`{field}`" in row, f"{name}.{field} is not documented"


def test_the_events_the_other_packages_use_are_catalogued():
    """The event names the proxy, rules and consent registry were promised all exist."""
    promised = {"policy.reloaded", "policy.rejected", "exemption.granted", "exemption.used", "exemption.revoked",
                "consent.changed", "pupil.erased", "write.unclassified", "connection.uninspectable",
                "retention.purged", "checkpoint.written", "hold.created", "hold.approved", "hold.rejected",
                "defer.released", "defer.failed"}
    assert promised <= set(events.EVENTS)


def test_check_refuses_unknown_names_and_content():
    """The catalogue check refuses a misspelt event and a content-bearing field."""
    with pytest.raises(events.UnknownEvent, match="known events"):
        events.check("hold.aproved", {})
    with pytest.raises(ContentRefused):
        events.check("hold.rejected", {"hold": "h1", "message": "the text"})
    events.check("hold.rejected", {"hold": "h1", "by": "staff-3", "reason": "not appropriate"})


@pytest.mark.parametrize("name", sorted(audit_group.commands))
def test_every_audit_command_is_documented_and_has_an_example(name):
    """Each `dojoguard audit` command appears in the docs, and its help ends with an example."""
    assert f"dojoguard audit {name}" in docs_text("audit.md", "reports.md")
    command: click.Command = audit_group.commands[name]
    assert "Example:" in command.help and "\b" in command.help
    example = command.help.split("Example:")[-1].strip().splitlines()
    assert example and example[0].startswith("dojoguard audit ")


@pytest.mark.parametrize("section", ["audit", "reports"])
def test_every_audit_and_report_setting_is_documented(section):
    """Each setting of the audit and reports sections is named in the docs."""
    text = docs_text("audit.md", "reports.md", "scheduled-jobs.md")
    defaults = config_module.load(None)[section]
    for key, value in defaults.items():
        assert f"{section}.{key}" in text or (isinstance(value, dict) and f"{section}.{key}.*" in text), \
            f"{section}.{key} is not documented"
        if isinstance(value, dict):
            for sub in value:
                assert f"`{sub}`" in text, f"{section}.{key}.{sub} is not documented"
