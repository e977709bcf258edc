"""Writes are recognised from the catalogue, with a content-based fallback for unknown ones."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re

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


MESSAGE = f"/api/message-thread/{CLASS}/message"
AWARD = f"/api/dojoClass/{CLASS}/awardBatch"


def test_every_text_location_is_read(cat):
    """A message's ``body`` and ``text`` are both read: the rules see "sh1t" beside "hello"."""
    rec = recognise(post(MESSAGE, {"body": "hello", "text": "sh1t"}), cat)
    assert rec.text.split("\n") == ["hello", "sh1t"] and rec.problems == []


def test_a_story_body_beside_contents_body_is_read(cat):
    """A story's ``body`` and ``contents.body`` are both read."""
    rec = recognise(post(f"/api/dojoClass/{CLASS}/storyFeed", {"body": "hello", "contents": {"body": "sh1t"}}), cat)
    assert "sh1t" in rec.text.split("\n")


def test_strings_outside_the_catalogue_are_read_on_known_endpoints(cat):
    """On a known message, text under a key the catalogue does not list is still given to the rules."""
    rec = recognise(post(MESSAGE, {"body": "hello", "meta": {"subtitle": ["sh1t"]}}), cat)
    assert rec.text.split("\n") == ["hello", "sh1t"]


def test_disagreeing_points_are_a_problem_and_the_most_negative_is_kept(cat):
    """``points: 1`` beside ``weight: -5`` is incomplete, and the points read are -5, never 1."""
    rec = recognise(post(AWARD, {"studentIds": ["p1"], "points": 1, "weight": -5}), cat)
    assert rec.points == -5 and "the request gives more than one point value" in rec.problems


def test_agreeing_locations_are_no_problem(cat):
    """Two locations carrying the same value (points, skill, class) are one fact, not a conflict."""
    rec = recognise(post(AWARD, {"studentIds": ["p1"], "points": 2, "weight": 2, "behaviorId": "b1",
                                 "skillId": "b1"}), cat)
    assert (rec.points, rec.skill_id, rec.problems) == (2, "b1", [])


def test_two_different_skills_are_a_problem(cat):
    """``behaviorId`` beside a different ``skillId`` is incomplete: no skill is picked."""
    rec = recognise(post(AWARD, {"studentIds": ["p1"], "behaviorId": "b1", "skillId": "b2"}), cat)
    assert rec.skill_id is None and "the request names more than one skill" in rec.problems


def test_a_skill_that_cannot_be_read_is_a_problem(cat):
    """A skill given as a number (or an object without an id) is a problem, not an award without a skill."""
    rec = recognise(post(AWARD, {"studentIds": ["p1"], "points": 1, "behaviorId": 12345}), cat)
    assert "the skill field cannot be read" in rec.problems


def test_a_class_in_the_path_and_another_in_the_body_is_a_problem(cat):
    """A story whose path and ``targetId`` name different classes is incomplete."""
    rec = recognise(post(f"/api/dojoClass/{CLASS}/storyFeed", {"body": "hi", "targetId": "5f00000000000000000000ff"}),
                    cat)
    assert rec.class_id is None and "the request names more than one class" in rec.problems


def test_a_repeated_query_parameter_with_two_values_is_a_conflict(cat):
    """``?x=1&x=2`` on a location read from the query gives both values, so they conflict."""
    entry = catalogue.Endpoint("q", "POST", "api", "/api/q", "message.send", "message", "inferred",
                               {"class": ("query:classId",)}, {}, re.compile("/api/q"))
    cat_q = dataclasses.replace(cat, endpoints=(entry,))
    rec = recognise(post("/api/q?classId=a&classId=b", {"body": "x"}), cat_q)
    assert "the request names more than one class" in rec.problems


def test_pupils_and_attachments_are_the_union_of_their_locations(cat):
    """Every pupil and attachment named in any location is kept, each once."""
    rec = recognise(post(f"/api/dojoClass/{CLASS}/storyFeed", {
        "body": "x", "studentIds": ["p1", "p2"], "taggedStudentIds": ["p2", "p3"], "attachments": ["u1"],
        "contents": {"attachments": ["u1", "u2"]}}), cat)
    assert rec.students == ("p1", "p2", "p3") and rec.refs == (Ref("u1"), Ref("u2"))


def test_form_fields_sent_twice_are_all_read(cat):
    """A multipart message with ``body`` twice has both read; a form award's points are numbers, and conflict."""
    content = (b"--B\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nhello\r\n"
               b"--B\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nsh1t\r\n--B--\r\n")
    rec = recognise(post(MESSAGE, content, ctype="multipart/form-data; boundary=B"), cat)
    assert rec.text.split("\n") == ["hello", "sh1t"] and rec.problems == []
    rec = recognise(post(AWARD, b"studentIds=p1&points=1&points=-5", ctype="application/x-www-form-urlencoded"), cat)
    assert rec.points == -5 and "the request gives more than one point value" in rec.problems


