"""Conditions on the shipped policy: missing data never silently allows; text screening is exact."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dojoguard.rules.action import Action, Attachment, AttachmentKind, Channel, ImageFindings, Kind, Points
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
    from dataclasses import FrozenInstanceError, replace

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
