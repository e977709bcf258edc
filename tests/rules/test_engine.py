"""The engine never fails on any action it is given, and fails closed on incomplete ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dojoguard.rules.action import Action, Attachment, AttachmentKind, Channel, ImageFindings, Kind, Points
from dojoguard.rules.decision import Verdict
from dojoguard.rules.policy import load_policy

from tests.rules.conftest import deferring_copy

POLICY = load_policy("builtin")
# The same rules with the commented `defer` option switched on.
DEFERRING = load_policy(deferring_copy(Path(tempfile.mkdtemp(prefix="dojoguard-defer-"))))

findings = st.one_of(st.none(), st.builds(
    ImageFindings, faces_found=st.integers(0, 9), faces_permitted=st.integers(0, 9),
    faces_not_permitted=st.integers(0, 9), faces_unidentified=st.integers(0, 9), gps_present=st.booleans(),
    unreadable=st.booleans(), error=st.one_of(st.none(), st.text(max_size=5))))
actions = st.builds(
    Action,
    kind=st.sampled_from(list(Kind)),
    channel=st.sampled_from(list(Channel)),
    at=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, __import__("zoneinfo").ZoneInfo("Europe/London")])),
    teacher_id=st.one_of(st.none(), st.text(max_size=8)),
    device_address=st.one_of(st.none(), st.sampled_from(["10.20.1.5", "192.168.1.1", "::1", "x", ""])),
    class_id=st.one_of(st.none(), st.text(max_size=8)),
    text=st.one_of(st.none(), st.text(max_size=300)),
    points=st.one_of(st.none(), st.builds(Points, value=st.one_of(st.none(), st.integers(-5, 5)),
                                          skill=st.one_of(st.none(), st.text(max_size=10)))),
    attachments=st.lists(st.builds(Attachment, kind=st.sampled_from(list(AttachmentKind)), findings=findings),
                         max_size=3).map(tuple),
    problems=st.lists(st.text(max_size=10), max_size=2).map(tuple),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
def test_any_action_gets_a_decision(action):
    """Whatever the action (any kind, time, text, findings), evaluation returns a decision and never raises."""
    decision = POLICY.evaluate(action)
    assert isinstance(decision.verdict, Verdict)
    assert decision.policy_revision == POLICY.revision
    if decision.verdict is Verdict.DEFER:
        assert decision.release_at is not None and decision.release_at >= action.at
    if action.problems:
        assert decision.verdict is Verdict.BLOCK


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)))
def test_deferred_messages_are_released_inside_the_window(at):
    """A deferred message's release time is inside school hours, and no earlier opening was skipped."""
    action = Action(Kind.MESSAGE_SEND, Channel.MESSAGE, at, device_address="10.20.1.5", text="PE")
    decision = DEFERRING.evaluate(action)
    window = DEFERRING.windows["school-hours"]
    if decision.verdict is Verdict.DEFER:
        assert window.is_open_at(decision.release_at)
        assert not window.is_open_at(decision.release_at - timedelta(minutes=1))
        assert decision.release_at > at
    elif decision.verdict is Verdict.HOLD:
        # Far outside the calendar (2026-27) the window never opens again: a person decides.
        assert not window.knows(at.astimezone(window.timezone).date())
    else:
        assert window.is_open_at(at)


def test_decision_references_differ_in_their_first_eight_characters():
    """A teacher reads out the start of the reference: consecutive decisions of one run must not share it.

    (Ids were once a fixed per-run prefix and a counter, so every decision of a run began alike.)
    """
    from dojoguard.rules.engine import _next_id

    ids = [_next_id() for _ in range(500)]
    assert len(set(ids)) == 500 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    # 500 random 32-bit starts collide with a chance of about 3 in 100,000; allow one such pair.
    assert len({i[:8] for i in ids}) >= 499
