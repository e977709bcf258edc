"""Bodies a server reads differently from a careless proxy, through the real proxy, the stand-in and the built-in policy.

Each test sends what a device can send (a second text field, a decoy
multipart boundary, points in two places, an unknown path carrying
points, another charset or coding) and proves that the write is refused
with a recorded decision, and that what the stand-in receives, read with
Python's standard parsers as a server reads it, is what dojoguard judged.
"""

from __future__ import annotations

import gzip
import json
import sqlite3

import httpx
import pytest

from dojoguard.proxy import body as bodies
from dojoguard.standin import data, reading
from tests.proxy.conftest import running_proxy, signed_in
from tests.proxy.test_bypasses import websocket_exchange

pytestmark = pytest.mark.slow

API = "https://teach.classdojo.com"
MESSAGE = f"{API}/api/message-thread/{data.THREAD_ID}/message"
STORY = f"{API}/api/dojoClass/{data.CLASS_ID}/storyFeed"
AWARD = f"{API}/api/dojoClass/{data.CLASS_ID}/awardBatch"
PUPIL = data.PUPILS[0]["_id"]
POLITE, OFF_TASK = data.BEHAVIORS[0]["_id"], data.BEHAVIORS[2]["_id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The real proxy on the built-in St Wilfrid's policy, at 10:00 on a Monday, a teacher signed in, skills learned."""
    with running_proxy(tmp_path_factory.mktemp("reading"), policy="builtin") as found:
        with signed_in(found["proxy"]) as client:
            assert client.get(f"{API}/api/dojoClass/{data.CLASS_ID}/behavior").status_code == 200
            cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
            yield dict(found, client=client, cookie=cookie)


def send(world, url: str, content: bytes, content_type: str | None = "application/json",
         headers: tuple[tuple[str, str], ...] = ()) -> httpx.Response:
    sent = ((("Content-Type", content_type),) if content_type else ()) + headers
    return world["client"].post(url, content=content, headers=list(sent))


def decision(world, decision_id: str) -> dict:
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT body FROM records WHERE type = 'decision' AND id = ?", (decision_id,)).fetchall()
    finally:
        db.close()
    assert rows, f"no audit record for {decision_id}"
    return json.loads(rows[0][0])


def refused(world, response: httpx.Response) -> dict:
    """The refusal's audit record: a 403 in ClassDojo's shape, whose decision id is in the log as a block."""
    assert response.status_code == 403, (response.status_code, response.text)
    decision_id = response.json()["error"]["decisionId"]
    assert response.headers["x-dojoguard-decision"] == decision_id
    record = decision(world, decision_id)
    assert record["verdict"] == "block"
    return record


def arrived(world, marker: bytes) -> list:
    return [r for r in world["standin"].received if r.method == "POST" and marker in r.body]


def multipart(boundary: str, *fields: tuple[str, bytes]) -> bytes:
    return b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value
                    + b"\r\n" for name, value in fields) + f"--{boundary}--\r\n".encode()


# -- every location the catalogue lists ---------------------------------------------------------

@pytest.mark.parametrize("doc", [
    {"body": "hello", "text": "sh1t"},
    {"text": "hello", "message": "sh1t"},
    {"body": "hello", "meta": {"subtitle": ["sh1t"]}},     # beyond the catalogue: any string in the body
    ["hello", "sh1t"],
])
def test_a_second_text_field_on_a_message_is_read(world, doc):
    """Swearing in a text field after a harmless one (or under any key at all) is refused, not forwarded."""
    record = refused(world, send(world, MESSAGE, json.dumps(doc).encode()))
    assert "appropriate-language" in record["rules"]
    assert not arrived(world, b"sh1t")


def test_a_story_body_beside_contents_body_is_read(world):
    """A story's ``contents.body`` is read beside its ``body``: the swearing in either is refused."""
    record = refused(world, send(world, STORY, json.dumps({"body": "hello", "contents": {"body": "sh1t"}}).encode()))
    assert "appropriate-language" in record["rules"]
    assert not arrived(world, b"sh1t")


@pytest.mark.parametrize("doc", [
    {"studentIds": [PUPIL], "points": 1, "weight": -5},
    {"studentIds": [PUPIL], "weight": -5, "points": 1},
    {"studentIds": [PUPIL], "points": 1, "value": -5},
])
def test_points_beside_negative_points_are_refused(world, doc):
    """``points: 1`` beside ``weight: -5`` (in either order) is refused: the award is incomplete and negative."""
    record = refused(world, send(world, AWARD, json.dumps(doc).encode()))
    assert {"incomplete-request", "positive-points-only"} <= set(record["rules"])
    assert not arrived(world, b"-5")


