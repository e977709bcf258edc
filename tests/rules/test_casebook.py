"""Companion rule-test files: loading cases, comparing decisions, and reporting mistakes in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dojoguard.rules.casebook import load_casebook, run_cases
from dojoguard.rules.policy import builtin_path, companion_tests, load_policy
from dojoguard.yamlfile import FileProblems

from .conftest import write

CASES_NEEDED = [
    "07:59 on a Monday", "08:00 on a Monday", "16:59 on a Monday", "17:00 on a Monday",
    "07:59 on a Friday", "08:00 on a Friday", "16:59 on a Friday", "17:00 on a Friday",
    "Saturday", "bank holiday", "spring clock-change", "autumn clock-change", "exemption",
    "does nothing after it ends", "negative point", "positive point", "skill outside the five areas",
    "absence", "incident", "complaint", "meeting", "personal matter", "urgent", "long message",
    "personal device",
]


def test_shipped_cases_all_pass():
    """Every case in the shipped companion file passes against the shipped rules."""
    casebook = load_casebook(companion_tests(builtin_path()))
    policy = load_policy("builtin", calendar=casebook.calendar)
    outcomes = run_cases(casebook, policy)
    assert len(outcomes) >= 50
    assert [(o.case.name, o.failures) for o in outcomes if not o.passed] == []


@pytest.mark.parametrize("needle", CASES_NEEDED)
def test_shipped_cases_cover_the_policy(needle):
    """The shipped cases include each situation the policy names (times, days, topics, devices)."""
    names = [c.name for c in load_casebook(companion_tests(builtin_path())).cases]
    assert any(needle in name for name in names), needle


def test_every_shipped_rule_is_exercised():
    """Each shipped rule is expected to match in at least one case."""
    casebook = load_casebook(companion_tests(builtin_path()))
    expected = {rule for case in casebook.cases for rule in case.expect.get("rules", [])}
    assert {r.id for r in load_policy("builtin").rules} <= expected


def test_failing_case_says_why(tmp_path: Path):
    """A case whose decision differs is a failure naming the difference and what matched."""
    tests = write(tmp_path / "p.tests.yaml", """\
cases:
  - name: wrong on purpose
    action: {kind: points.award, channel: points, at: "2026-11-30T10:00:00+00:00", points: {value: -1},
             device: {address: 10.20.1.1}}
    expect: {verdict: allow, rules: [no-such-rule], not_rules: [positive-points-only]}
""")
    outcome = run_cases(load_casebook(tests), load_policy("builtin"))[0]
    assert not outcome.passed
    assert "expected allow, got block" in outcome.failures
    assert "the policy has no rule 'no-such-rule'" in outcome.failures
    assert "rule positive-points-only matched but should not" in outcome.failures


@pytest.mark.parametrize("text, code", [
    ("cases:\n  - {name: a, action: {kind: message.sent}, expect: {verdict: allow}}\n", "DG-RULETEST-ACTION"),
    ("cases:\n  - {name: a, action: {kind: message.send}, expect: {verdict: alow}}\n", "DG-RULETEST-VALUE"),
    ("cases:\n  - {name: a, action: {kind: message.send}}\n", "DG-RULETEST-MISSING-KEY"),
    ("case: []\n", "DG-RULETEST-UNKNOWN-KEY"),
    ("cases:\n  - {name: a, action: {kind: message.send, at: '2026-11-30T10:00:00Z'}, expect: {verdict: defer,"
     " release_at: soon}}\n", "DG-RULETEST-VALUE"),
    ("cases:\n  - name: a\n    action: {kind: message.send, at: '2026-11-30T10:00:00Z'}\n    exemptions:\n"
     "      - {id: x, rules: [r], everyone: true, from: bad, until: bad, granted_by: h, reason: r}\n"
     "    expect: {verdict: allow}\n", "DG-EXEMPT-TIME"),
    ("cases: yes\n", "DG-RULETEST-TYPE"),
])
def test_broken_test_file_problems(tmp_path: Path, text: str, code: str):
    """Mistakes in a test file are reported with a code and the line of the case."""
    with pytest.raises(FileProblems) as caught:
        load_casebook(write(tmp_path / "t.tests.yaml", text))
    problem = caught.value.problems[0]
    assert problem.code == code, str(problem)
    assert problem.line >= 1


def test_missing_test_file(tmp_path: Path):
    """A rule file without a companion test file is reported, with how to add one."""
    with pytest.raises(FileProblems) as caught:
        load_casebook(tmp_path / "none.tests.yaml")
    assert caught.value.problems[0].code == "DG-RULETEST-MISSING"
