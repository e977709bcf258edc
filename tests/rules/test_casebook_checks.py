"""Companion tests that could never fail are refused: an unknown rule id, a calendar that is not there."""

from __future__ import annotations

import re

from click.testing import CliRunner

from dojoguard.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def test_a_companion_test_naming_a_rule_that_does_not_exist_fails(tmp_path):
    """`not_rules: [messaging-hour]` could never fail: `rules test` refuses it, naming the rule meant."""
    folder = tmp_path / "rules"
    run("rules", "init", folder)
    tests = folder / "st-wilfrids.tests.yaml"
    text = tests.read_text("utf-8")
    assert "not_rules: [messaging-hours]" in text
    tests.write_text(text.replace("not_rules: [messaging-hours]", "not_rules: [messaging-hour]", 1), encoding="utf-8")
    result = run("rules", "test", folder)
    assert result.exit_code == 2, result.output
    assert "DG-RULETEST-UNKNOWN-RULE" in result.output and "'messaging-hour'" in result.output
    assert "Did you mean 'messaging-hours'?" in result.output
    assert re.search(r"st-wilfrids\.tests\.yaml:\d+:\d+: DG-RULETEST-UNKNOWN-RULE", result.output)


def test_a_missing_calendar_named_by_the_tests_is_reported_at_its_line(tmp_path):
    """The companion tests' calendar is not there: the error names the line and says how to get it."""
    folder = tmp_path / "rules"
    run("rules", "init", folder)
    (folder / "example.calendar.yaml").unlink()
    result = run("rules", "test", folder)
    assert result.exit_code == 2
    assert re.search(r"st-wilfrids\.tests\.yaml:\d+:\d+: DG-RULETEST-CALENDAR the calendar "
                     r"'example\.calendar\.yaml' the cases assume is not there", result.output)
    assert "rules init" in result.output