def test_two_skills_are_refused(world):
    """``behaviorId`` beside a different ``skillId`` is refused as incomplete: no skill is picked."""
    doc = {"studentIds": [PUPIL], "behaviorId": POLITE, "skillId": OFF_TASK}
    record = refused(world, send(world, AWARD, json.dumps(doc).encode()))
    assert "incomplete-request" in record["rules"]
    assert not arrived(world, OFF_TASK.encode())


def test_a_positive_skill_with_negative_points_is_judged_by_the_worse(world):
    """A learned +1 skill with ``points: -5`` is refused: the worse of the skill's value and the body's is judged."""
    doc = {"studentIds": [PUPIL], "behaviorId": POLITE, "points": -5}
    record = refused(world, send(world, AWARD, json.dumps(doc).encode()))
    assert "positive-points-only" in record["rules"]


def test_the_control_a_plain_positive_award_goes_through(world):
    """A positive award naming one skill in two agreeing places reaches ClassDojo (the checks are not blanket)."""
    doc = {"studentIds": [PUPIL], "behaviorId": POLITE, "skillId": POLITE, "points": 1}
    response = send(world, AWARD, json.dumps(doc).encode())
    assert response.status_code == 200, response.text
    assert arrived(world, POLITE.encode())[-1].json() == doc


# -- parse like the server, or refuse -------------------------------------------------------------

DECOY = multipart("DECOY", ("body", b"hello")) + multipart("REAL", ("body", b"sh1t"))


@pytest.mark.parametrize("content_type", [
    "multipart/form-data; xboundary=DECOY; boundary=REAL",
    "multipart/form-data; boundary=REAL; xboundary=DECOY",
    "multipart/form-data; boundary=\"REAL\"; xboundary=DECOY",
])
def test_a_decoy_boundary_is_read_as_the_server_reads_it(world, content_type):
    """A standard parser reads REAL (``body=sh1t``); dojoguard reads it too, and refuses it."""
    assert reading.fields(content_type, DECOY)["body"] == ["sh1t"]  # the server's reading
    record = refused(world, send(world, MESSAGE, DECOY, content_type))
    assert "appropriate-language" in record["rules"]
    assert not arrived(world, b"sh1t")


@pytest.mark.parametrize("content_type", [
    "multipart/form-data; boundary=DECOY; boundary=REAL",
    "multipart/form-data; boundary=REAL; BOUNDARY=DECOY",
    "multipart/form-data; boundary=REAL; junk",
])
def test_a_repeated_or_ambiguous_boundary_is_refused(world, content_type):
    """Two boundary parameters (in any case) or junk beside one: refused as incomplete, nothing forwarded."""
    record = refused(world, send(world, MESSAGE, DECOY, content_type))
    assert "incomplete-request" in record["rules"]
    assert not arrived(world, b"sh1t")


@pytest.mark.parametrize("content", [
    multipart("B", ("body", b"hello"), ("body", b"sh1t")),                          # one name twice
    multipart("B", ("body", b"hello"), ("subtitle", b"sh1t")),                      # a field the catalogue ignores
    multipart("B", ("body", b"hello")) + multipart("B", ("body", b"sh1t")),         # parts after the end
    b"--B\r\nContent-Disposition: form-data; name=\"hello\"; name=\"body\"\r\n\r\nsh1t\r\n--B--\r\n",
    b"--B\r\nContent-Disposition: form-data; name=\"body\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"c2gxdA==\r\n--B--\r\n",
    b"--B\r\nContent-Disposition: form-data; name=\"body\"\r\nContent-Type: text/plain; charset=utf-16\r\n\r\n"
    + "sh1t".encode("utf-16") + b"\r\n--B--\r\n",
])
def test_form_tricks_are_refused(world, content):
    """A repeated field, a field off the catalogue, parts past the end, a doubled name, base64 or UTF-16 parts."""
    refused(world, send(world, MESSAGE, content, "multipart/form-data; boundary=B"))
    assert not arrived(world, b"sh1t") and not arrived(world, b"c2gxdA")


def test_what_arrives_is_what_was_judged(world):
    """An allowed form reaches the stand-in unchanged, and a standard parser reads in it exactly what dojoguard read."""
    content_type = "multipart/form-data; boundary=----dojoguard-reading"
    content = multipart("----dojoguard-reading", ("body", b"Reading books are due tomorrow"),
                        ("kind", b"text"), ("body", b"Thank you"))
    response = send(world, MESSAGE, content, content_type)
    assert response.status_code == 200, response.text
    received = arrived(world, b"Reading books are due tomorrow")[-1]
    assert received.body == content
    judged = bodies.read(received.body, content_type)
    server = reading.fields(content_type, received.body)
    assert server == {k: list(v.values) if isinstance(v, bodies.Many) else [v] for k, v in judged.fields.items()}
    assert sorted(judged.texts) == sorted(s for values in server.values() for s in values)


