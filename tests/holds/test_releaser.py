"""Tests for releasing deferred and approved items, with retries, expiry and the audit trail.

Every test runs with the hold store on SQLite and again on PostgreSQL (the
``stores`` fixture); the audit log is a SQLite file in both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dojoguard.audit.log import AuditLog
from dojoguard.clock import FixedClock
from dojoguard.holds.releaser import Releaser, backoff
from dojoguard.holds.sender import Sender
from dojoguard.holds.store import NEEDS_A_PERSON, HoldError, HoldState, StoredRequest
from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.decision import Decision, Match, Verdict

from .conftest import RawConnection, sql

FRIDAY_1730 = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
MONDAY_0800 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def events(log: AuditLog) -> list[tuple[str, dict]]:
    return [(r.type, r.fields) for r in log.records() if r.type not in ("audit.created",)]


@pytest.fixture
def setup(tmp_path, upstream, stores):
    clock = FixedClock(FRIDAY_1730)
    store = stores.open()
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


# -- at most once when in doubt ------------------------------------------------------------


def uncertain_events(log):
    return [f for e, f in events(log) if e.endswith(".uncertain")]


async def test_an_item_left_sending_by_a_killed_run_becomes_uncertain_and_is_not_resent(setup, upstream):
    """A run that claimed an item and died before ClassDojo answered: the next pass records it uncertain, with
    when the send began, sends nothing, tells the teacher, and lists it for a person."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    clock.set(MONDAY_0800)
    store.begin_send(item.id, "killed-run", MONDAY_0800)  # what the killed run did before dying
    clock.set(MONDAY_0800 + timedelta(seconds=30))
    (outcome,) = await releaser.run_once()
    assert outcome.event == "defer.uncertain" and upstream.received == []
    assert store.get(item.id).state == HoldState.UNCERTAIN
    assert [i.id for i in store.list(states=NEEDS_A_PERSON)] == [item.id]
    (record,) = uncertain_events(log)
    assert record["hold"] == item.id and record["sent_at"] == MONDAY_0800.isoformat()
    assert [n.outcome for n in store.notices_for("t1")] == ["uncertain"]
    clock.set(MONDAY_0800 + timedelta(days=1))
    assert await releaser.run_once() == [] and upstream.received == []


async def test_a_send_whose_release_was_recorded_before_the_crash_is_just_tidied(setup, upstream):
    """Killed after recording the release but before deleting the item: the log says it went, so it is removed,
    not made uncertain and not resent."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    clock.set(MONDAY_0800)
    store.begin_send(item.id, "killed-run", MONDAY_0800)
    log.append_event("defer.released", {"hold": item.id, "decision_id": item.decision_id})
    (outcome,) = await releaser.run_once()
    assert outcome.event == "defer.released" and store.list() == [] and upstream.received == []
    assert uncertain_events(log) == []


async def test_a_request_sent_whose_answer_never_came_is_uncertain(setup, upstream, tmp_path):
    """ClassDojo took the request but did not answer before the sender gave up: it may have acted on it, so the
    item is uncertain, not retried."""
    clock, store, log, _ = setup
    releaser = Releaser(store, Sender(timeout=0.5).send, log, clock, max_attempts=3, max_age=timedelta(days=7))
    upstream.delay = 2.0
    item = keep(store, upstream)
    clock.set(MONDAY_0800)
    (outcome,) = await releaser.run_once()
    assert outcome.event == "defer.uncertain" and "no answer came back" in outcome.detail
    assert len(upstream.received) == 1 and store.get(item.id).state == HoldState.UNCERTAIN
    clock.set(MONDAY_0800 + timedelta(hours=2))
    assert await releaser.run_once() == [] and len(upstream.received) == 1


@pytest.mark.parametrize("status, event, state", [
    (503, "defer.retrying", HoldState.PENDING),
    (429, "defer.retrying", HoldState.PENDING),
    (500, "defer.uncertain", HoldState.UNCERTAIN),
    (502, "defer.uncertain", HoldState.UNCERTAIN),
    (504, "defer.uncertain", HoldState.UNCERTAIN),
    (400, "defer.failed", HoldState.FAILED),
    (401, "defer.waiting_for_login", HoldState.WAITING_FOR_LOGIN),
])
async def test_each_answer_puts_the_item_where_it_belongs(setup, upstream, status, event, state):
    """Not acted on (503, 429): tried again later. Maybe acted on (500, or a gateway that gave up: 502, 504):
    uncertain. Refused as such (400): failed at
    once. Logged out (401): waits for the teacher's next login."""
    clock, store, log, releaser = setup
    upstream.status = status
    item = keep(store, upstream)
    clock.set(MONDAY_0800)
    (outcome,) = await releaser.run_once()
    assert outcome.event == event and store.get(item.id).state == state


