"""Classes, roles, audience, comment context and replies: each condition, and each unknown failing closed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dojoguard.rules.action import Action, ActionError, Audience, Channel, Kind, Reply, StartedBy
from dojoguard.rules.decision import Verdict
from dojoguard.rules.policy import load_policy

from .conftest import MONDAY_10, write

RULES = """
default: {verdict: allow}
rules:
  - id: school-story-leaders-only
    when: {kind: story.post, channel: school_story, not: {teacher: {role: [headteacher, senior_leader]}}}
    verdict: block
    notice: Only leaders post on the School Story.
    clause: only the headteacher and senior leaders post on the School Story
  - id: own-class-only
    when: {kind: story.post, channel: class_story, class: {taught_by_author: false}}
    verdict: hold
    notice: held
    clause: teachers manage their own class story
  - id: upper-school-photos
    when: {kind: story.post, class: {in: [Year 6, c-owls]}, attachment: photo}
    verdict: warn
    notice: w
    clause: c
  - id: not-reception
    when: {kind: message.send, class: {not_in: [Reception]}}
    verdict: warn
    notice: w
    clause: c
  - id: unknown-teacher
    when: {teacher: {unknown: true}}
    verdict: block
    notice: b
    clause: c
  - id: whole-school
    when: {audience: whole_school, text_longer_than: 300}
    verdict: warn
    notice: w
    clause: c
  - id: school-story-comments
    when: {kind: comment.post, on: [school_story, unknown], not: {teacher: {role: headteacher}}}
    verdict: hold
    notice: h
    clause: c
  - id: late-reply
    when: {reply: {started_by: parent, parent_waiting_more_than: 48 hours}}
    verdict: warn
    notice: w
    clause: replies within 48 hours
  - id: reply-unknown
    when: {reply: {unknown: true}}
    verdict: warn
    notice: w
    clause: c
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy(write(tmp_path_factory.mktemp("context") / "rules.yaml", RULES))


def _act(**fields) -> Action:
    base = dict(kind=Kind.STORY_POST, channel=Channel.CLASS_STORY, at=MONDAY_10, teacher_id="t1",
                teacher_roles=("teacher",), teacher_classes=frozenset({"c1"}), class_id="c1")
    base.update(fields)
    return Action(**base)


@pytest.mark.parametrize("roles, matched", [
    (("teacher",), True), (("headteacher",), False), (("pastoral", "senior_leader"), False),
    (None, True),  # an unknown teacher has no role: refused, not let through
])
def test_only_leaders_post_on_the_school_story(policy, roles, matched):
    action = _act(channel=Channel.SCHOOL_STORY, class_id=None, teacher_roles=roles,
                  teacher_id=None if roles is None else "t1")
    assert ("school-story-leaders-only" in policy.evaluate(action).rule_ids) is matched


@pytest.mark.parametrize("klass, classes, matched", [
    ("c1", frozenset({"c1"}), False),
    ("c2", frozenset({"c1"}), True),
    ("c1", None, True),  # the teacher's classes are not known: not known to teach it
    (None, frozenset({"c1"}), True),  # no class named
    ("c1", frozenset(), True),
])
def test_a_class_story_post_is_held_unless_the_author_is_known_to_teach_the_class(policy, klass, classes, matched):
    decision = policy.evaluate(_act(class_id=klass, teacher_classes=classes))
    assert ("own-class-only" in decision.rule_ids) is matched


def test_classes_are_matched_by_id_or_by_name_in_any_case(policy):
    from dojoguard.rules.action import Attachment, AttachmentKind

    photo = (Attachment(AttachmentKind.PHOTO),)
    assert "upper-school-photos" in policy.evaluate(_act(class_name="  year  6 ", attachments=photo)).rule_ids
    assert "upper-school-photos" in policy.evaluate(_act(class_id="c-owls", attachments=photo)).rule_ids
    assert "upper-school-photos" not in policy.evaluate(_act(class_name="Year 5", attachments=photo)).rule_ids


def test_not_in_holds_only_for_a_known_class(policy):
    message = dict(kind=Kind.MESSAGE_SEND, channel=Channel.MESSAGE)
    assert "not-reception" in policy.evaluate(_act(**message, class_name="Year 2")).rule_ids
    assert "not-reception" not in policy.evaluate(_act(**message, class_name="reception")).rule_ids
    assert "not-reception" not in policy.evaluate(_act(**message, class_id=None)).rule_ids