def test_a_decoy_boundary_is_not_read(cat):
    """``xboundary=DECOY; boundary=REAL``: the REAL parts are read, as a standard parser reads them."""
    content = (b"--DECOY\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nhello\r\n--DECOY--\r\n"
               b"--REAL\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nsh1t\r\n--REAL--\r\n")
    rec = recognise(post(MESSAGE, content, ctype="multipart/form-data; xboundary=DECOY; boundary=REAL"), cat)
    assert (rec.text, rec.problems) == ("sh1t", [])


@pytest.mark.parametrize("headers", [
    (("content-type", "application/json"), ("content-encoding", "gzip, gzip")),
    (("content-type", "application/json"), ("content-encoding", "gzip"), ("content-encoding", "deflate")),
    (("content-type", "application/json"), ("content-encoding", "br")),
    (("content-type", "application/json"), ("content-encoding", "x-unknown")),
    (("content-type", "application/json"), ("content-type", "text/plain")),
])
def test_codings_and_types_a_server_could_read_differently_are_problems(cat, headers):
    """Two codings, an unknown one, or two different Content-Types: the body is not read and the write is incomplete."""
    request = Request("POST", "teach.classdojo.com", 443, MESSAGE, headers, b'{"body": "hello"}', "10.0.0.5")
    rec = recognise(request, cat)
    assert rec.problems and rec.body is None


def test_a_body_still_gzipped_after_inflating_is_a_problem(cat):
    """A gzip-coded body that is still gzip when read did not inflate (or was packed twice): incomplete."""
    request = Request("POST", "teach.classdojo.com", 443, MESSAGE, (("content-type", "text/plain"),
                                                                      ("content-encoding", "gzip")),
                      gzip.compress(b"sh1t"), "10.0.0.5")
    assert recognise(request, cat).problems == ["the compressed body could not be read"]


def test_an_unclassified_write_is_read_for_points_pupils_skills_and_attachments(cat):
    """A write no entry matches still yields its points (the most negative), pupils, skill and attachments."""
    rec = recognise(post("/api/brandNewAwards", {"awards": [{"studentId": "p1", "points": 1},
                                                            {"studentId": "p2", "weight": -5}],
                                                 "behaviorId": "b1", "attachmentIds": ["u1"]}), cat)
    assert (rec.kind, rec.points, rec.students, rec.skill_id, rec.refs) == \
        (Kind.UNCLASSIFIED_WRITE, -5, ("p1", "p2"), "b1", (Ref("u1"),))


@pytest.mark.parametrize("doc,points", [
    ({"points": -5}, -5),
    ({"points": "-5"}, -5),
    ({"points": -0.5}, -1),
    ({"value": -5}, None),                        # a bare value is not points...
    ({"value": -5, "studentIds": ["p1"]}, -5),    # ...beside pupils it is
    ({"points": True}, None),
    ({"points": "many"}, None),
])
def test_points_of_an_unclassified_write(cat, doc, points):
    """Numbers and numeric strings under the usual keys are points (rounded down); other values are not."""
    assert recognise(post("/api/somethingNew", doc), cat).points == points


def test_unclassified_form_points_are_read(cat):
    """A urlencoded unclassified write's ``points=-5`` is read as -5."""
    rec = recognise(post("/api/somethingNew", b"points=-5&studentIds=p1", ctype="application/x-www-form-urlencoded"),
                    cat)
    assert (rec.points, rec.students) == (-5, ("p1",))


def test_an_unclassified_write_is_read_in_json_parts_and_untyped_json(cat):
    """Points inside a multipart JSON part, or in a JSON body sent without a Content-Type, are still read."""
    content = (b"--B\r\nContent-Disposition: form-data; name=\"payload\"\r\nContent-Type: application/json\r\n\r\n"
               b"{\"studentIds\": [\"p1\"], \"points\": -5}\r\n--B--\r\n")
    assert recognise(post("/api/somethingNew", content, ctype="multipart/form-data; boundary=B"), cat).points == -5
    request = Request("POST", "teach.classdojo.com", 443, "/api/somethingNew", (), b'{"points": -5}', "10.0.0.5")
    assert recognise(request, cat).points == -5


# -- points anywhere in a points write --------------------------------------------------------------

AWARD = f"/api/dojoClass/{CLASS}/awardBatch"


