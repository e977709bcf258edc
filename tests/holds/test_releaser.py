"""Tests for releasing deferred and approved items, with retries, expiry and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dojoguard.audit.log import AuditLog
from dojoguard.clock import FixedClock
from dojoguard.holds.releaser import Releaser, backoff
from dojoguard.holds.sender import Sender
from dojoguard.holds.store import NEEDS_A_PERSON, HoldError, HoldState, HoldStore, StoredRequest
from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.decision import Decision, Match, Verdict

FRIDAY_1730 = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
MONDAY_0800 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def events(log: AuditLog) -> list[tuple[str, dict]]:
    return [(r.type, r.fields) for r in log.records() if r.type not in ("audit.created",)]


@pytest.fixture
def setup(tmp_path, upstream):
    clock = FixedClock(FRIDAY_1730)
    store = HoldStore.open(tmp_path / "holds.sqlite")
    log = AuditLog.open(tmp_path / "audit.sqlite", clock=clock)
    releaser = Releaser(store, Sender().send, log, clock, max_attempts=3, max_age=timedelta(days=7))
    yield clock, store, log, releaser
    store.close()
    log.close()


def keep(store, upstream, kind="defer", release_at=MONDAY_0800, body=b'{"body":"PE kit tomorrow"}'):
    request = StoredRequest("POST", "http", "127.0.0.1", upstream.port, "/api/message-thread/t1/message",
                            "HTTP/1.1", (("Content-Type", "application/json"),
                                         ("Cookie", "dojo_login.sid=s%3Asession.sig")), body, "10.0.0.7")
    verdict = Verdict.DEFER if kind == "defer" else Verdict.HOLD
    decision = Decision(verdict, (Match("messaging-hours", verdict, "out of hours", "Queued"),), "rev", FRIDAY_1730)
    action = Action(Kind.MESSAGE_SEND, Channel.MESSAGE, FRIDAY_1730, teacher_id="t1")
    return store.keep(kind, request, decision, action, release_at if kind == "defer" else None)


async def test_deferred_message_is_sent_unchanged_when_due_and_then_forgotten(setup, upstream):
    """At its time the request goes upstream with its cookies and body, is deleted, and is recorded."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    assert await releaser.run_once() == []
    clock.set(MONDAY_0800)
    (outcome,) = await releaser.run_once()
    assert outcome.event == "defer.released"
    (method, path, headers, body) = upstream.received[0]
    assert (method, path, body) == ("POST", "/api/message-thread/t1/message", b'{"body":"PE kit tomorrow"}')
    assert headers["Cookie"] == "dojo_login.sid=s%3Asession.sig"
    assert store.list() == []
    released = [f for e, f in events(log) if e == "defer.released"]
    assert released and released[0]["hold"] == item.id and "PE kit" not in str(released)


async def test_failed_release_is_retried_with_backoff_then_listed_as_failed(setup, upstream):
    """A ClassDojo error is retried after the backoff, and after the last attempt the item is failed, not lost."""
    clock, store, log, releaser = setup
    upstream.status = 503
    item = keep(store, upstream)
    clock.set(MONDAY_0800)
    assert [o.event for o in await releaser.run_once()] == ["defer.retrying"]
    assert await releaser.run_once() == []  # not before the backoff
    clock.set(MONDAY_0800 + backoff(1))
    assert [o.event for o in await releaser.run_once()] == ["defer.retrying"]
    clock.set(MONDAY_0800 + backoff(1) + backoff(2))
    assert [o.event for o in await releaser.run_once()] == ["defer.failed"]
    failed = store.get(item.id)
    assert failed.state == HoldState.FAILED and failed.attempts == 3 and "503" in failed.last_error
    clock.set(MONDAY_0800 + timedelta(hours=5))
    assert await releaser.run_once() == []
    assert len(upstream.received) == 3
    assert [e for e, _ in events(log)].count("defer.failed") == 1


async def test_approved_hold_is_sent_and_unapproved_waits(setup, upstream):
    """A held item is only sent once a leader approves it."""
    clock, store, log, releaser = setup
    item = keep(store, upstream, kind="hold")
    clock.set(MONDAY_0800)
    assert await releaser.run_once() == []
    approval = log.append_event("hold.approved", {"hold": item.id, "decision_id": item.decision_id, "by": "Head"})
    store.approve(item.id, approval.record_id, clock.now())
    assert [o.event for o in await releaser.run_once()] == ["hold.released"]
    assert len(upstream.received) == 1


async def test_items_older_than_the_maximum_age_expire_are_kept_and_the_teacher_is_told(setup, upstream):
    """A hold nobody decided on expires after the maximum age: recorded, kept for leaders, never sent, and the
    teacher has a notice waiting."""
    clock, store, log, releaser = setup
    item = keep(store, upstream, kind="hold")
    clock.set(FRIDAY_1730 + timedelta(days=8))
    assert [o.event for o in await releaser.run_once()] == ["hold.expired"]
    assert [i.id for i in store.list(states=NEEDS_A_PERSON)] == [item.id] and upstream.received == []
    assert "waited more than 7 days" in store.get(item.id).last_error
    assert any(e == "hold.expired" and f["hold"] == item.id for e, f in events(log))
    (notice,) = store.notices_for("t1")
    assert notice.outcome == "expired" and notice.interrupts and "was not sent" in notice.text
    assert await releaser.run_once() == []  # expired once, not again


async def test_unreachable_upstream_is_a_failed_attempt_not_an_exception(setup, upstream):
    """A connection error is recorded as an attempt and retried later."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    upstream.close()
    clock.set(MONDAY_0800)
    (outcome,) = await releaser.run_once()
    assert outcome.event == "defer.retrying" and "could not reach" in outcome.detail
    assert store.get(item.id).attempts == 1