def test_an_unknown_teacher_is_known_to_be_unknown(policy):
    assert "unknown-teacher" in policy.evaluate(_act(teacher_id=None, teacher_roles=None)).rule_ids
    assert "unknown-teacher" not in policy.evaluate(_act()).rule_ids


@pytest.mark.parametrize("kind, channel, on, audience", [
    (Kind.STORY_POST, Channel.SCHOOL_STORY, None, Audience.WHOLE_SCHOOL),
    (Kind.STORY_POST, Channel.CLASS_STORY, None, Audience.CLASS),
    (Kind.COMMENT_POST, Channel.COMMENT, Channel.SCHOOL_STORY, Audience.WHOLE_SCHOOL),
    (Kind.COMMENT_POST, Channel.COMMENT, Channel.CLASS_STORY, Audience.CLASS),
    (Kind.COMMENT_POST, Channel.COMMENT, None, Audience.UNKNOWN),
    (Kind.MESSAGE_SEND, Channel.MESSAGE, None, Audience.FAMILY),
    (Kind.ATTACHMENT_UPLOAD, Channel.UNKNOWN, None, Audience.UNKNOWN),
])
def test_the_audience_follows_the_channel_and_a_comments_story(policy, kind, channel, on, audience):
    action = _act(kind=kind, channel=channel, on_channel=on, text="x" * 400)
    assert action.audience is audience
    assert ("whole-school" in policy.evaluate(action).rule_ids) is (audience is Audience.WHOLE_SCHOOL)


@pytest.mark.parametrize("on, roles, matched", [
    (Channel.SCHOOL_STORY, ("teacher",), True),
    (None, ("teacher",), True),  # a post the proxy has not seen: held, not let through
    (Channel.CLASS_STORY, ("teacher",), False),
    (Channel.SCHOOL_STORY, ("headteacher",), False),
])
def test_school_story_comments_are_told_apart_from_class_story_ones(policy, on, roles, matched):
    action = _act(kind=Kind.COMMENT_POST, channel=Channel.COMMENT, on_channel=on, teacher_roles=roles)
    assert ("school-story-comments" in policy.evaluate(action).rule_ids) is matched


def test_on_never_holds_for_a_post_or_a_message(policy):
    # `on: unknown` would otherwise hold for every action without a story.
    for kind, channel in ((Kind.STORY_POST, Channel.SCHOOL_STORY), (Kind.MESSAGE_SEND, Channel.MESSAGE)):
        action = _act(kind=kind, channel=channel, teacher_roles=("headteacher",))
        assert "school-story-comments" not in policy.evaluate(action).rule_ids


@pytest.mark.parametrize("reply, late, unknown", [
    (Reply("th", StartedBy.PARENT, MONDAY_10 - timedelta(hours=49)), True, False),
    (Reply("th", StartedBy.PARENT, MONDAY_10 - timedelta(hours=47)), False, False),
    (Reply("th", StartedBy.TEACHER, MONDAY_10 - timedelta(hours=49)), False, False),
    (Reply("th", StartedBy.PARENT, None, nobody_waiting=True), False, False),
    (Reply("th"), False, True),  # the thread was never read through the proxy
    (None, False, True),
])
def test_reply_times_and_who_started_the_thread(policy, reply, late, unknown):
    action = _act(kind=Kind.MESSAGE_SEND, channel=Channel.MESSAGE, reply=reply, class_id=None)
    ids = policy.evaluate(action).rule_ids
    assert ("late-reply" in ids) is late
    assert ("reply-unknown" in ids) is unknown
    assert policy.evaluate(action).verdict in (Verdict.ALLOW, Verdict.WARN)


def test_reply_conditions_hold_only_for_messages(policy):
    assert "reply-unknown" not in policy.evaluate(_act()).rule_ids


def test_the_new_action_fields_round_trip_through_json_and_bad_ones_are_refused():
    action = _act(kind=Kind.COMMENT_POST, channel=Channel.COMMENT, on_channel=Channel.SCHOOL_STORY,
                  class_name="Year 6", reply=Reply("th", StartedBy.PARENT, MONDAY_10, False))
    assert Action.from_dict(action.to_dict()) == action
    doc = action.to_dict()
    for field, value in (("on", "comment"), ("reply", {"started_by": "grandparent"}),
                         ("teacher", {"id": "t", "roles": "headteacher"})):
        with pytest.raises(ActionError):
            Action.from_dict({**doc, field: value})
