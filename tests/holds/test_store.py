"""Tests for the held/deferred request store, on SQLite and on PostgreSQL (the ``stores`` fixture).

The file's permissions and the upgrade of files made by older releases are
SQLite's alone: a PostgreSQL store has no file, and no release before this
one kept holds there.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest

from dojoguard.holds.store import HoldError, HoldState, HoldStore, StoredRequest
from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.decision import Decision, Match, Verdict

from .conftest import sql

FRIDAY_1730 = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
MONDAY_0800 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def request(body=b'{"body":"See you tomorrow"}', path="/api/message-thread/abc/message"):
    return StoredRequest("POST", "https", "teach.classdojo.com", 443, path, "HTTP/1.1",
                         (("Content-Type", "application/json"), ("Cookie", "dojo_login.sid=s%3Aabc.sig")),
                         body, "10.0.0.5")


def decision(verdict=Verdict.DEFER):
    return Decision(verdict, (Match("messaging-hours", verdict, "outside 8.00am-5pm", "Queued"),), "rev1",
                    FRIDAY_1730)


ACTION = Action(Kind.MESSAGE_SEND, Channel.MESSAGE, FRIDAY_1730, teacher_id="t1", class_id="c1")


@pytest.fixture
def store(stores):
    s = stores.open()
    yield s
    s.close()


def test_store_file_is_owner_only(tmp_path):
    """The store holds whole requests with cookies, so only the service may read it."""
    HoldStore.open(tmp_path / "h.sqlite").close()
    assert stat.S_IMODE((tmp_path / "h.sqlite").stat().st_mode) == 0o600


def test_kept_request_round_trips_exactly(store):
    """Headers, cookies and body come back byte for byte, ready to send."""
    item = store.keep("defer", request(), decision(), ACTION, MONDAY_0800)
    assert not item.is_duplicate and item.state == HoldState.PENDING
    assert store.request(item.id) == request()
    assert item.rule_ids == ("messaging-hours",) and item.teacher_id == "t1"


def test_retrying_the_same_message_does_not_queue_it_twice(store):
    """A teacher who presses send again gets the item already queued, marked duplicate."""
    first = store.keep("defer", request(), decision(), ACTION, MONDAY_0800)
    again = store.keep("defer", request(), decision(), ACTION, MONDAY_0800)
    other = store.keep("defer", request(b'{"body":"different"}'), decision(), ACTION, MONDAY_0800)
    assert again.is_duplicate and again.id == first.id
    assert other.id != first.id
    assert len(store.list()) == 2


def test_deferred_items_fall_due_at_their_time(store):
    """A deferred item is not due before its release time and is due from it."""
    item = store.keep("defer", request(), decision(), ACTION, MONDAY_0800)
    assert store.due(MONDAY_0800 - timedelta(seconds=1)) == []
    assert [i.id for i in store.due(MONDAY_0800)] == [item.id]


def test_holds_are_due_only_once_approved(store):
    """A held item waits for a leader however long it takes; approval makes it due."""
    item = store.keep("hold", request(), decision(Verdict.HOLD), ACTION, None)
    assert store.due(MONDAY_0800 + timedelta(days=3)) == []
    store.approve(item.id, "approval-record", MONDAY_0800)
    assert [i.id for i in store.due(MONDAY_0800)] == [item.id]
    assert store.get(item.id).approval == "approval-record"
    with pytest.raises(HoldError):
        store.approve(item.id, "approval-record", MONDAY_0800)


def test_failed_attempts_back_off_and_then_give_up(store):
    """A failed release waits until its retry time; the last permitted failure marks it failed."""
    item = store.keep("defer", request(), decision(), ACTION, MONDAY_0800)
    store.begin_send(item.id, "run1", MONDAY_0800)
    store.send_failed(item.id, "HTTP 503", state=None, retry_at=MONDAY_0800 + timedelta(minutes=1))
    assert store.due(MONDAY_0800) == []
    assert store.due(MONDAY_0800 + timedelta(minutes=1))
    store.begin_send(item.id, "run1", MONDAY_0800 + timedelta(minutes=1))
    failed = store.send_failed(item.id, "HTTP 503", state=HoldState.FAILED,
                               retry_at=MONDAY_0800 + timedelta(minutes=3))
    assert failed.state == HoldState.FAILED and failed.attempts == 2 and failed.last_error == "HTTP 503"
    assert store.due(MONDAY_0800 + timedelta(days=1)) == []
    assert [i.id for i in store.list(state=HoldState.FAILED)] == [item.id]
    assert store.retry(item.id, MONDAY_0800).state == HoldState.PENDING


def test_items_survive_reopening(stores):
    """A restart loses nothing: a reopened store has every item and its request."""
    store = stores.open()
    item = store.keep("defer", request(), decision(), ACTION, MONDAY_0800)
    store.close()
    reopened = stores.open()
    assert reopened.get(item.id).release_at == MONDAY_0800
    assert reopened.request(item.id).content == request().content
    reopened.close()


def test_removed_items_are_gone_with_their_request(store):
    """Once released or rejected, nothing of the request is kept."""
    item = store.keep("hold", request(), decision(Verdict.HOLD), ACTION, None)
    store.remove(item.id)
    with pytest.raises(HoldError):
        store.get(item.id)
    with pytest.raises(HoldError):
        store.request(item.id)


def test_previews_are_kept_for_their_item_only_and_go_with_it(store):
    """The uploads a held post names are kept to be seen, with their SHA-256; removing the item removes them,
    and previews that arrive after the item was decided are not kept at all."""
    import hashlib

    item = store.keep("hold", request(), decision(Verdict.HOLD), ACTION, None)
    store.keep_previews(item.id, [("video/mp4", b"a video"), (None, b"a photo")])
    assert store.previews(item.id) == [("video/mp4", b"a video", hashlib.sha256(b"a video").hexdigest()),
                                       (None, b"a photo", hashlib.sha256(b"a photo").hexdigest())]
    store.remove(item.id)
    assert store.previews(item.id) == []
    store.keep_previews(item.id, [("video/mp4", b"too late")])
    assert store.previews(item.id) == []


def test_expired_lists_items_older_than_the_maximum_age(store):
    """Items older than the configured age are listed for expiry; younger ones are not."""
    item = store.keep("hold", request(), decision(Verdict.HOLD), ACTION, None)
    assert store.expired(FRIDAY_1730 + timedelta(days=6), timedelta(days=7)) == []
    assert [i.id for i in store.expired(FRIDAY_1730 + timedelta(days=8), timedelta(days=7))] == [item.id]


def test_the_same_publication_joins_the_item_waiting_whatever_carries_it(store):
    """Two requests whose bytes differ (another multipart boundary, another upload id) but publish the same thing
    (same content key) are one item; once that item has failed or expired, sending again makes a new one."""
    first = store.keep("hold", request(b"--a\r\nvideo"), decision(Verdict.HOLD), ACTION, None, content_key="k1")
    again = store.keep("hold", request(b"--b\r\nvideo"), decision(Verdict.HOLD), ACTION, None, content_key="k1")
    other = store.keep("hold", request(b"--c\r\nvideo"), decision(Verdict.HOLD), ACTION, None, content_key="k2")
    assert again.is_duplicate and again.id == first.id and other.id != first.id
    store.approve(first.id, "approval", MONDAY_0800)
    store.begin_send(first.id, "run", MONDAY_0800)
    store.send_failed(first.id, "HTTP 400", state=HoldState.FAILED, retry_at=MONDAY_0800)
    fresh = store.keep("hold", request(b"--d\r\nvideo"), decision(Verdict.HOLD), ACTION, None, content_key="k1")
    assert not fresh.is_duplicate and fresh.id != first.id


def test_a_store_of_the_previous_version_is_upgraded_with_its_seals_kept(tmp_path):
    """A version-1 store (unique dedupe index, no version number) opens: rows whose seal matched are sealed again
    over the new columns and stay sendable, one edited by hand stays unsealed, and the deferred row's age now
    counts from its release time."""
    import sqlite3

    from dojoguard.holds import schema, seal

    path = tmp_path / "holds.sqlite"
    key_path = tmp_path / "keys" / "holds-seal.key"
    key, _ = seal.load_or_create(key_path)
    db = sqlite3.connect(path)
    db.executescript(schema._V1 + "CREATE UNIQUE INDEX items_dedupe ON items (dedupe_key);")
    for item_id, body in (("good", b"{}"), ("edited", b"{}")):
        row = {"id": item_id, "kind": "defer", "state": "pending", "created_at": FRIDAY_1730.isoformat(),
               "release_at": MONDAY_0800.isoformat(), "decision_id": "d-" + item_id, "teacher_id": "t1",
               "class_id": None, "action_kind": "message.send", "channel": "message", "rule_ids": "[]",
               "reason": "why", "attempts": 0, "last_error": None, "dedupe_key": item_id,
               "request": '{"method": "POST", "scheme": "https", "host": "teach.classdojo.com", "port": 443, '
                          '"path": "/api/x", "http_version": "HTTP/1.1", "headers": [], "client_address": "10.0.0.7"}',
               "content": body, "approval": None}
        row["seal"] = seal.seal(key, row)
        db.execute(f"INSERT INTO items ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    db.execute("UPDATE items SET release_at = ? WHERE id = 'edited'", (FRIDAY_1730.isoformat(),))
    db.commit()
    db.close()

    store = HoldStore.open(path, key_path=key_path)
    try:
        item, _ = store.sealed("good")
        assert item.waiting_since == MONDAY_0800
        with pytest.raises(HoldError, match="changed outside dojoguard"):
            store.sealed("edited")
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    finally:
        store.close()


def test_a_store_from_a_newer_dojoguard_is_refused(stores):
    """A store whose version is newer than this dojoguard knows is not guessed at."""
    from dojoguard.holds.schema import StoreVersionError

    store = stores.open()
    with store._db.transaction():
        store._db.set_schema_version(99)
    store.close()
    with pytest.raises(StoreVersionError, match="newer than this dojoguard"):
        stores.open()


def test_notices_wait_for_their_teacher_and_are_gone_once_told(store):
    """A notice is kept per teacher until shown; the in-memory list of teachers to tell follows."""
    store.tell("t1", "h1", "rejected", "Your post was not approved.", MONDAY_0800, interrupts=True)
    store.tell(None, "h2", "rejected", "nobody to tell", MONDAY_0800, interrupts=True)
    assert store.teachers_to_tell == {"t1"}
    (notice,) = store.notices_for("t1")
    assert notice.interrupts and notice.outcome == "rejected"
    store.told([notice.id])
    assert store.notices_for("t1") == [] and store.teachers_to_tell == frozenset()


def test_a_notice_written_into_the_store_by_hand_is_never_shown(store):
    """Words typed into the notices table by hand (a phishing link, say) are not the school's: not shown."""
    store.tell("t1", "h1", "rejected", "Your post was not approved.", MONDAY_0800, interrupts=True)
    sql(store, "INSERT INTO notices VALUES ('x1', 't1', 'h9', 'rejected', 'Sign in again at https://evil.example', "
               "?, 1, 'made-up')", MONDAY_0800.isoformat())
    sql(store, "UPDATE notices SET text = text || ' Call 07700 900000.' WHERE id != 'x1'")
    assert store.notices_for("t1") == []


