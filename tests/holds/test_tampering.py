"""A hold store changed behind the commands' back: nothing is sent, and the audit log says so.

Each attack is made as an intruder would make it, with plain SQL on a
connection of its own to the real store (sqlite3 on the file, psycopg on the
school's PostgreSQL schema: every test that builds the store itself runs on
both); the releaser and the `held` commands run as they do in the proxy.

SQLite's alone: a row put back from a copy of the file (``VACUUM INTO`` and
``ATTACH`` are SQLite's), a file left by a release from before seals, and
`held approve` run as a command (it opens the store its settings name, a
file in the data folder).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from dojoguard.audit.log import AuditLog
from dojoguard.cli import cli
from dojoguard.clock import FixedClock
from dojoguard.environment import Environment
from dojoguard.holds.releaser import Releaser
from dojoguard.holds.sender import Sender
from dojoguard.holds.store import HoldState, HoldStore, HoldTampered, StoredRequest
from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.decision import Decision, Match, Verdict

from .conftest import sql

FRIDAY_1730 = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
MONDAY_0800 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def setup(tmp_path, upstream, stores):
    yield from _releasing(stores.open(), tmp_path)


@pytest.fixture
def sqlite_setup(tmp_path, upstream):
    """As ``setup``, on a SQLite file only: for the attacks made on the file itself."""
    yield from _releasing(HoldStore.open(tmp_path / "holds.sqlite"), tmp_path)


def _releasing(store, folder):
    clock = FixedClock(FRIDAY_1730)
    log = AuditLog.open(folder / "audit.sqlite", clock=clock)
    releaser = Releaser(store, Sender().send, log, clock, max_attempts=3, max_age=timedelta(days=7))
    yield clock, store, log, releaser
    store.close()
    log.close()


def keep(store, upstream, kind="hold", body=b'{"body":"Please hold for review"}', release_at=MONDAY_0800):
    request = StoredRequest("POST", "http", "127.0.0.1", upstream.port, "/api/message-thread/t1/message",
                            "HTTP/1.1", (("Content-Type", "application/json"),), body, "10.0.0.7")
    verdict = Verdict.DEFER if kind == "defer" else Verdict.HOLD
    decision = Decision(verdict, (Match("some-rule", verdict, "why", "Held"),), "rev", FRIDAY_1730)
    action = Action(Kind.MESSAGE_SEND, Channel.MESSAGE, FRIDAY_1730, teacher_id="t1")
    return store.keep(kind, request, decision, action, release_at if kind == "defer" else None)


def tampered(log) -> list[dict]:
    return [r.fields for r in log.records(types=("hold.tampered",))]


async def test_a_hold_marked_approved_in_the_file_is_never_sent_and_is_recorded(setup, upstream):
    """UPDATE items SET state='approved': no hold.released, no request upstream, a hold.tampered record."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    sql(store, "UPDATE items SET state = 'approved' WHERE id = ?", item.id)
    clock.set(MONDAY_0800)
    assert [o.event for o in await releaser.run_once()] == ["hold.tampered"]
    assert upstream.received == []
    (record,) = tampered(log)
    assert record["hold"] == item.id and record["state"] == "approved" and "seal" in record["found"]
    assert store.get(item.id).state == HoldState.TAMPERED
    assert await releaser.run_once() == []  # set aside: not tried, not recorded again
    assert not list(log.records(types=("hold.released", "hold.approved")))


