"""Reading a thread's answer for parents' language (proxy/inbound.py), with a real policy, state DB and audit log."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from dojoguard.proxy.inbound import Inbound, messages_of
from dojoguard.proxy.settings import InboundSettings
from dojoguard.rules.policy import load_policy
from tests.support.state import count_rows, everything

from .conftest import MONDAY_10, THREAD_ID, audit_rows

PARENT = {"senderType": "parent", "senderId": "p1"}
TEACHER = {"senderType": "teacher", "senderId": "t1"}
SWEAR = "This homework is sh1t and so is the school"


@pytest.fixture(scope="module")
def policy():
    return load_policy("builtin")


@pytest.fixture
def reader(open_state):
    return Inbound(open_state(), InboundSettings(language_alerts=True, max_body_bytes=64 * 1024))


@pytest.fixture
def audit(tmp_path):
    from dojoguard.audit.log import AuditLog

    log = AuditLog.open(tmp_path / "audit.sqlite")
    yield log
    log.close()


def body(doc) -> bytes:
    return json.dumps(doc).encode()


# -- parsing ------------------------------------------------------------------------

def test_an_items_list_is_read():
    found = messages_of({"_items": [dict(PARENT, _id="m1", createdAt="2026-11-30T08:12:00.000Z", body="Hello"),
                                    dict(TEACHER, _id="m2", body="Hi")]})
    assert [(m.id, m.from_parent, m.text) for m in found] == [("m1", True, "Hello"), ("m2", False, "Hi")]
    assert found[0].at == datetime(2026, 11, 30, 8, 12, tzinfo=UTC) and found[1].at is None


def test_a_messages_list_and_a_bare_list_are_read():
    doc = {"messages": [{"id": "m1", "sender": {"type": "Parent", "_id": "p1"}, "text": "Hi", "time": 1796026320000}]}
    (message,) = messages_of(doc)
    assert (message.id, message.from_parent, message.text) == ("m1", True, "Hi")
    assert message.at == datetime.fromtimestamp(1796026320, UTC)
    assert [m.id for m in messages_of([dict(PARENT, _id="a", body="x")])] == ["a"]


def test_missing_and_wrong_fields_are_left_unknown():
    """No id, no time, a text that is not a string, a sender that is not plainly a parent: kept as unknowns."""
    found = messages_of({"_items": [{"body": 5, "createdAt": "yesterday"}, {"_id": 7, "senderType": None},
                                    "not a message", {"_id": "m3", "senderId": "p1", "body": "no sender kind"}]})
    assert [(m.id, m.at, m.from_parent, m.text) for m in found] == [
        (None, None, False, ""), (None, None, False, ""), ("m3", None, False, "no sender kind")]
    assert messages_of({"_items": "nope"}) == [] and messages_of(None) == [] and messages_of("text") == []


# -- checking -----------------------------------------------------------------------

def test_a_parents_swearing_is_recorded_once_without_its_text(reader, audit, policy, tmp_path):
    doc = {"_items": [dict(PARENT, _id="m1", createdAt="2026-11-30T08:12:00Z", body=SWEAR),
                      dict(TEACHER, _id="m2", body="Oh bloody hell"),
                      dict(PARENT, _id="m3", body="Thank you for the photos")]}
    kwargs = dict(policy=policy, audit=audit, thread=THREAD_ID, teacher="t1", at=MONDAY_10)
    assert reader.read(body(doc), **kwargs) == 1
    assert reader.read(body(doc), **kwargs) == 0  # opened again: already reported
    audit.close()
    (row,) = audit_rows(tmp_path / "audit.sqlite", "inbound.language")
    assert row["thread"] == THREAD_ID and row["teacher"] == "t1" and row["rule"] == "appropriate-language"
    assert row["message_at"] == "2026-11-30T08:12:00Z"
    assert row["alerts"] == [{"rule": "appropriate-language", "to": ["headteacher"], "when": "now"}]
    raw = (tmp_path / "audit.sqlite").read_bytes() + everything(reader.state).encode()
    if reader.state.database.dialect == "sqlite":
        raw += reader.state.path.read_bytes()  # the whole file, pages no table shows included
    assert b"sh1t" not in raw and b"homework" not in raw and b"m1" not in raw
    assert reader.counts["reported"] == 1 and reader.counts["already_reported"] == 1


def test_compressed_answers_are_read(reader, audit, policy):
    doc = {"_items": [dict(PARENT, _id="m1", body=SWEAR)]}
    assert reader.read(gzip.compress(body(doc)), encoding="gzip", policy=policy, audit=audit, thread=THREAD_ID,
                       teacher=None, at=MONDAY_10) == 1


def test_a_non_json_or_huge_answer_is_counted_not_raised(reader, audit, policy):
    kwargs = dict(policy=policy, audit=audit, thread=THREAD_ID, teacher=None, at=MONDAY_10)
    assert reader.read(b"<html>oops</html>", **kwargs) == 0
    assert reader.read(b"\x1f\x8b garbage", encoding="gzip", **kwargs) == 0
    huge = body({"_items": [dict(PARENT, _id=f"m{i}", body=SWEAR + " " * 1000) for i in range(100)]})
    assert len(huge) > 64 * 1024
    assert reader.read(huge, **kwargs) == 0
    assert reader.counts["unreadable"] == 2 and reader.counts["skipped_large"] == 1
    assert reader.counts["reported"] == 0


def test_a_message_without_an_id_is_counted_not_reported(reader, audit, policy):
    assert reader.read(body([dict(PARENT, body=SWEAR)]), policy=policy, audit=audit, thread=THREAD_ID,
                       teacher=None, at=MONDAY_10) == 0
    assert reader.counts["no_id"] == 1


def test_a_rule_naming_nobody_tells_the_settings_recipients(tmp_path, audit, open_state):
    (tmp_path / "rules.yaml").write_text(
        "default: {verdict: allow}\nlists:\n  bad: {phrases: [rubbish]}\nrules:\n"
        "  - {id: no-rubbish, when: {all: [{kind: message.send}, {language: bad}]}, verdict: warn, notice: n,"
        " clause: c}\n", "utf-8")
    policy = load_policy(tmp_path / "rules.yaml")
    state = open_state("other")
    try:
        reader = Inbound(state, InboundSettings(language_alerts=True, alert_to=("leaders",)))
        assert reader.read(body([dict(PARENT, _id="m1", body="What rubbish")]), policy=policy, audit=audit,
                           thread=THREAD_ID, teacher=None, at=MONDAY_10) == 1
    finally:
        state.close()
    audit.close()
    (row,) = audit_rows(tmp_path / "audit.sqlite", "inbound.language")
    assert row["alerts"] == [{"rule": "no-rubbish", "to": ["leaders"], "when": "now"}]


def test_remembered_messages_are_forgotten_after_the_set_days(reader, audit, policy):
    doc = body([dict(PARENT, _id="m1", body=SWEAR)])
    kwargs = dict(policy=policy, audit=audit, thread=THREAD_ID, teacher=None)
    assert reader.read(doc, at=MONDAY_10, **kwargs) == 1
    assert reader.forget_before(MONDAY_10 + timedelta(days=1)) == 1
    assert count_rows(reader.state, "inbound_seen") == 0