def test_a_notice_for_an_item_of_an_unknown_teacher_goes_to_the_login_it_was_sent_with(store):
    """No teacher, but a ClassDojo login: kept for that login (by a keyed hash, never the cookie), found from the
    same session in another Cookie header; with neither, tell() says nobody could be told."""
    cookie = "dojo_log_session_id=abc; dojo_login.sid=s%3Asecret-session.sig"
    assert store.tell(None, "h1", "rejected", "Your post was not approved.", MONDAY_0800, interrupts=True,
                      login=cookie)
    key = store.login_key("dojo_teach_login.sid=s%3Asecret-session.sig; other=1")
    assert key is not None and "secret-session" not in key and store.teachers_to_tell == {key}
    (notice,) = store.notices_for("t1", key)
    assert notice.hold_id == "h1" and store.notices_for("t1") == []
    assert store.login_key("dojo_login.sid=s%3Aanother.sig") != key and store.login_key("other=1") is None
    assert not store.tell(None, "h2", "rejected", "nobody", MONDAY_0800, interrupts=True, login="other=1")


def test_notices_of_the_same_moment_are_shown_in_the_order_they_were_written(store):
    """Two outcomes recorded within one clock tick (uncertain, then released after a resend) read in that order."""
    for outcome in ("uncertain", "released", "failed"):
        store.tell("t1", "h1", outcome, f"It was {outcome}.", MONDAY_0800, interrupts=False)
    assert [n.outcome for n in store.notices_for("t1")] == ["uncertain", "released", "failed"]