async def test_a_person_resends_an_uncertain_item_once(setup, upstream):
    """After `held resend` (recorded as hold.resent) the uncertain item is sent, once."""
    clock, store, log, releaser = setup
    item = keep(store, upstream, kind="hold")
    approval = log.append_event("hold.approved", {"hold": item.id, "decision_id": item.decision_id, "by": "Head"})
    store.approve(item.id, approval.record_id, clock.now())
    store.begin_send(item.id, "killed-run", clock.now())
    assert [o.event for o in await releaser.run_once()] == ["hold.uncertain"]
    record = log.append_event("hold.resent", {"hold": item.id, "decision_id": item.decision_id, "by": "IT"})
    store.resend(item.id, record.record_id, clock.now())
    assert [o.event for o in await releaser.run_once()] == ["hold.released"]
    assert len(upstream.received) == 1 and store.list() == []
    assert [n.outcome for n in store.notices_for("t1")] == ["uncertain", "released"]


async def test_an_uncertain_item_put_back_as_approved_by_hand_is_not_sent(setup, upstream):
    """A row restored from an old copy (state approved, seal valid) of an item the log shows uncertain: the log's
    latest word wins, so it is not sent."""
    clock, store, log, releaser = setup
    item = keep(store, upstream, kind="hold")
    approval = log.append_event("hold.approved", {"hold": item.id, "decision_id": item.decision_id, "by": "Head"})
    store.approve(item.id, approval.record_id, clock.now())
    db = RawConnection(store)
    copy = db.execute("SELECT * FROM items WHERE id = ?", (item.id,)).fetchone()
    store.begin_send(item.id, "killed-run", clock.now())
    await releaser.run_once()
    db.execute("DELETE FROM items WHERE id = ?", (item.id,))
    db.execute(f"INSERT INTO items VALUES ({', '.join('?' * len(copy))})", copy)
    db.commit()
    db.close()
    (outcome,) = await releaser.run_once()
    assert outcome.event == "hold.tampered" and "says uncertain" in outcome.detail and upstream.received == []


async def test_a_leader_cannot_reject_or_approve_while_it_is_being_sent(setup, upstream):
    """While an item is `sending`, rejection and approval are refused with a clear reason."""
    clock, store, log, releaser = setup
    item = keep(store, upstream, kind="hold")
    approval = log.append_event("hold.approved", {"hold": item.id, "decision_id": item.decision_id, "by": "Head"})
    store.approve(item.id, approval.record_id, clock.now())
    store.begin_send(item.id, releaser.run_id, clock.now())
    with pytest.raises(HoldError, match="being sent to ClassDojo right now"):
        store.begin_reject(item.id)
    with pytest.raises(HoldError, match="being sent"):
        store.approve(item.id, "x", clock.now())
    assert store.get(item.id).state == HoldState.SENDING