@pytest.mark.parametrize("content,content_type", [
    ('{"body": "sh1t"}'.encode("utf-16"), "application/json; charset=utf-16"),
    ("sh1t".encode("utf-16-le"), "text/plain; charset=utf-16le"),
    (b"+AHM-h1t", "text/plain; charset=utf-7"),
    (b'{"body": "hello", "body": "sh1t"}', "application/json"),
    (b'{"body": "hello", "x": {"__proto__": {"body": "h1t"}}}', "application/json"),
    (b"body=hello&_charset_=utf-7&text=%2BAHM-h1t", "application/x-www-form-urlencoded"),
    (b'{"body": "sh1t"}', "application/json; charset=utf-8; charset=utf-16"),
])
def test_other_charsets_repeated_keys_and_repeated_parameters_are_refused(world, content, content_type):
    """UTF-16 or UTF-7 text, a repeated or __proto__ JSON key, a form's _charset_, a repeated charset: refused."""
    record = refused(world, send(world, MESSAGE, content, content_type))
    assert "incomplete-request" in record["rules"]
    assert not arrived(world, b"h1t") and not arrived(world, "sh1t".encode("utf-16-le"))


@pytest.mark.parametrize("content,codings", [
    (gzip.compress(gzip.compress(b"sh1t")), (("Content-Encoding", "gzip, gzip"),)),
    (gzip.compress(gzip.compress(b"sh1t")), (("Content-Encoding", "gzip"), ("Content-Encoding", "gzip"))),
    (gzip.compress(gzip.compress(b"sh1t")), (("Content-Encoding", "gzip"),)),
    (b"sh1t", (("Content-Encoding", "x-unknown"),)),
])
def test_content_codings_that_are_not_read_are_refused(world, content, codings):
    """Two codings, a gzip inside a gzip, or an unknown coding: refused as unreadable, never read as noise and sent."""
    record = refused(world, send(world, MESSAGE, content, "text/plain", codings))
    assert "incomplete-request" in record["rules"]
    assert not arrived(world, content)


def test_two_content_types_are_refused(world):
    """A JSON body sent with a second, different Content-Type is refused: the server might take either."""
    record = refused(world, send(world, MESSAGE, b'{"body": "sh1t"}', "application/json",
                                 (("Content-Type", "text/plain"),)))
    assert "incomplete-request" in record["rules"]


# -- an unclassified write is judged on what it carries -------------------------------------------

@pytest.mark.parametrize("path,doc", [
    (f"/api/dojoClass/{data.CLASS_ID}/awardBatchV2", {"studentIds": [PUPIL], "points": -5}),
    ("/api/newAwards", {"awards": [{"studentId": PUPIL, "weight": -5}]}),
    ("/api/newAwards", {"studentIds": [PUPIL], "value": "-5"}),
    ("/api/newAwards", {"studentIds": [PUPIL], "behaviorId": OFF_TASK}),    # a needs-work skill, learned as -1
])
def test_an_unclassified_write_with_negative_points_is_refused(world, path, doc):
    """Negative points (or a needs-work skill) under a path the catalogue does not know are refused, not warned."""
    record = refused(world, send(world, API + path, json.dumps(doc).encode()))
    assert "positive-points-only" in record["rules"] and "unclassified-write" in record["rules"]
    assert not arrived(world, PUPIL.encode() + b'"], "points": -5') and not arrived(world, b"-5")


@pytest.mark.parametrize("content,content_type", [
    (multipart("B", ("studentIds", PUPIL.encode()), ("points", b"-5")), "multipart/form-data; boundary=B"),
    (f"studentIds={PUPIL}&points[]=-5".encode(), "application/x-www-form-urlencoded"),
    (b'--B\r\nContent-Disposition: form-data; name="payload"\r\nContent-Type: application/json\r\n\r\n'
     b'{"points": -5}\r\n--B--\r\n', "multipart/form-data; boundary=B"),
    (b'{"points": -5}', None),
])
def test_an_unclassified_write_is_read_in_any_body_shape(world, content, content_type):
    """Negative points in a form, a JSON part or an untyped JSON body under an unknown path are refused too."""
    record = refused(world, send(world, API + "/api/newAwards", content, content_type))
    assert "positive-points-only" in record["rules"]
    assert not arrived(world, b"-5")


def test_an_unclassified_write_naming_an_unseen_attachment_is_refused(world):
    """An unknown write naming an upload the proxy never saw cannot have its photo checked: refused."""
    record = refused(world, send(world, API + "/api/newPost", json.dumps({"attachmentIds": ["5f00000000000000"
                                                                                           "000a9999"]}).encode()))
    assert "photo-check-incomplete" in record["rules"]


