"""The audit database's schema: a log made before the shared migration runner opens unchanged, chain intact."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from dojoguard.audit.chain import verify_chain
from dojoguard.audit.log import AuditLog, AuditWriteError
from dojoguard.audit.record import GENESIS, canonical, format_time, seal
from dojoguard.audit.schema import MIGRATIONS

from .conftest import START, make_action, make_decision

# A log as the release before the shared runner left it: its tables, and the names of the migrations
# applied, with when, in a ``migrations`` table of its own (kept here as that release wrote them).
LEGACY_TABLES = """
CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
CREATE TABLE records (
    seq  INTEGER PRIMARY KEY,
    id   TEXT NOT NULL UNIQUE,
    at   TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX records_at ON records(at);
CREATE TRIGGER records_append_only BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER records_delete_only_by_purge BEFORE DELETE ON records
WHEN (SELECT value FROM meta WHERE key = 'purging') IS NOT '1'
BEGIN SELECT RAISE(ABORT, 'audit records are removed only by the retention purge'); END;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE pupil_keys (pupil TEXT PRIMARY KEY, key BLOB NOT NULL);
CREATE TABLE job_runs (job TEXT PRIMARY KEY, last_due TEXT, last_attempt TEXT, last_error TEXT);
"""
LEGACY_INDEX_BY_TYPE = "CREATE INDEX records_type ON records(type, seq);"
LEGACY_NAMES = ("0001_create_records", "0002_create_pupil_keys", "0003_create_job_runs", "0004_index_records_by_type")


def legacy_log(path, *, applied: int = 4, records: int = 3) -> list[tuple]:
    """Write a log as the old code did (``applied`` migrations, ``records`` chained records); returns its rows."""
    db = sqlite3.connect(path)
    db.executescript(LEGACY_TABLES + (LEGACY_INDEX_BY_TYPE if applied == 4 else ""))
    db.executemany("INSERT INTO migrations VALUES (?, ?)",
                   [(name, f"2026-0{i}-01T08:00:00+00:00") for i, name in enumerate(LEGACY_NAMES[:applied], 1)])
    db.execute("INSERT INTO meta VALUES ('log_id', 'legacy-log')")
    prev = GENESIS
    for seq in range(1, records + 1):
        record_id, at = uuid.uuid4().hex, format_time(START)
        type_, body = ("audit.created", canonical({"log_id": "legacy-log", "schema": 1})) if seq == 1 else \
            ("job.completed", canonical({"job": "checkpoint", "seq": seq}))
        hash_ = seal(seq, record_id, at, type_, prev, body)
        db.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, record_id, at, type_, body, prev, hash_))
        prev = hash_
    db.execute("INSERT INTO job_runs VALUES ('checkpoint', 'due', 'attempt', NULL)")
    db.commit()
    rows = db.execute("SELECT * FROM records ORDER BY seq").fetchall()
    db.close()
    return rows


def test_a_log_from_before_the_shared_runner_opens_with_every_record_and_its_migrations_recorded(tmp_path, clock):
    """The old migrations table becomes the recorded migrations (times kept), nothing is re-run or lost."""
    path = tmp_path / "audit.sqlite"
    rows = legacy_log(path)
    with AuditLog.open(path, clock=clock, emit_decisions=False) as log:
        conn = log.connection
        assert conn.execute("SELECT * FROM records ORDER BY seq").fetchall() == rows
        assert log.log_id == "legacy-log"
        recorded = conn.execute("SELECT name, applied_at FROM schema_migrations ORDER BY seq").fetchall()
        assert recorded[:len(LEGACY_NAMES)] == [
            (name, f"2026-0{i}-01T08:00:00+00:00") for i, name in enumerate(LEGACY_NAMES, 1)]
        # Then the steps made since, applied now.
        assert [name for name, _ in recorded[len(LEGACY_NAMES):]] == ["0005_index_decisions_by_teacher_and_class"]
        assert conn.execute("SELECT * FROM job_runs").fetchall() == [("checkpoint", "due", "attempt", None)]
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'migrations'").fetchone()
        log.append_decision(make_action(), make_decision())
        chain = verify_chain(conn)
        assert chain.is_intact and chain.records == len(rows) + 1
        # Still append-only after the upgrade.
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE records SET body = '{}' WHERE seq = 1")


def test_a_log_that_missed_a_migration_gets_only_that_one(tmp_path, clock):
    """An old log with three of the four steps gets the fourth (the type index) and keeps the rest as they were."""
    path = tmp_path / "audit.sqlite"
    rows = legacy_log(path, applied=3)
    with AuditLog.open(path, clock=clock, emit_decisions=False) as log:
        conn = log.connection
        recorded = conn.execute("SELECT name, applied_at FROM schema_migrations ORDER BY seq").fetchall()
        assert [name for name, _ in recorded] == [m.name for m in MIGRATIONS]
        assert recorded[2][1] == "2026-03-01T08:00:00+00:00" and recorded[3][1] != recorded[2][1]
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'records_type'").fetchone()
        assert conn.execute("SELECT * FROM records ORDER BY seq").fetchall() == rows


def test_a_log_from_a_newer_dojoguard_is_refused(tmp_path, clock):
    """A log recording a migration this release does not know raises AuditWriteError, and nothing is written."""
    path = tmp_path / "audit.sqlite"
    AuditLog.open(path, clock=clock, emit_decisions=False).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES (99, '0099_from_the_future', 'x')")
    db.commit()
    count = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    db.close()
    with pytest.raises(AuditWriteError, match="newer than this dojoguard"):
        AuditLog.open(path, clock=clock, emit_decisions=False)
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM records").fetchone()[0] == count