@pytest.mark.parametrize("path,doc", [
    (AWARD, {"students": [{"_id": "p1", "points": -5}], "points": 1, "behaviorId": "b1"}),
    (AWARD, {"awards": [{"studentId": "p1", "weight": -5}], "points": 1}),
    (AWARD, {"studentIds": ["p1"], "meta": {"deep": [{"value": -5}]}, "points": 1}),
    (AWARD, {"studentIds": ["p1"], "options": {"amount": "-5"}, "behaviorId": "b1"}),
    (AWARD + "?points=-5", {"studentIds": ["p1"], "points": 1, "behaviorId": "b1"}),
    (AWARD + "?x%5Bpoints%5D=-5", {"studentIds": ["p1"], "points": 1}),
    ("/api/awardBatch?weight=-5", {"studentIds": ["p1"], "points": 1}),
])
def test_negative_points_anywhere_in_a_points_write_are_its_points(cat, path, doc):
    """A negative value under a points name off the catalogue's locations (nested, in the query) is the award's."""
    rec = recognise(post(path, doc), cat)
    assert (rec.kind, rec.points) == (Kind.POINTS_AWARD, -5)


@pytest.mark.parametrize("content", [
    b"studentIds=p1&points=1&x[points]=-5&behaviorId=b1",
    b"studentIds=p1&points[]=-5&behaviorId=b1",
    b"studentIds=p1&students[0][points]=-5&points=1",
    b"studentIds=p1&award.points=-5&points=1",
])
def test_bracketed_form_names_of_a_points_write_are_read(cat, content):
    """``x[points]``, ``points[]``, ``students[0][points]`` and ``award.points`` are points, as a qs server nests them."""
    rec = recognise(post(AWARD, content, ctype="application/x-www-form-urlencoded"), cat)
    assert rec.points == -5


def test_bracketed_multipart_names_of_a_points_write_are_read(cat):
    """A multipart field named ``x[points]`` is read as points too."""
    content = (b"--B\r\nContent-Disposition: form-data; name=\"studentIds\"\r\n\r\np1\r\n"
               b"--B\r\nContent-Disposition: form-data; name=\"points\"\r\n\r\n1\r\n"
               b"--B\r\nContent-Disposition: form-data; name=\"x[points]\"\r\n\r\n-5\r\n--B--\r\n")
    assert recognise(post(AWARD, content, ctype="multipart/form-data; boundary=B"), cat).points == -5


@pytest.mark.parametrize("doc", [
    {"studentIds": ["p1"], "points": 1, "students": [{"_id": "p1", "points": 3}]},   # positive elsewhere: no change
    {"studentIds": ["p1"], "points": 1, "note": "-5", "count": -5},                    # not under a points name
])
def test_points_elsewhere_that_are_not_negative_leave_the_catalogue_value(cat, doc):
    """Only a negative value elsewhere changes the award's points; other numbers and keys do not."""
    rec = recognise(post(AWARD, doc), cat)
    assert (rec.points, rec.problems) == (1, [])


def test_catalogue_locations_keep_their_rules(cat):
    """Two catalogue locations that disagree are still a problem, with the most negative kept."""
    rec = recognise(post(AWARD, {"studentIds": ["p1"], "points": 1, "weight": -2,
                                 "students": [{"_id": "p1", "points": -7}]}), cat)
    assert rec.points == -7 and "the request gives more than one point value" in rec.problems


def test_a_non_finite_points_value_anywhere_is_a_problem(cat):
    """``NaN`` or ``Infinity`` under a points name anywhere in a points write cannot be read: a problem."""
    rec = recognise(post(AWARD, b'{"studentIds": ["p1"], "points": 1, "students": [{"points": -Infinity}]}'), cat)
    assert "a points value cannot be read" in rec.problems


def test_a_message_is_not_read_for_points(cat):
    """The points scan is for points writes only: a message mentioning ``points: -5`` has no points."""
    rec = recognise(post(f"/api/message-thread/{CLASS}/message", {"body": "hi", "meta": {"points": -5}}), cat)
    assert rec.points is None


@pytest.mark.parametrize("path,content,ctype", [
    ("/api/awardBatchV2", {"students": [{"_id": "p1", "points": -5}], "points": 1, "behaviorId": "b1"},
     "application/json"),
    ("/api/awardBatchV2?points=-5", {"studentIds": ["p1"], "points": 1}, "application/json"),
    ("/api/awardBatchV2", b"studentIds=p1&points=1&x[points]=-5", "application/x-www-form-urlencoded"),
    ("/api/awardBatchV2", {"studentIds": ["p1"], "amount": -5}, "application/json"),
])
def test_an_unclassified_write_is_read_inside_pupils_in_the_query_and_in_brackets(cat, path, content, ctype):
    """Points inside pupil objects, in the query, under a bracketed form name or as ``amount`` beside pupils."""
    rec = recognise(post(path, content, ctype=ctype), cat)
    assert (rec.kind, rec.points, rec.students) == (Kind.UNCLASSIFIED_WRITE, -5, ("p1",))


def test_amount_without_pupils_or_a_skill_is_not_points(cat):
    """A bare ``amount`` on an unknown write (a quantity, a sum) is not taken for points."""
    assert recognise(post("/api/order", {"amount": -5}), cat).points is None
