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
    assert result.exit_code == 1 and "'nope' is not a reference" in output
    result, output = invoke(cfg_path, "audit", "show", "0" * 32, clock=clock)
    assert result.exit_code == 1 and "no record with the reference" in output


def test_show_takes_the_reference_shortened_as_a_teacher_reads_it(tmp_path, clock):
    """The first 8 characters (any case, spaced, after "Reference:") find the decision; fewer are refused."""
    cfg_path, decisions = setup_log(tmp_path, clock)
    wanted = decisions[1].decision_id
    for given in (wanted[:8], wanted[:8].upper(), f"Reference: {wanted[:4]} {wanted[4:9]}"):
        result, output = invoke(cfg_path, "audit", "show", given, clock=clock)
        assert result.exit_code == 0, (given, output)
        assert json.loads(output)["id"] == wanted
    result, output = invoke(cfg_path, "audit", "show", wanted[:7], clock=clock)
    assert result.exit_code == 1 and "give at least the first 8 characters" in output


def test_find_refuses_a_start_two_records_share(tmp_path):
    """Two ids sharing their first 8 characters: the start is refused, naming both; more of it finds one."""
    from dojoguard.references import ReferenceProblem

    log = AuditLog.open(tmp_path / "audit.sqlite")
    try:
        first = log.append_decision(make_action(), make_decision(decision_id="abcdef01" + "1" * 24))
        log.append_decision(make_action(), make_decision(decision_id="abcdef01" + "2" * 24))
        try:
            log.find("abcdef01")
        except ReferenceProblem as exc:
            assert "2 records' references" in str(exc) and first.record_id in str(exc)
        else:
            raise AssertionError("an ambiguous start was accepted")
        assert log.find("abcdef011").record_id == first.record_id
        assert log.find("abcdef019") is None
    finally:
        log.close()


def test_commands_refuse_a_missing_log(tmp_path, clock):
    """Reading commands do not create a log where none is; they say where they looked."""
    cfg_path = tmp_path / "config.yaml"
    write_config(tmp_path)
    result, output = invoke(cfg_path, "audit", "verify", clock=clock)
    assert result.exit_code == 1 and "no audit log at" in output
    assert not (tmp_path / "data" / "audit.sqlite").exists()
