"""Parents' messages through a real ``dojoguard run``: a thread a teacher opens is passed on unchanged, and a
parent's inappropriate language is recorded once and reaches the headteacher by email, never its text."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from dojoguard.standin import data
from tests.proxy.conftest import MONDAY_10, audit_rows, running_proxy, signed_in
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

THREAD = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
SWEARING = "Honestly this homework is sh1t, sort it out"
MESSAGES = [
    {"_id": "5f00000000000000000d2001", "threadId": data.THREAD_ID, "senderId": data.PARENT_ID,
     "senderType": "parent", "createdAt": "2026-11-30T08:12:00.000Z", "body": "Morning! Ada will be late today."},
    {"_id": "5f00000000000000000d2002", "threadId": data.THREAD_ID, "senderId": data.PARENT_ID,
     "senderType": "parent", "createdAt": "2026-11-30T08:15:00.000Z", "body": SWEARING},
    {"_id": "5f00000000000000000d2003", "threadId": data.THREAD_ID, "senderId": data.TEACHER["_id"],
     "senderType": "teacher", "createdAt": "2026-11-30T08:40:00.000Z", "body": "Oh bloody hell, sorry, I'll check."},
]
WORDS = (b"sh1t", b"homework", b"bloody", b"Ada will be late", b"sort it out")




def _reads(proxy) -> int:
    return proxy.log().count('"inbound.read"')


def _stored_bytes(folder: Path) -> bytes:
    """Every file the proxy keeps in its data folder (databases with their write-ahead logs)."""
    return b"".join(p.read_bytes() for p in sorted((folder / "data").rglob("*")) if p.is_file())


def test_a_parents_swearing_is_recorded_once_and_the_headteacher_is_emailed(tmp_path):
    with running_proxy(tmp_path, policy="builtin", settings={"inbound": {"language_alerts": True}}) as world:
        world["standin"].threads[data.THREAD_ID] = MESSAGES
        served = json.dumps({"_items": MESSAGES, "_metadata": {"threadId": data.THREAD_ID,
                                                               "count": len(MESSAGES)}}).encode()
        database = tmp_path / "data" / "audit.sqlite"
        with signed_in(world["proxy"]) as client:
            first = client.get(THREAD)
            assert first.status_code == 200 and first.content == served  # passed on unchanged
            (record,) = eventually(lambda: audit_rows(database, "inbound.language"))
            eventually(lambda: _reads(world["proxy"]) >= 1)
            again = client.get(THREAD)
            assert again.status_code == 200 and again.content == served
            eventually(lambda: _reads(world["proxy"]) >= 2)
        assert len(audit_rows(database, "inbound.language")) == 1, "reported again when the thread was reopened"
        assert record["thread"] == data.THREAD_ID and record["message_at"] == "2026-11-30T08:15:00Z"
        assert record["teacher"] == data.TEACHER["_id"] and record["rule"] == "appropriate-language"
        assert record["alerts"] == [{"rule": "appropriate-language", "to": ["headteacher"], "when": "now"}]
        stored = _stored_bytes(tmp_path)
        assert not [w for w in WORDS if w in stored], "message text was stored"
        assert not [w for w in WORDS if w.decode() in world["proxy"].log()], "message text was logged"
    _the_alert_sender_emails_the_headteacher(tmp_path, database)


def _the_alert_sender_emails_the_headteacher(tmp_path: Path, database: Path) -> None:
    """The record the proxy wrote is read by the alert sender like any record with `alerts`."""
    from dojoguard.audit.log import AuditLog
    from dojoguard.clock import FixedClock
    from tests.alerts.conftest import sender
    from tests.support.smtp import SmtpServer

    clock = FixedClock(MONDAY_10)
    (tmp_path / "smtp").mkdir()
    smtp = SmtpServer(tmp_path / "smtp").start()
    audit = AuditLog.open(database, clock=clock, emit_decisions=False)
    try:
        s = sender(tmp_path, smtp, audit, clock, audit_database=database)
        s.outbox.take([], 0, clock.now())  # read the whole log, not only what comes after this start
        clock.set(MONDAY_10 + timedelta(seconds=31))
        assert s.turn() == 1
        [(to, message, _)] = smtp.messages
        assert to == ["head@school.example"]
        text = message.get_content()
        assert data.THREAD_ID in text and "a parent's message in a thread a teacher opened" in text
        for word in WORDS:
            assert word.decode() not in text and word.decode() not in message["Subject"]
        s.close()
    finally:
        audit.close()
        smtp.stop()


def test_nothing_is_read_when_the_setting_is_off(tmp_path):
    """Off by default: the thread is passed on, nothing is read, nothing recorded."""
    with running_proxy(tmp_path, policy="builtin") as world:
        world["standin"].threads[data.THREAD_ID] = MESSAGES
        with signed_in(world["proxy"]) as client:
            answer = client.get(THREAD)
            assert answer.status_code == 200 and answer.json()["_items"] == MESSAGES
            time.sleep(1.5)
        assert audit_rows(tmp_path / "data" / "audit.sqlite", "inbound.language") == []
        assert _reads(world["proxy"]) == 0
