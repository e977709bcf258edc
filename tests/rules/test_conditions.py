"""Conditions on the shipped policy: missing data never silently allows; text screening is exact."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dojoguard.rules.action import (Action, Attachment, AttachmentKind, Channel, ImageFindings, Kind, Points, Reply,
                                    StartedBy)
from dojoguard.rules.decision import Verdict

from .conftest import MONDAY_10, make_action


def _award(points: Points | None) -> Action:
    return Action(Kind.POINTS_AWARD, Channel.POINTS, MONDAY_10, teacher_id="t1", device_address="10.20.1.5",
                  points=points)


@pytest.mark.parametrize("points, verdict, rule", [
    (Points(value=1, skill="Polite"), Verdict.ALLOW, None),
    (Points(value=-1, skill="Polite"), Verdict.BLOCK, "positive-points-only"),
    (Points(value=1, skill="Tidying up"), Verdict.WARN, "points-five-areas"),
    (Points(value=1), Verdict.WARN, "points-five-areas"),               # skill unknown: not known to be allowed
    (Points(skill="Polite"), Verdict.ALLOW, None),                       # value unknown, skill allowed
    (Points(), Verdict.BLOCK, "points-unreadable"),
    (None, Verdict.BLOCK, "points-unreadable"),
])
def test_points_missing_data(policy, points, verdict, rule):
    """Unknown points data is never silently allowed: unreadable awards block, unknown skills warn."""
    decision = policy.evaluate(_award(points))
    assert decision.verdict is verdict
    if rule:
        assert rule in decision.rule_ids


@pytest.mark.parametrize("findings", [None, ImageFindings(unreadable=True), ImageFindings(error="timeout")])
def test_photo_without_complete_check_blocks(policy, findings):
    """A photo with no findings, or whose check failed, blocks: the check could not be completed."""
    action = Action(Kind.STORY_POST, Channel.CLASS_STORY, MONDAY_10, device_address="10.20.1.5",
                    attachments=(Attachment(AttachmentKind.PHOTO, findings=findings),))
    decision = policy.evaluate(action)
    assert decision.verdict is Verdict.BLOCK
    assert decision.rule_ids == ("photo-check-incomplete",)
    assert "could not be checked" in decision.notice


def test_incomplete_action_blocks(policy):
    """An action the proxy could not read completely blocks, with a notice saying so."""
    decision = policy.evaluate(make_action(problems=["body truncated"]))
    assert decision.verdict is Verdict.BLOCK
    assert "could not be read" in decision.notice


def test_one_bad_photo_among_good_ones_blocks(policy):
    """Every photo counts: one unchecked photo among checked ones still blocks."""
    good = Attachment(AttachmentKind.PHOTO, findings=ImageFindings(faces_found=2, faces_permitted=2))
    action = Action(Kind.STORY_POST, Channel.CLASS_STORY, MONDAY_10, device_address="10.20.1.5",
                    attachments=(good, Attachment(AttachmentKind.PHOTO)))
    assert policy.evaluate(action).verdict is Verdict.BLOCK


@pytest.mark.parametrize("address", [None, "", "not-an-ip", "999.1.1.1"])
def test_unknown_device_counts_as_personal(policy, address):
    """A missing or unreadable device address is treated as not a school device."""
    action = Action(Kind.MESSAGE_SEND, Channel.MESSAGE, MONDAY_10, device_address=address, text="PE tomorrow")
    assert policy.evaluate(action).rule_ids == ("school-devices",)


def test_decision_is_an_ordinary_value(policy):
    """Decisions built by the engine equal ones built with the constructor (the fast path changes nothing)."""
    from dataclasses import replace

    decision = policy.evaluate(make_action(text="x"))
    assert replace(decision) == decision
    assert hash(decision.matches) == hash(())
    with pytest.raises(FrozenInstanceError):
        decision.verdict = Verdict.BLOCK  # frozen


def test_messages_are_screened_at_any_length(policy):
    """A forbidden phrase at the end of a long text is still found."""
    text = "Lovely day. " * 2000 + "He is off sick."
    decision = policy.evaluate(make_action(text=text))
    assert {"absence-notes", "doorstep-length"} <= set(decision.rule_ids)


def test_time_in_another_offset_is_the_same_instant(policy):
    """The same instant written with a different offset gets the same decision."""
    utc = make_action(at="2026-11-30T16:59:00+00:00")
    paris = make_action(at="2026-11-30T17:59:00+01:00")
    assert policy.evaluate(utc).verdict is policy.evaluate(paris).verdict is Verdict.ALLOW
    assert policy.evaluate(make_action(at="2026-11-30T18:00:00+01:00")).verdict is Verdict.BLOCK
    assert datetime(2026, 11, 30, 17, tzinfo=UTC) == datetime.fromisoformat("2026-11-30T18:00:00+01:00")


# One value of each declared condition, each chosen to hold for some actions and not others.
SAMPLES = {
    "kind": "[message.send, points.award]", "channel": "[message, points]", "inside": "day", "outside": "day",
    "text_longer_than": "3", "phrases": "words", "language": "words", "regex": "'a+b'",
    "points": "{skill_not_in: skills}", "device": "{not_in_group: school}", "teacher": "{not_in_group: leaders}",
    "attachment": "[photo, file]", "image": "[check_incomplete, gps_present]", "video": "check_incomplete",
    "unclassified": "true", "incomplete": "true", "all": "[{kind: message.send}, {text_longer_than: 3}]",
    "any": "[{incomplete: true}, {kind: points.award}, {unclassified: true}]", "not": "{kind: message.send}",
    "class": "{taught_by_author: false}", "audience": "[whole_school, unknown]", "on": "[school_story, unknown]",
    "reply": "{started_by: [parent, unknown]}", "count": "{of: {kind: message.send}, per: teacher, within: 1 day,"
    " at_least: 1}", "strikes": "{within: 7 days, at_most: 0}",
}


@pytest.fixture(scope="module")
def one_rule_per_condition(tmp_path_factory):
    """A policy with a rule for each declared condition (nested in `all`, so `kind` is tested too)."""
    from dojoguard.rules.policy import load_policy

    from .conftest import write

    rules = "".join(f"  - {{id: {key.replace('_', '-')}, when: {{all: [{{{key}: {value}}}]}}, verdict: warn,"
                    f" notice: n, clause: c}}\n" for key, value in SAMPLES.items())
    path = write(tmp_path_factory.mktemp("conditions") / "rules.yaml",
                 "default: {verdict: allow}\nwindows:\n  day: {days: [mon, tue, wed, thu, fri], from: '08:00',"
                 " to: '17:00'}\nlists:\n  words: {phrases: [off sick, shit]}\n  skills: {phrases: [polite]}\n"
                 "device_groups:\n  school: [10.20.0.0/16]\nteacher_groups:\n  leaders: [t1]\nrules:\n" + rules)
    return load_policy(path)


def test_every_declared_condition_has_a_sample():
    """A new condition gets a sample here, so the next test checks what it declares."""
    from dojoguard.rules.conditions import CONDITIONS

    assert sorted(SAMPLES) == sorted(CONDITIONS)


_findings = st.one_of(st.none(), st.builds(ImageFindings, faces_found=st.integers(0, 2), gps_present=st.booleans(),
                                           unreadable=st.booleans()))
_actions = st.builds(
    Action, kind=st.sampled_from(list(Kind)), channel=st.sampled_from(list(Channel)),
    at=st.datetimes(min_value=datetime(2026, 11, 28), max_value=datetime(2026, 12, 2), timezones=st.just(UTC)),
    teacher_id=st.sampled_from([None, "t1", "t2"]), device_address=st.sampled_from([None, "10.20.1.5", "192.168.1.1"]),
    text=st.one_of(st.none(), st.sampled_from(["", "hi", "He is off sick", "sh1t", "aab", "Lovely day"]),
                   st.text(max_size=12)),
    points=st.one_of(st.none(), st.builds(Points, value=st.one_of(st.none(), st.integers(-1, 1)),
                                          skill=st.sampled_from([None, "Polite", "Teamwork"]))),
    attachments=st.lists(st.builds(Attachment, kind=st.sampled_from(list(AttachmentKind)), findings=_findings),
                         max_size=2).map(tuple),
    problems=st.lists(st.just("body truncated"), max_size=1).map(tuple),
    class_id=st.sampled_from([None, "c1", "c2"]),
    teacher_roles=st.sampled_from([None, ("teacher",), ("headteacher", "dsl")]),
    teacher_classes=st.sampled_from([None, frozenset(), frozenset({"c1"})]),
    on_channel=st.sampled_from([None, Channel.CLASS_STORY, Channel.SCHOOL_STORY]),
    reply=st.one_of(st.none(), st.builds(Reply, thread_id=st.just("th1"),
                                         started_by=st.sampled_from([None, *StartedBy]))))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=_actions)
def test_what_a_condition_declares_never_hides_a_match(one_rule_per_condition, action):
    """Whenever a condition holds, the action has a kind it declares and carries everything it declares it needs.

    The engine skips a rule without testing it when the action's kind or what
    it carries rules the rule out; a wrong declaration would silently let an
    action through.
    """
    from dojoguard.rules.facts import Facts, carries

    policy = one_rule_per_condition
    facts = Facts(action, policy._indexes)
    carried = carries(action, facts)
    held = [rule for rule in policy.rules if rule.test(action, facts)]
    for rule in held:
        assert rule.kinds is None or action.kind in rule.kinds, rule.id
        assert rule.needs & carried == rule.needs, rule.id
    assert policy.evaluate(action).rule_ids == tuple(rule.id for rule in held)