def test_the_control_an_unclassified_write_without_points_is_warned_and_sent(world):
    """An unknown write carrying only harmless text still reaches ClassDojo, with a warning recorded."""
    response = send(world, API + "/api/newFeature", json.dumps({"note": "Trip letters please"}).encode())
    assert response.status_code == 200, response.text
    assert arrived(world, b"Trip letters please")


# -- points anywhere in a points write ------------------------------------------------------------

@pytest.mark.parametrize("url,content,content_type", [
    (AWARD, {"students": [{"_id": PUPIL, "points": -5}], "points": 1, "behaviorId": POLITE}, "application/json"),
    (AWARD + "?points=-5", {"studentIds": [PUPIL], "points": 1, "behaviorId": POLITE}, "application/json"),
    (AWARD, f"studentIds={PUPIL}&points=1&x[points]=-5&behaviorId={POLITE}".encode(),
     "application/x-www-form-urlencoded"),
    (AWARD, f"studentIds={PUPIL}&points[]=-5&behaviorId={POLITE}".encode(), "application/x-www-form-urlencoded"),
    (f"{API}/api/dojoClass/{data.CLASS_ID}/awardBatchV2",
     {"students": [{"_id": PUPIL, "points": -5}], "points": 1, "behaviorId": POLITE}, "application/json"),
    (f"{API}/api/dojoClass/{data.CLASS_ID}/awardBatchV2?points=-5", {"studentIds": [PUPIL], "points": 1},
     "application/json"),
    (f"{API}/api/dojoClass/{data.CLASS_ID}/award", {"studentIds": [PUPIL], "amount": -5}, "application/json"),
])
def test_negative_points_off_the_catalogue_locations_are_refused(world, url, content, content_type):
    """``points: 1`` beside -5 per pupil, in the query, as ``x[points]`` or ``amount`` (known or unknown path): refused."""
    before = len(world["standin"].received)
    body = json.dumps(content).encode() if isinstance(content, dict) else content
    record = refused(world, send(world, url, body, content_type))
    assert "positive-points-only" in record["rules"]
    assert len(world["standin"].received) == before


def test_the_control_a_positive_award_with_per_pupil_points_goes_through(world):
    """Positive points per pupil beside ``points: 1`` are not refused: only a negative value elsewhere is."""
    doc = {"students": [{"_id": PUPIL, "points": 1}], "points": 1, "behaviorId": POLITE}
    response = send(world, AWARD, json.dumps(doc).encode())
    assert response.status_code == 200, response.text


# -- JSON escapes inside text ---------------------------------------------------------------------

SOCKET_IO = '42["message",{"body":"what a load of sh\\u0031t"}]'


def decisions(world) -> list[dict]:
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT body FROM records WHERE type = 'decision' ORDER BY seq").fetchall()
    finally:
        db.close()
    return [json.loads(body) for (body,) in rows]


@pytest.mark.parametrize("message", [' {"body":"what a load of sh\\u0031t"}', SOCKET_IO])
def test_escaped_words_in_a_websocket_text_message_are_refused(world, message):
    """JSON after a space, or a socket.io frame, with ``sh\\u0031t``: dropped and recorded, as a server reads "sh1t"."""
    assert json.loads(message.strip().removeprefix("42"))  # the server's JSON.parse reads it
    before = len(decisions(world))
    clean = "Well done everyone"
    assert websocket_exchange(world, [message, clean]) == [clean]
    assert not [r for r in world["standin"].received if r.method == "WEBSOCKET" and b"u0031" in r.body]
    blocked = [d for d in decisions(world)[before:] if d["verdict"] == "block"]
    assert len(blocked) == 1 and "appropriate-language" in blocked[0]["rules"]


def test_escaped_words_in_a_socket_io_polling_post_are_refused(world):
    """A socket.io long-polling POST (text/plain) carrying ``sh\\u0031t`` in its JSON is refused, not forwarded."""
    record = refused(world, send(world, f"{API}/socket.io/?EIO=4&transport=polling", SOCKET_IO.encode(),
                                 "text/plain;charset=UTF-8"))
    assert "appropriate-language" in record["rules"]
    assert not arrived(world, b"u0031")


def test_the_control_a_clean_socket_io_polling_post_goes_through(world):
    """A socket.io frame with clean escaped text still reaches ClassDojo (with the warning an unknown write gets)."""
    content = b'42["message",{"body":"See you at 3\\u0020o\'clock"}]'
    response = send(world, f"{API}/socket.io/?EIO=4&transport=polling", content, "text/plain;charset=UTF-8")
    assert response.status_code == 200, response.text
    assert arrived(world, content)
