"""The hold store's schema: stores counted in ``user_version`` before the shared runner open with seals kept.

Those files are SQLite's alone (no release before this one kept holds on
PostgreSQL); a new store's steps and the columns put back after a hand edit
are tested on both backends.
"""

from __future__ import annotations

import sqlite3

import pytest

from dojoguard.holds import schema, seal
from dojoguard.holds.store import HoldStore, HoldTampered
from dojoguard.storage.migrations import recorded

from .test_store import FRIDAY_1730, MONDAY_0800

REQUEST = ('{"method": "POST", "scheme": "https", "host": "teach.classdojo.com", "port": 443, "path": "/api/x", '
           '"http_version": "HTTP/1.1", "headers": [], "client_address": "10.0.0.7"}')
# The version-2 additions as the release before the shared runner made them: columns added in place,
# then its indexes and teacher tables (``schema._V2``), then ``user_version`` set to 2.
LEGACY_V2_COLUMNS = "".join(f"ALTER TABLE items ADD COLUMN {c} TEXT;\n" for c in schema.V2_COLUMNS)


def _row(item_id: str, **fields) -> dict:
    row = {"id": item_id, "kind": "hold", "state": "approved", "created_at": FRIDAY_1730.isoformat(),
           "release_at": None, "decision_id": "d-" + item_id, "teacher_id": "t1", "class_id": None,
           "action_kind": "message.send", "channel": "message", "rule_ids": "[]", "reason": "why", "attempts": 0,
           "last_error": None, "dedupe_key": item_id, "request": REQUEST, "content": b"{}", "approval": "a-1"}
    row.update(fields)
    return row


def legacy_store(tmp_path, version: int) -> tuple:
    """A store as the old code left it at ``version`` (1 or 2), with one sealed item; returns (path, key path)."""
    path, key_path = tmp_path / "holds.sqlite", tmp_path / "keys" / "holds-seal.key"
    key, _ = seal.load_or_create(key_path)
    db = sqlite3.connect(path)
    db.executescript(schema._V1 + ("CREATE UNIQUE INDEX items_dedupe ON items (dedupe_key);" if version == 1 else
                                   LEGACY_V2_COLUMNS + schema._V2))
    # A hold approved on Monday: its age counts from the approval, which no upgrade step would work out again.
    row = _row("kept", **({"waiting_since": MONDAY_0800.isoformat(), "sending_at": None, "sender": None,
                           "content_key": "ck"} if version == 2 else {}))
    row["seal"] = seal.seal(key, row)
    db.execute(f"INSERT INTO items ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()
    return path, key_path


def test_a_version_2_store_is_recorded_as_both_steps_and_only_the_later_ones_are_run(tmp_path):
    """Nothing is re-run (only the previews table is added; step 4 changes nothing in a SQLite file): the item
    keeps its own waiting time and its seal."""
    path, key_path = legacy_store(tmp_path, 2)
    store = HoldStore.open(path, key_path=key_path)
    try:
        item, sent = store.sealed("kept")
        assert item.waiting_since == MONDAY_0800 and sent.content == b"{}"
        assert recorded(store._db) == list(schema.STEPS)
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION == 4
        assert db.execute("SELECT content_key FROM items").fetchall() == [("ck",)]
    finally:
        db.close()


def test_a_version_1_store_gets_only_the_second_step_and_its_rows_are_sealed_again(tmp_path):
    """The first step is recorded, not re-run; the second adds its columns and reseals the intact row."""
    path, key_path = legacy_store(tmp_path, 1)
    store = HoldStore.open(path, key_path=key_path)
    try:
        item, _ = store.sealed("kept")
        assert item.waiting_since == FRIDAY_1730  # a hold's age counted from when it was kept
        assert recorded(store._db) == list(schema.STEPS)
        assert store._db.has_table("notices") and store._db.has_table("sessions")
    finally:
        store.close()


def test_a_version_2_store_missing_a_column_gets_it_back_empty_and_the_row_unsealed(tmp_path):
    """A column dropped by hand from an old store is put back on upgrade, so the row no longer matches its seal."""
    path, key_path = legacy_store(tmp_path, 2)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE items DROP COLUMN waiting_since")
    db.commit()
    db.close()
    store = HoldStore.open(path, key_path=key_path)
    try:
        with pytest.raises(HoldTampered, match="changed outside dojoguard"):
            store.verify("kept")
        assert "waiting_since" in {row[1] for row in store._db.execute("PRAGMA table_info(items)")}
    finally:
        store.close()


def test_a_new_store_records_every_step_on_either_backend(stores):
    """A new store, file or schema, has every table and every step recorded; opening it again runs none."""
    store = stores.open()
    try:
        assert recorded(store._db) == list(schema.STEPS) and store._db.schema_version() == schema.VERSION
        assert all(store._db.has_table(t) for t in ("items", "sessions", "notices", "previews"))
        assert set(schema.COLUMNS) <= schema._columns(store._db)
    finally:
        store.close()
    stores.open().close()


def test_a_column_dropped_by_hand_comes_back_empty_and_the_row_is_unsealed(stores):
    """On either backend, a column dropped from an up-to-date store is put back when it is opened again, so the
    row no longer matches its seal and is never sent."""
    from .conftest import sql
    from .test_store import ACTION, decision, request

    store = stores.open()
    item = store.keep("defer", request(), decision(), ACTION, MONDAY_0800)
    store.close()
    sql(store, "ALTER TABLE items DROP COLUMN waiting_since")
    store = stores.open()
    try:
        assert "waiting_since" in schema._columns(store._db)
        with pytest.raises(HoldTampered, match="changed outside dojoguard"):
            store.verify(item.id)
    finally:
        store.close()