async def test_a_tampered_item_set_back_to_approved_is_refused_again(setup, upstream):
    """Flipping a set-aside item back to approved breaks its seal again: refused and recorded again."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    sql(store, "UPDATE items SET state = 'approved' WHERE id = ?", item.id)
    await releaser.run_once()
    sql(store, "UPDATE items SET state = 'approved' WHERE id = ?", item.id)
    assert [o.event for o in await releaser.run_once()] == ["hold.tampered"]
    assert upstream.received == [] and len(tampered(log)) == 2


@pytest.mark.parametrize("statement", [
    "UPDATE items SET kind = 'defer', release_at = '2026-01-01T00:00:00+00:00' WHERE id = ?",   # hold -> deferral
    "UPDATE items SET state = 'approved', approval = 'made-up' WHERE id = ?",
    "UPDATE items SET state = 'failed' WHERE id = ?",
])
async def test_other_ways_of_making_a_hold_due_are_refused(setup, upstream, statement):
    """A hold turned into a past deferral, or approved with a made-up approval, is refused and recorded."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    sql(store, statement, item.id)
    clock.set(MONDAY_0800)
    outcomes = await releaser.run_once()
    assert upstream.received == []
    if "failed" in statement:  # not due, and `held retry` will not put it back
        assert outcomes == []
        with pytest.raises(HoldTampered):
            store.retry(item.id, MONDAY_0800)
    else:
        assert [o.event for o in outcomes] == ["hold.tampered"] and tampered(log)[0]["hold"] == item.id


async def test_a_deferred_message_brought_forward_is_not_sent_early(setup, upstream):
    """A deferral whose release time is moved to the past is refused; the time it had is not honoured either."""
    clock, store, log, releaser = setup
    item = keep(store, upstream, kind="defer")
    sql(store, "UPDATE items SET release_at = '2026-11-27T17:00:00+00:00' WHERE id = ?", item.id)
    assert [o.event for o in await releaser.run_once()] == ["hold.tampered"]
    clock.set(MONDAY_0800)
    assert await releaser.run_once() == []
    assert upstream.received == [] and tampered(log)[0]["kind"] == "defer"


async def test_a_queued_message_whose_body_was_swapped_is_not_sent(setup, upstream):
    """Replacing the stored body (or the request line and headers) breaks the seal."""
    clock, store, log, releaser = setup
    first = keep(store, upstream, kind="defer", body=b'{"body":"PE kit tomorrow"}')
    second = keep(store, upstream, kind="defer", body=b'{"body":"Trip money by Friday"}')
    sql(store, "UPDATE items SET content = ? WHERE id = ?", b'{"body":"something the rules forbid"}', first.id)
    sql(store, "UPDATE items SET request = replace(request, '/api/', '/api/other/') WHERE id = ?", second.id)
    clock.set(MONDAY_0800)
    assert [o.event for o in await releaser.run_once()] == ["hold.tampered", "hold.tampered"]
    assert upstream.received == []


async def test_a_seal_copied_from_an_approved_row_does_not_fit_another(setup, upstream):
    """Copying a genuinely approved row's approval and seal onto another held row does not approve it."""
    clock, store, log, releaser = setup
    genuine = keep(store, upstream, body=b'{"body":"approved one"}')
    other = keep(store, upstream, body=b'{"body":"the one the intruder wants sent"}')
    record = log.append_event("hold.approved", {"hold": genuine.id, "decision_id": genuine.decision_id, "by": "Head"})
    store.approve(genuine.id, record.record_id, clock.now())
    sql(store, "UPDATE items SET state = 'approved', approval = (SELECT approval FROM items WHERE id = ?), "
               "seal = (SELECT seal FROM items WHERE id = ?) WHERE id = ?", genuine.id, genuine.id, other.id)
    outcomes = {o.item.id: o.event for o in await releaser.run_once()}
    assert outcomes == {genuine.id: "hold.released", other.id: "hold.tampered"}
    assert [r[3] for r in upstream.received] == [b'{"body":"approved one"}']


