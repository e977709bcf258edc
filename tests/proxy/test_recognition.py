"""Writes are recognised from the catalogue, with a content-based fallback for unknown ones."""

from __future__ import annotations

import json

import pytest

from dojoguard.proxy import catalogue
from dojoguard.proxy.recognition import Ref, Request, recognise
from dojoguard.rules.action import Channel, Kind

CLASS = "5f0000000000000000000c01"


@pytest.fixture(scope="module")
def cat():
    return catalogue.load("builtin")


def post(path: str, doc, host: str = "teach.classdojo.com", ctype: str = "application/json") -> Request:
    content = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return Request("POST", host, 443, path, (("content-type", ctype),), content, "10.0.0.5")


def test_class_story_post_fields(cat):
    """A class story post yields its class (from the path), text and the attachments it names."""
    rec = recognise(post(f"/api/dojoClass/{CLASS}/storyFeed", {
        "body": "Trip!", "attachments": [{"_id": "u1", "path": "https://sphotos.classdojo.com/a.jpg"}, "u2"]}), cat)
    assert (rec.kind, rec.channel, rec.class_id) == (Kind.STORY_POST, Channel.CLASS_STORY, CLASS)
    # The post's text comes first; every other string in the body follows it, for the content rules.
    assert rec.text.split("\n") == ["Trip!", "u1", "https://sphotos.classdojo.com/a.jpg", "u2"]
    assert rec.refs == (Ref("u1", "https://sphotos.classdojo.com/a.jpg"), Ref("u2"))


def test_award_with_skill_and_students(cat):
    """An award's skill id and pupils are read from the body."""
    rec = recognise(post(f"/api/dojoClass/{CLASS}/awardBatch", {"behaviorId": "b1", "studentIds": ["p1", "p2"]}), cat)
    assert (rec.skill_id, rec.students, rec.points, rec.problems) == ("b1", ("p1", "p2"), None, [])


def test_award_without_skill_or_value_is_a_problem(cat):
    """An award naming neither a skill nor a value cannot be judged: it carries a problem."""
    rec = recognise(post(f"/api/dojoClass/{CLASS}/awardBatch", {"studentIds": ["p1"]}), cat)
    assert rec.problems


def test_unknown_write_falls_back_to_content(cat):
    """A write no entry matches is unclassified, and its human text fields are still collected."""
    rec = recognise(post("/api/somethingNew", {"caption": "hello", "deep": {"comment": "there"}, "id": 3}), cat)
    assert (rec.kind, rec.endpoint) == (Kind.UNCLASSIFIED_WRITE, None)
    assert rec.text == "hello\nthere"


def test_malformed_json_is_a_problem_not_an_exception(cat):
    """A known write with unreadable JSON is recognised, with a problem recorded."""
    rec = recognise(post(f"/api/dojoClass/{CLASS}/storyFeed", b"{oops"), cat)
    assert rec.kind is Kind.STORY_POST and rec.problems


def test_text_of_the_wrong_type_is_a_problem(cat):
    """A text field holding a non-string is a problem, not silently ignored."""
    rec = recognise(post(f"/api/message-thread/{CLASS}/message", {"body": {"nested": "x"}}), cat)
    assert "the text field is not text" in rec.problems
