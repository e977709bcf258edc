"""Policy.language_checks: the rules whose condition uses `language:`, as tests of any text."""

from __future__ import annotations

import pytest

from dojoguard.rules.decision import Alert
from dojoguard.rules.policy import load_policy

from .conftest import write

RULES = """\
default: {verdict: allow}
windows:
  day: {days: [mon, tue, wed, thu, fri], from: '08:00', to: '17:00'}
lists:
  swears: {phrases: [shit, bloody]}
  insults: {phrases: [twit]}
  polite: {phrases: [please]}
device_groups:
  school: [10.20.0.0/16]
rules:
  - id: swearing
    when: {language: swears}
    verdict: block
    alert: [headteacher]
    notice: n
    clause: c
  - id: insults-on-school-devices-out-of-hours
    when: {all: [{device: {in_group: school}}, {outside: day}, {any: [{language: insults}, {kind: points.award}]}]}
    verdict: warn
    notice: n
    clause: c
  - id: phrases-only
    when: {phrases: polite}
    verdict: warn
    notice: n
    clause: c
  - id: negated-language
    when: {not: {language: polite}}
    verdict: warn
    alert: {to: [dsl], when: daily}
    notice: n
    clause: c
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy(write(tmp_path_factory.mktemp("language") / "rules.yaml", RULES))


def test_only_rules_using_language_are_listed(policy):
    """Rules testing `language:` (nested in all/any too) are listed in file order; `phrases:` and a
    `language:` under `not` are not (a parent's clean message must not "match" a negated list)."""
    checks = policy.language_checks()
    assert [c.rule_id for c in checks] == ["swearing", "insults-on-school-devices-out-of-hours"]
    assert checks[0].alert == Alert(to=("headteacher",), when="now")
    assert checks[1].alert is None


def test_a_check_tests_only_the_language_lists(policy):
    """Disguised spellings are found; the rule's device, time and kind conditions are not asked."""
    swearing, insults = policy.language_checks()
    assert swearing.test("This is sh1t.") and swearing.test("BLOODY hell")
    assert not swearing.test("A lovely day at school") and not swearing.test("")
    assert not swearing.test("He said twit")
    assert insults.test("What a tw1t")
    assert not insults.test("Please call me")


def test_a_check_reuses_the_compiled_patterns(policy):
    """The same tuple (and the same test functions) each time: nothing is compiled per text."""
    assert policy.language_checks() is policy.language_checks()


def test_a_lone_surrogate_is_searched_not_raised(policy):
    swearing = policy.language_checks()[0]
    assert swearing.test("\ud800 shit")
    assert not swearing.test("\ud800 fine")


def test_the_shipped_policy_checks_appropriate_language_and_tells_the_headteacher():
    policy = load_policy("builtin")
    checks = {c.rule_id: c for c in policy.language_checks()}
    assert "appropriate-language" in checks
    check = checks["appropriate-language"]
    assert check.alert is not None and "headteacher" in check.alert.to
    assert check.test("This is sh1t") and not check.test("Thank you for the lovely photos")
