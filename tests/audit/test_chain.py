"""Tests for chain verification: any change is found at the record that was changed, and crashes lose nothing acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dojoguard.audit.chain import verify_chain
from dojoguard.audit.log import AuditLog
from dojoguard.audit.privacy import is_content_key
from dojoguard.audit.pseudonyms import PUPIL_KEYS
from dojoguard.rules.decision import Verdict

from .conftest import make_action, make_decision, photo_action

WRITER = Path(__file__).with_name("audit_writer.py")
ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("id", "at", "type", "body", "prev", "hash")


def tamperable(log):
    """Drop the append-only guard, as someone editing the file directly would."""
    log.connection.execute("DROP TRIGGER records_append_only")


def small_log(log):
    log.append_decision(make_action(), make_decision())
    log.append_decision(photo_action(), make_decision(Verdict.REDACT, rule="blur"))
    log.append_event("policy.reloaded", {"policy_revision": "abc", "rules": 12})
    log.append_decision(make_action(text=None, students=()), make_decision(Verdict.ALLOW))
    return log.rows()


def flipped(text: str, i: int) -> str:
    return text[:i] + chr(ord(text[i]) ^ 0x01) + text[i + 1:]


def test_an_untouched_chain_verifies(log):
    """A log written only through the API verifies from the first record to the last."""
    small_log(log)
    result = verify_chain(log.connection)
    assert result.is_intact and result.records == 5 and result.first_seq == 1 and result.last_seq == 5


def test_changing_any_character_of_any_record_fails_at_that_record(log):
    """Every single-character change, in every stored column of every record, is reported at that record."""
    rows = small_log(log)
    tamperable(log)
    conn = log.connection
    checked = 0
    for row in rows:
        seq = row[0]
        for column, original in zip(COLUMNS, row[1:], strict=True):
            for i in range(len(original)):
                conn.execute(f"UPDATE records SET {column} = ? WHERE seq = ?", (flipped(original, i), seq))
                result = verify_chain(conn)
                assert result.first_break is not None, (seq, column, i)
                assert result.first_break.seq == seq, (seq, column, i, str(result.first_break))
                checked += 1
            conn.execute(f"UPDATE records SET {column} = ? WHERE seq = ?", (original, seq))
    assert checked > 2000
    assert verify_chain(conn).is_intact


def test_a_removed_record_is_named(log):
    """Deleting a record from the middle is reported at the record that follows the gap."""
    small_log(log)
    log.connection.execute("DROP TRIGGER records_delete_only_by_purge")
    log.connection.execute("DELETE FROM records WHERE seq = 3")
    result = verify_chain(log.connection)
    assert result.first_break.seq == 4
    assert "records 3 to 3 are missing" in result.first_break.reason


def test_swapped_records_are_found(log):
    """Reordering two records' contents breaks the chain at the first of them."""
    rows = small_log(log)
    tamperable(log)
    a, b = rows[1], rows[2]
    conn = log.connection
    conn.execute("UPDATE records SET id='x', at=?, type=?, body=?, prev=?, hash=? WHERE seq=?", (*b[2:], a[0]))
    conn.execute("UPDATE records SET id=?, at=?, type=?, body=?, prev=?, hash=? WHERE seq=?", (*a[1:], b[0]))
    assert verify_chain(conn).first_break.seq == 2


def test_the_append_only_guard_refuses_accidental_edits(log):
    """An UPDATE or DELETE through SQLite is refused by the triggers unless a purge is running."""
    small_log(log)
    import sqlite3
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        log.connection.execute("UPDATE records SET body = '{}' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="retention purge"):
        log.connection.execute("DELETE FROM records WHERE seq = 2")


@pytest.mark.slow
def test_sigkill_mid_append_loses_no_acknowledged_record(tmp_path):
    """A writer killed with SIGKILL in the middle of thousands of appends leaves a valid chain holding every acknowledged record."""
    path = tmp_path / "audit.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, str(WRITER), "forever", str(path)], stdout=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT)
    acknowledged = []
    deadline = time.monotonic() + 120
    try:
        while len(acknowledged) < 2000 and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            acknowledged.append(line.split()[1])
    finally:
        writer.send_signal(signal.SIGKILL)
        # Whatever the writer had printed but we had not read yet was acknowledged too.
        rest = writer.stdout.read()
        writer.wait()
    acknowledged += [line.split()[1] for line in rest.splitlines() if line.startswith("ack ")]
    assert len(acknowledged) >= 2000
    with AuditLog.open(path, emit_decisions=False) as log:
        result = verify_chain(log.connection)
        assert result.is_intact, str(result.first_break)
        stored = {row[1] for row in log.rows(types=("decision",))}
    missing = [d for d in acknowledged if d not in stored]
    assert not missing
    # At most the one append in flight can be present without having been acknowledged.
    assert len(stored) - len(acknowledged) in (0, 1)


_safe_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
    lambda k: not is_content_key(k) and k not in PUPIL_KEYS)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=40)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_safe_keys, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.dictionaries(_safe_keys, _values, max_size=6), min_size=1, max_size=5))
def test_any_plain_event_fields_round_trip_and_verify(tmp_path_factory, batch):
    """Whatever plain (non-content) fields an event carries, they read back unchanged and the chain verifies."""
    folder = tmp_path_factory.mktemp("prop")
    with AuditLog.open(folder / "audit.sqlite", emit_decisions=False) as log:
        records = [log.append_event("policy.reloaded", fields) for fields in batch]
        for record, fields in zip(records, batch, strict=True):
            assert log.get(record.record_id).fields == fields
        assert verify_chain(log.connection).is_intact
