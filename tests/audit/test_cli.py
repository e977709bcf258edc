"""Tests for the IT staff's views of the log: `audit tail` and `audit show` print records, never content."""

from __future__ import annotations

import json

from dojoguard.audit.log import AuditLog

from .conftest import invoke, make_action, make_decision, write_config


def setup_log(tmp_path, clock):
    cfg_path = tmp_path / "config.yaml"
    write_config(tmp_path)
    with AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False) as log:
        decisions = [make_decision() for _ in range(3)]
        for decision in decisions:
            log.append_decision(make_action(), decision)
        log.append_event("policy.reloaded", {"policy_revision": "abc", "rules": 4})
    return cfg_path, decisions


def test_tail_prints_the_latest_records_as_json_lines(tmp_path, clock):
    """`audit tail -n 2` prints the last two records, one JSON object a line."""
    cfg_path, decisions = setup_log(tmp_path, clock)
    result, output = invoke(cfg_path, "audit", "tail", "-n", "2", clock=clock)
    assert result.exit_code == 0, output
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["seq"] for line in lines] == [4, 5]
    assert lines[0]["id"] == decisions[-1].decision_id and lines[1]["type"] == "policy.reloaded"
    assert "inhaler" not in output and "Hartley" not in output


def test_tail_filters_by_type(tmp_path, clock):
    """`audit tail --type decision` shows only decisions."""
    cfg_path, _ = setup_log(tmp_path, clock)
    result, output = invoke(cfg_path, "audit", "tail", "--type", "decision", clock=clock)
    assert result.exit_code == 0, output
    assert [json.loads(line)["type"] for line in output.splitlines()] == ["decision"] * 3


def test_show_finds_a_decision_by_the_id_the_teacher_saw(tmp_path, clock):
    """`audit show ID` prints that record; an unknown id is a clear error."""
    cfg_path, decisions = setup_log(tmp_path, clock)
    result, output = invoke(cfg_path, "audit", "show", decisions[1].decision_id, clock=clock)
    assert result.exit_code == 0, output
    assert json.loads(output)["fields"]["verdict"] == "block"
    result, output = invoke(cfg_path, "audit", "show", "nope", clock=clock)
    assert result.exit_code == 1 and "no record with id 'nope'" in output


def test_commands_refuse_a_missing_log(tmp_path, clock):
    """Reading commands do not create a log where none is; they say where they looked."""
    cfg_path = tmp_path / "config.yaml"
    write_config(tmp_path)
    result, output = invoke(cfg_path, "audit", "verify", clock=clock)
    assert result.exit_code == 1 and "no audit log at" in output
    assert not (tmp_path / "data" / "audit.sqlite").exists()