async def test_a_rejection_that_wins_the_race_stops_the_send(setup, upstream):
    """Once a rejection has taken the item, the releaser cannot claim it: nothing is sent."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    store.begin_reject(item.id)
    clock.set(MONDAY_0800)
    assert await releaser.run_once() == [] and upstream.received == []
    with pytest.raises(HoldError):
        store.begin_send(item.id, "r", MONDAY_0800)


# -- nothing expires unseen ------------------------------------------------------------------

EASTER_FRIDAY_1730 = datetime(2027, 3, 26, 17, 30, tzinfo=UTC)
AFTER_EASTER_0800 = datetime(2027, 4, 12, 7, 0, tzinfo=UTC)  # 8.00am BST


async def test_a_message_queued_over_a_holiday_waits_and_is_sent_when_its_window_opens(setup, upstream):
    """Queued on the Friday before a two-week holiday, released on the Monday after: the maximum age counts from
    the release time, so it is not expired in between."""
    clock, store, log, releaser = setup
    clock.set(EASTER_FRIDAY_1730)
    keep(store, upstream, release_at=AFTER_EASTER_0800)
    for day in range(1, 17):
        clock.set(EASTER_FRIDAY_1730 + timedelta(days=day, hours=-10))
        if clock.now() >= AFTER_EASTER_0800:
            break
        assert await releaser.run_once() == [], clock.now()
    clock.set(AFTER_EASTER_0800)
    assert [o.event for o in await releaser.run_once()] == ["defer.released"]
    assert len(upstream.received) == 1 and not any(e.endswith("expired") for e, _ in events(log))


async def test_a_deferred_item_expires_only_max_age_after_its_release_time(setup, upstream):
    """A release that keeps failing expires max_age after its release time, not its queue time; kept, listed."""
    clock, store, log, releaser = setup
    upstream.status = 401
    clock.set(EASTER_FRIDAY_1730)
    item = keep(store, upstream, release_at=AFTER_EASTER_0800)
    clock.set(AFTER_EASTER_0800)
    assert [o.event for o in await releaser.run_once()] == ["defer.waiting_for_login"]
    clock.set(AFTER_EASTER_0800 + timedelta(days=6, hours=23))
    assert await releaser.run_once() == []
    clock.set(AFTER_EASTER_0800 + timedelta(days=7, minutes=1))
    assert [o.event for o in await releaser.run_once()] == ["defer.expired"]
    assert store.get(item.id).state == HoldState.EXPIRED and store.list(states=NEEDS_A_PERSON)


# -- the teacher's current login -----------------------------------------------------------------


async def test_a_release_uses_the_teachers_latest_login_and_one_refused_for_login_waits_for_a_new_one(
        setup, upstream):
    """Refused with 401 (the stored login ended): the item waits; a new login of the teacher seen working wakes it
    and it is sent with that login's cookie, not the one stored with the item."""
    clock, store, log, releaser = setup
    upstream.status = 401
    item = keep(store, upstream)
    clock.set(MONDAY_0800)
    assert [o.event for o in await releaser.run_once()] == ["defer.waiting_for_login"]
    clock.set(MONDAY_0800 + timedelta(hours=1))
    assert await releaser.run_once() == []  # waiting: not retried by itself
    upstream.status = 200
    assert store.note_session("t1", "dojo_login.sid=s%3Anew.sig", "s:new.sig", clock.now())
    assert [i.id for i in store.wake("t1", clock.now())] == [item.id]
    assert [o.event for o in await releaser.run_once()] == ["defer.released"]
    assert upstream.received[-1][2]["Cookie"] == "dojo_login.sid=s%3Anew.sig"


async def test_a_session_row_changed_by_hand_is_not_used(setup, upstream):
    """Someone who can write the store swaps another teacher's cookie in: the seal does not match, so the item's
    own cookie is used."""
    clock, store, log, releaser = setup
    keep(store, upstream)
    store.note_session("t1", "dojo_login.sid=s%3Amine.sig", "s:mine.sig", clock.now())
    sql(store, "UPDATE sessions SET cookie = 'dojo_login.sid=s%3Asomeone-else.sig'")
    assert store.session_of("t1") is None
    clock.set(MONDAY_0800)
    await releaser.run_once()
    assert upstream.received[-1][2]["Cookie"] == "dojo_login.sid=s%3Asession.sig"


async def test_one_row_edited_past_recording_does_not_stop_the_queue(setup, upstream):
    """A row set to `sending` by hand with a value the audit log refuses (5,000 characters): it is set aside as
    tampered, and the other items are still sent in the same pass."""
    clock, store, log, releaser = setup
    poisoned = keep(store, upstream, body=b'{"body":"one"}')
    good = keep(store, upstream, body=b'{"body":"two"}')
    sql(store, "UPDATE items SET state = 'sending', class_id = ? WHERE id = ?", "x" * 5000, poisoned.id)
    clock.set(MONDAY_0800)
    events_seen = {(o.event, o.item.id) for o in await releaser.run_once()}
    assert ("defer.released", good.id) in events_seen
    assert store.get(poisoned.id).state == HoldState.TAMPERED
    assert [r[3] for r in upstream.received] == [b'{"body":"two"}']


