"""Exemption files: records, scope, time box, revocation, and how they change decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dojoguard.rules.decision import Verdict
from dojoguard.rules.exemptions import load_exemptions
from dojoguard.yamlfile import FileProblems

from .conftest import make_action, write

CONCERT = """\
- id: ex-concert
  rules: [messaging-hours]
  {scope}
  from: "2026-12-10T17:00:00+00:00"
  until: "2026-12-10T20:00:00+00:00"
  granted_by: Mrs Patel
  reason: Christmas concert
"""


def _file(tmp_path: Path, scope: str = "teachers: [t1]", extra: str = "") -> Path:
    return write(tmp_path / "exemptions.yaml", CONCERT.format(scope=scope) + extra)


def test_missing_file_means_no_exemptions(tmp_path: Path):
    """No exemptions file: nothing is exempted (and nothing fails)."""
    assert len(load_exemptions(tmp_path / "none.yaml")) == 0
    assert len(load_exemptions(None)) == 0


def test_empty_file_means_no_exemptions(tmp_path: Path):
    """An empty file or an empty list holds no exemptions."""
    assert len(load_exemptions(write(tmp_path / "e.yaml", "# nothing yet\n"))) == 0
    assert len(load_exemptions(write(tmp_path / "f.yaml", "[]\n"))) == 0


@pytest.mark.parametrize("at, teacher, verdict", [
    ("2026-12-10T18:30:00+00:00", "t1", Verdict.ALLOW),
    ("2026-12-10T16:59:00+00:00", "t1", Verdict.ALLOW),      # inside school hours anyway
    ("2026-12-10T20:00:00+00:00", "t1", Verdict.BLOCK),      # until is exclusive
    ("2026-12-10T18:30:00+00:00", "t2", Verdict.BLOCK),      # another teacher
])
def test_exemption_applies_only_inside_its_window_and_scope(policy, tmp_path, at, teacher, verdict):
    """An exemption switches its rule off only for whom it names, from `from` up to `until`."""
    exemptions = load_exemptions(_file(tmp_path))
    decision = policy.evaluate(make_action(at=at, teacher={"id": teacher}), exemptions)
    assert decision.verdict is verdict


def test_decision_names_the_exemption_and_the_exempted_rule(policy, tmp_path):
    """A decision an exemption changed lists the exemption and the match it switched off."""
    decision = policy.evaluate(make_action(at="2026-12-10T18:30:00+00:00"), load_exemptions(_file(tmp_path)))
    assert decision.exemptions_used == ("ex-concert",)
    assert [(m.rule_id, m.exempted_by) for m in decision.exempted] == [("messaging-hours", "ex-concert")]
    assert decision.matches == ()
    assert decision.by_default
    doc = decision.to_dict()
    assert doc["exemptions_used"] == ["ex-concert"] and doc["exempted"][0]["exempted_by"] == "ex-concert"


def test_exemption_does_not_hide_other_rules(policy, tmp_path):
    """Only the named rule is set aside: a personal device is still refused during the exemption."""
    decision = policy.evaluate(make_action(at="2026-12-10T18:30:00+00:00", device={"address": "192.168.0.9"}),
                               load_exemptions(_file(tmp_path)))
    assert decision.verdict is Verdict.BLOCK
    assert decision.rule_ids == ("school-devices",)
    assert decision.exemptions_used == ("ex-concert",)


@pytest.mark.parametrize("scope, action_fields, applies", [
    ("classes: [c1]", {}, True),
    ("classes: [c9]", {}, False),
    ("everyone: true", {"teacher": {"id": "anyone"}}, True),
    ("teachers: [t1]", {"teacher": None}, False),
])
def test_exemption_scope(policy, tmp_path, scope, action_fields, applies):
    """Scope by class, by everyone, or by teacher; an unknown teacher is not covered."""
    exemptions = load_exemptions(_file(tmp_path, scope))
    decision = policy.evaluate(make_action(at="2026-12-10T18:30:00+00:00", **action_fields), exemptions)
    assert (decision.verdict is Verdict.ALLOW) is applies


def test_revoked_exemption_stops_at_revocation(policy, tmp_path):
    """A revoked exemption applies before its revocation time and not after."""
    path = _file(tmp_path, extra='  revoked: {at: "2026-12-10T18:00:00+00:00", by: Mrs Patel, reason: cancelled}\n')
    exemptions = load_exemptions(path)
    before = policy.evaluate(make_action(at="2026-12-10T17:30:00+00:00"), exemptions)
    after = policy.evaluate(make_action(at="2026-12-10T18:30:00+00:00"), exemptions)
    assert before.verdict is Verdict.ALLOW and after.verdict is Verdict.BLOCK
    record = exemptions.get("ex-concert")
    assert record.status(datetime(2026, 12, 10, 19, tzinfo=UTC)) == "revoked"


def test_status_over_time(tmp_path):
    """An exemption is upcoming, then active, then expired."""
    record = load_exemptions(_file(tmp_path)).get("ex-concert")
    assert record.status(datetime(2026, 12, 10, 12, tzinfo=UTC)) == "upcoming"
    assert record.status(datetime(2026, 12, 10, 18, tzinfo=UTC)) == "active"
    assert record.status(datetime(2026, 12, 10, 21, tzinfo=UTC)) == "expired"


@pytest.mark.parametrize("text, code", [
    (CONCERT.format(scope="teachers: [t1]\n  classes: [c1]"), "DG-EXEMPT-VALUE"),
    (CONCERT.format(scope="").replace("  \n", ""), "DG-EXEMPT-VALUE"),
    (CONCERT.format(scope="teachers: [t1]").replace("+00:00\"\n  until", "\"\n  until"), "DG-EXEMPT-TIME"),
    (CONCERT.format(scope="teachers: [t1]").replace("2026-12-10T20", "2026-12-10T10"), "DG-EXEMPT-TIME"),
    (CONCERT.format(scope="teachers: [t1]").replace("2026-12-10T20:00:00", "tomorrow"), "DG-EXEMPT-TIME"),
    (CONCERT.format(scope="teachers: [t1]").replace("  until: \"2026-12-10T20:00:00+00:00\"\n", ""),
     "DG-EXEMPT-MISSING-KEY"),
    (CONCERT.format(scope="teachers: [t1]") + "  note: hi\n", "DG-EXEMPT-UNKNOWN-KEY"),
    (CONCERT.format(scope="everyone: yes"), "DG-EXEMPT-TYPE"),
    (CONCERT.format(scope="teachers: [t1]") * 2, "DG-EXEMPT-DUPLICATE-ID"),
])
def test_exemption_file_problems(tmp_path, text, code):
    """Each kind of broken exemption record gets its own code and line."""
    with pytest.raises(FileProblems) as caught:
        load_exemptions(write(tmp_path / "e.yaml", text))
    assert code in [p.code for p in caught.value.problems], caught.value
    assert all(p.line >= 1 for p in caught.value.problems)


def test_over_long_exemption_is_refused_when_limited(tmp_path):
    """With a maximum length given, a hand-written exemption longer than that is refused."""
    path = write(tmp_path / "e.yaml", CONCERT.format(scope="everyone: true").replace("2026-12-10T20",
                                                                                      "2027-01-30T20"))
    assert len(load_exemptions(path)) == 1
    with pytest.raises(FileProblems) as caught:
        load_exemptions(path, max_days=14)
    assert caught.value.problems[0].code == "DG-EXEMPT-TIME"
