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


def _one_case(folder, action: str, expect: str, extra: str = "") -> None:
    (folder / "rules.yaml").write_text(
        "default: {verdict: allow}\nrules:\n  - id: late-messages\n    when: {kind: message.send}\n"
        "    verdict: block\n    notice: n\n    clause: c\n", encoding="utf-8")
    (folder / "rules.tests.yaml").write_text(
        f"cases:\n  - name: one\n    action:\n{action}    expect: {expect}\n{extra}", encoding="utf-8")


def test_an_exemption_in_a_case_naming_an_unknown_rule_fails(tmp_path):
    """A case's own exemption that sets aside a misspelt rule could never apply: refused at its line."""
    exemption = ("    exemptions:\n      - {id: ex-1, rules: [late-mesages], everyone: true, from: 2026-11-30T00:00:00Z,"
                 " until: 2026-12-01T00:00:00Z, granted_by: head, reason: test}\n")
    _one_case(tmp_path, "      kind: message.send\n      at: 2026-11-30T10:00:00+00:00\n", "{verdict: block}",
              exemption)
    result = run("rules", "test", tmp_path / "rules.yaml")
    assert result.exit_code == 2, result.output
    assert re.search(r"rules\.tests\.yaml:8:\d+: DG-RULETEST-UNKNOWN-RULE case 'one': an exemption names rule "
                     r"'late-mesages'", result.output), result.output
    assert "Did you mean 'late-messages'?" in result.output


def test_a_misspelt_action_field_in_a_case_is_reported_at_its_own_line(tmp_path):
    """`device: {adress: ...}` on line 7 is reported on line 7, with the field meant."""
    _one_case(tmp_path, "      kind: message.send\n      at: 2026-11-30T10:00:00+00:00\n"
                        "      device:\n        adress: 10.20.1.5\n", "{verdict: block}")
    result = run("rules", "test", tmp_path / "rules.yaml")
    assert result.exit_code == 2, result.output
    assert re.search(r"rules\.tests\.yaml:7:17: DG-RULETEST-ACTION .*device\.adress: unknown field; "
                     r"Did you mean 'address'\?", result.output), result.output
