"""The publication key: the same post joins one item whatever bytes carried it, and nothing else does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from dojoguard.holds import dedupe
from dojoguard.holds.store import StoredRequest
from dojoguard.rules.action import Action, Attachment, AttachmentKind, Channel, Kind, Points

NOW = datetime(2026, 11, 30, 10, tzinfo=UTC)
VIDEO = "ab" * 32
OTHER = "cd" * 32


def request(path: str = "/api/dojoClass/c1/storyFeed", content: bytes = b"{}") -> StoredRequest:
    return StoredRequest("POST", "https", "teach.classdojo.com", 443, path, "HTTP/1.1", (), content, "10.20.0.5")


def post(text: str | None = "Sports day\nup-1", *digests: str | None, **changes) -> Action:
    attachments = tuple(Attachment(AttachmentKind.VIDEO, id=f"up-{i}", sha256=d) for i, d in enumerate(digests))
    action = Action(Kind.STORY_POST, Channel.CLASS_STORY, NOW, teacher_id="t1", class_id="c1", text=text,
                    attachments=attachments or (Attachment(AttachmentKind.VIDEO, id="up-1", sha256=VIDEO),))
    return replace(action, **changes)


def publication_key(kind, action, request, references=(), body=None):
    """The key of a write whose parsed body holds the action's words, one string per line, unless given."""
    if body is None:
        body = {"body": (action.text or "").split("\n")}
    return dedupe.publication_key(kind, action, request, references, body=body)


def test_the_same_post_through_different_uploads_has_one_key():
    """Different upload ids (left out of the words), different bodies and times: the same key."""
    first = publication_key("hold", post("Sports day\nup-1"), request(content=b"one"), ["up-1"])
    second = publication_key("hold", replace(post("Sports day\nup-2"), at=NOW.replace(hour=11)),
                             request(content=b"two"), ["up-2", "https://cdn.example/up-2.mp4"])
    assert first is not None and first == second


@pytest.mark.parametrize("changed", [
    {"text": "Sports day, part two\nup-1"},
    {"attachments": (Attachment(AttachmentKind.VIDEO, id="up-1", sha256=OTHER),)},
    {"teacher_id": "t2"},
    {"class_id": "c2"},
    {"channel": Channel.SCHOOL_STORY},
    {"kind": Kind.COMMENT_POST},
    {"students": ("p1",)},
    {"points": Points(value=1)},
])
def test_anything_published_differently_is_another_key(changed):
    """Other words, other bytes, another teacher, class, channel, kind, pupils or points: not joined."""
    assert publication_key("hold", post(), request(), ["up-1"]) != \
        publication_key("hold", post(**changed), request(), ["up-1"])


def test_another_destination_or_kind_of_item_is_another_key():
    """The same words to another thread (another family) are another message; a hold never joins a defer."""
    message = Action(Kind.MESSAGE_SEND, Channel.MESSAGE, NOW, teacher_id="t1", text="PE kit tomorrow")
    to_one = publication_key("defer", message, request("/api/message-thread/a1/message"))
    assert to_one != publication_key("defer", message, request("/api/message-thread/b2/message"))
    assert to_one != publication_key("hold", message, request("/api/message-thread/a1/message"))
    # The query string can name a recipient too.
    assert to_one != publication_key("defer", message, request("/api/message-thread/a1/message?to=b2"))


@pytest.mark.parametrize("other", [
    {"body": "Sports day", "private": True},
    {"body": "Sports day", "private": False, "parentIds": ["5f0000000000000000000b02"]},
    {"body": "Sports day", "private": False, "priority": 2},
    {"title": "Sports day", "private": False},
])
def test_posts_that_differ_in_any_other_value_are_never_joined(other):
    """Private rather than public, another recipient, a number, the words in another field: another key, so a
    corrected second version is never answered "already held" while the first one is approved."""
    first = {"body": "Sports day", "private": False}
    assert publication_key("hold", post(), request(), ["up-1"], body=first) != \
        publication_key("hold", post(), request(), ["up-1"], body=other)


def test_a_write_whose_body_was_not_parsed_has_no_key():
    """Without the parsed body (text, binary) there is nothing safe to compare: only byte-for-byte retries join."""
    assert dedupe.publication_key("hold", post(), request(), ["up-1"]) is None


def test_the_order_of_attachments_does_not_matter():
    """The digests are sorted: the same two videos in either order are the same post."""
    assert publication_key("hold", post("Trip", VIDEO, OTHER), request()) == \
        publication_key("hold", post("Trip", OTHER, VIDEO), request())


@pytest.mark.parametrize("action", [
    post("Trip", VIDEO, None),  # an attachment never seen whole
    replace(post(), problems=("the body could not be read",)),
    replace(post(), kind=Kind.UNCLASSIFIED_WRITE),
    replace(post(), kind=Kind.ATTACHMENT_UPLOAD),
    Action(Kind.STORY_POST, Channel.CLASS_STORY, NOW, teacher_id="t1", class_id="c1"),  # nothing to compare
])
def test_no_key_when_it_could_join_writes_that_differ(action):
    """No digest, a partly read action, an unrecognised write or an upload, or nothing to compare: None."""
    assert publication_key("hold", action, request()) is None


def test_an_unknown_teacher_is_keyed_to_the_device():
    """Without a session, the device stands in for the teacher (as for the byte-for-byte key)."""
    anonymous = post(teacher_id=None)
    key = publication_key("hold", anonymous, request(), ["up-1"])
    other_device = replace(request(), client_address="10.20.0.6")
    assert key is not None and key != publication_key("hold", anonymous, other_device, ["up-1"])