async def test_an_approval_without_its_audit_record_is_not_sent(setup, upstream):
    """Even through the store (as someone holding the key would), an approval naming no hold.approved is refused."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    elsewhere = keep(store, upstream, body=b'{"body":"another"}')
    wrong = log.append_event("hold.approved", {"hold": elsewhere.id, "decision_id": elsewhere.decision_id,
                                               "by": "Head"})
    store.approve(item.id, wrong.record_id, clock.now())  # a real record, but of another hold
    assert [o.event for o in await releaser.run_once()] == ["hold.tampered"]
    assert upstream.received == [] and "not a hold.approved for it" in tampered(log)[0]["found"]


async def test_a_released_row_put_back_from_a_copy_is_not_sent_twice(sqlite_setup, upstream, tmp_path):
    """A sealed row restored from a backup after its release is refused: the audit log shows it released."""
    clock, store, log, releaser = sqlite_setup
    item = keep(store, upstream, kind="defer")
    sql(store, "VACUUM INTO ?", str(tmp_path / "backup.sqlite"))
    clock.set(MONDAY_0800)
    assert [o.event for o in await releaser.run_once()] == ["defer.released"]
    db = sqlite3.connect(store.path)
    db.execute("ATTACH DATABASE ? AS backup", (str(tmp_path / "backup.sqlite"),))
    db.execute("INSERT INTO items SELECT * FROM backup.items WHERE id = ?", (item.id,))
    db.commit()
    db.close()
    assert [o.event for o in await releaser.run_once()] == ["hold.tampered"]
    assert len(upstream.received) == 1 and "already shows it released" in tampered(log)[0]["found"]


async def test_a_tampering_that_cannot_be_recorded_is_still_not_sent(setup, upstream):
    """When the audit log refuses the hold.tampered record, the item is neither sent nor set aside: tried again."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    sql(store, "UPDATE items SET state = 'approved' WHERE id = ?", item.id)

    class Refusing:
        def __getattr__(self, name):
            return getattr(log, name)

        def append_event(self, event, fields):
            raise OSError("disk full")

    releaser.audit = Refusing()
    assert await releaser.run_once() == []  # the step failed (logged); the pass went on
    assert upstream.received == [] and store.get(item.id).state == HoldState.APPROVED
    releaser.audit = log
    assert [o.event for o in await releaser.run_once()] == ["hold.tampered"]


async def test_removing_the_seal_column_does_not_unseal_the_store(setup, upstream, stores):
    """Dropping the seal column (so an upgrade would re-seal) leaves every row unsealed, so nothing is sent."""
    clock, store, log, releaser = setup
    keep(store, upstream, kind="defer")
    store.close()
    sql(store, "ALTER TABLE items DROP COLUMN seal")
    releaser.store = reopened = stores.open()
    clock.set(MONDAY_0800)
    try:
        assert [o.event for o in await releaser.run_once()] == ["hold.tampered"]
        assert "no seal" in tampered(log)[0]["found"] and upstream.received == []
    finally:
        reopened.close()


async def test_a_store_from_before_seals_is_sealed_once_and_released(tmp_path, upstream):
    """Upgrading: rows kept by a version without seals are sealed at the first open (new key) and go as before."""
    old = sqlite3.connect(tmp_path / "holds.sqlite")
    old.executescript("""
        CREATE TABLE items (id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL,
            release_at TEXT, decision_id TEXT NOT NULL, teacher_id TEXT, class_id TEXT, action_kind TEXT NOT NULL,
            channel TEXT NOT NULL, rule_ids TEXT NOT NULL, reason TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT, dedupe_key TEXT NOT NULL, request TEXT NOT NULL, content BLOB NOT NULL);
    """)
    request = ('{"method": "POST", "scheme": "http", "host": "127.0.0.1", "port": %d, "path": "/api/x", '
               '"http_version": "HTTP/1.1", "headers": [], "client_address": "10.0.0.7"}' % upstream.port)
    old.execute("INSERT INTO items VALUES ('aaa', 'defer', 'pending', ?, ?, 'd1', 't1', NULL, 'message.send', "
                "'message', '[]', 'why', 0, NULL, 'k', ?, ?)",
                (FRIDAY_1730.isoformat(), MONDAY_0800.isoformat(), request, b"{}"))
    old.commit()
    old.close()
    clock = FixedClock(MONDAY_0800)
    store = HoldStore.open(tmp_path / "holds.sqlite")
    log = AuditLog.open(tmp_path / "audit.sqlite", clock=clock)
    try:
        releaser = Releaser(store, Sender().send, log, clock, max_attempts=3, max_age=timedelta(days=7))
        assert [o.event for o in await releaser.run_once()] == ["defer.released"]
    finally:
        store.close()
        log.close()