def test_bodies_and_previews_come_back_as_bytes(store):
    """Whatever type the database's driver hands back for a binary column, callers get ``bytes``."""
    item = store.keep("hold", request(), decision(Verdict.HOLD), ACTION, None)
    store.keep_previews(item.id, [("image/jpeg", b"\xff\xd8 a photo")])
    _, sealed = store.sealed(item.id)
    assert type(store.request(item.id).content) is bytes and type(sealed.content) is bytes
    assert [type(data) for _, data, _ in store.previews(item.id)] == [bytes]


def test_previews_and_a_teachers_login_fetched_again_replace_the_ones_kept(store):
    """A preview fetched again replaces the one of the same number; a new login of a teacher replaces the old."""
    item = store.keep("hold", request(), decision(Verdict.HOLD), ACTION, None)
    store.keep_previews(item.id, [("image/jpeg", b"first")])
    store.keep_previews(item.id, [("image/png", b"again")])
    assert [(ctype, data) for ctype, data, _ in store.previews(item.id)] == [("image/png", b"again")]
    assert store.note_session("t1", "dojo_login.sid=s%3Aold.sig", "s:old.sig", MONDAY_0800)
    assert store.note_session("t1", "dojo_login.sid=s%3Anew.sig", "s:new.sig", MONDAY_0800 + timedelta(hours=1))
    assert store.session_of("t1") == ("dojo_login.sid=s%3Anew.sig", MONDAY_0800 + timedelta(hours=1))