async def test_a_rejected_item_restored_from_a_copy_is_never_sent(setup, upstream):
    """A rejected hold put back from an old copy of the store (sealed, pending): a later approval cannot reopen it,
    and a copy taken mid-send is set aside as tampered, not offered for resending as uncertain."""
    clock, store, log, releaser = setup
    item = keep(store, upstream, kind="hold")
    db = RawConnection(store)
    pending_copy = db.execute("SELECT * FROM items WHERE id = ?", (item.id,)).fetchone()
    store.begin_reject(item.id)
    log.append_event("hold.rejected", {"hold": item.id, "decision_id": item.decision_id, "by": "Head",
                                       "reason": "no"})
    store.remove(item.id)
    db.execute(f"INSERT INTO items VALUES ({', '.join('?' * len(pending_copy))})", pending_copy)
    db.commit()
    approval = log.append_event("hold.approved", {"hold": item.id, "decision_id": item.decision_id, "by": "X"})
    store.approve(item.id, approval.record_id, clock.now())
    (outcome,) = await releaser.run_once()
    assert outcome.event == "hold.tampered" and "already shows it rejected" in outcome.detail
    assert upstream.received == []

    db.execute("DELETE FROM items WHERE id = ?", (item.id,))
    db.execute(f"INSERT INTO items VALUES ({', '.join('?' * len(pending_copy))})", pending_copy)
    db.commit()
    db.close()
    store.approve(item.id, approval.record_id, clock.now())
    store.begin_send(item.id, "old-run", clock.now())  # as a copy taken mid-send would be
    (outcome,) = await releaser.run_once()
    assert outcome.event == "hold.tampered" and store.get(item.id).state == HoldState.TAMPERED
    assert uncertain_events(log) == [] and upstream.received == []


async def test_an_approval_just_made_is_not_overruled_by_an_expiry_listed_before_it(setup, upstream):
    """The releaser listed a hold as expired; a leader approves it before the expiry is written: the approval
    stands (its age now counts from the approval) and the item is sent."""
    clock, store, log, releaser = setup
    item = keep(store, upstream, kind="hold")
    clock.set(FRIDAY_1730 + timedelta(days=8))
    (listed,) = store.expired(clock.now(), releaser.max_age)
    approval = log.append_event("hold.approved", {"hold": item.id, "decision_id": item.decision_id, "by": "Head"})
    store.approve(item.id, approval.record_id, clock.now())
    assert await releaser._expire(listed) is None
    assert [o.event for o in await releaser.run_once()] == ["hold.released"]


async def test_a_rejection_killed_after_it_was_recorded_is_finished_by_the_next_pass(setup, upstream):
    """`held reject` recorded hold.rejected and was killed before deleting the item: the next pass deletes it."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    store.begin_reject(item.id)
    log.append_event("hold.rejected", {"hold": item.id, "decision_id": item.decision_id, "by": "Head",
                                       "reason": "no"})
    assert [o.event for o in await releaser.run_once()] == ["hold.rejected"]
    assert store.list() == [] and upstream.received == []


async def test_a_login_that_now_belongs_to_another_teacher_is_never_used(setup, upstream):
    """On a shared device the login an item carries may since have become another teacher's: the item is not
    sent as them; it waits for its own teacher's login."""
    clock, store, log, _ = setup
    owners = {"dojo_login.sid=s%3Asession.sig": "t2"}
    releaser = Releaser(store, Sender().send, log, clock, max_attempts=3, max_age=timedelta(days=7),
                        login_owner=owners.get)
    item = keep(store, upstream)
    clock.set(MONDAY_0800)
    (outcome,) = await releaser.run_once()
    assert outcome.event == "defer.waiting_for_login" and upstream.received == []
    assert "another teacher" in store.get(item.id).last_error
    owners["dojo_login.sid=s%3Asession.sig"] = "t1"  # the proxy saw it become the item's teacher's again
    store.wake("t1", clock.now())
    assert [o.event for o in await releaser.run_once()] == ["defer.released"]