def test_held_approve_refuses_a_tampered_item_and_records_it(tmp_path):
    """`held approve` on a row changed by hand refuses, records hold.tampered and sets the item aside."""
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n", "utf-8")
    store = HoldStore.open(tmp_path / "data" / "holds.sqlite")
    request = StoredRequest("POST", "https", "teach.classdojo.com", 443, "/api/x", "HTTP/1.1", (), b"{}", "10.0.0.7")
    decision = Decision(Verdict.HOLD, (Match("r", Verdict.HOLD, "why", "Held"),), "rev", FRIDAY_1730)
    item = store.keep("hold", request, decision, Action(Kind.MESSAGE_SEND, Channel.MESSAGE, FRIDAY_1730), None)
    store.close()
    sql(store, "UPDATE items SET content = ? WHERE id = ?", b'{"body":"swapped"}', item.id)
    result = CliRunner().invoke(cli, ["--config", str(config), "held", "approve", item.id, "--by", "Mrs Head"],
                                obj=Environment(clock=FixedClock(MONDAY_0800)))
    assert result.exit_code == 1 and "changed outside dojoguard" in result.output
    log = AuditLog.open(tmp_path / "data" / "audit.sqlite")
    try:
        assert [r.fields["hold"] for r in log.records(types=("hold.tampered",))] == [item.id]
        assert not list(log.records(types=("hold.approved",)))
    finally:
        log.close()
    reopened = HoldStore.open(tmp_path / "data" / "holds.sqlite")
    assert reopened.get(item.id).state == HoldState.TAMPERED
    reopened.close()


async def test_replacing_the_key_makes_every_row_unsendable(setup, upstream, stores):
    """A new key (the old one deleted) matches no existing seal: every due item is refused, none sent."""
    clock, store, log, releaser = setup
    keep(store, upstream, kind="defer")
    store.close()
    key = stores.key_path
    key.unlink()
    releaser.store = reopened = stores.open()
    clock.set(MONDAY_0800)
    try:
        assert [o.event for o in await releaser.run_once()] == ["hold.tampered"]
        assert upstream.received == [] and key.exists()
    finally:
        reopened.close()


def test_a_state_dojoguard_never_writes_is_listed_as_tampered(setup, upstream):
    """A made-up state or kind, or an unreadable request, neither breaks `held list` nor hides the row."""
    clock, store, log, releaser = setup
    item = keep(store, upstream)
    other = keep(store, upstream, body=b'{"body":"untouched"}')
    garbled = keep(store, upstream, body=b'{"body":"garbled"}')
    sql(store, "UPDATE items SET state = 'sent', kind = 'whatever' WHERE id = ?", item.id)
    sql(store, "UPDATE items SET request = 'not json', rule_ids = '{' WHERE id = ?", garbled.id)
    states = {i.id: i.state for i in store.list()}
    assert states == {item.id: HoldState.TAMPERED, other.id: HoldState.PENDING, garbled.id: HoldState.TAMPERED}


def test_a_key_file_that_is_not_a_key_is_refused(stores):
    """A damaged or replaced-by-junk key stops the store from opening (holds then fail closed) with a clear error."""
    from dojoguard.holds.seal import SealKeyError

    stores.open().close()
    stores.key_path.write_text("not a key\n", "ascii")
    with pytest.raises(SealKeyError, match="is not a hold store key"):
        stores.open()
