"""The SQLite backend: owner-only files, WAL and pragmas, one write transaction helper, read-only opens."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from dojoguard.storage import Busy, SQLiteDatabase


@pytest.fixture
def db(tmp_path):
    opened = SQLiteDatabase.open(tmp_path / "d.sqlite", pragmas=("secure_delete=ON",))
    opened.execute("CREATE TABLE t (x INTEGER)")
    yield opened
    opened.close()


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_and_its_folders_are_owner_only_in_wal_mode_with_the_pragmas_asked_for(tmp_path):
    """Every missing folder is made 0700 whatever the umask, the file 0600; WAL, busy timeout and pragmas set."""
    path = tmp_path / "a" / "b" / "d.sqlite"
    old = os.umask(0o002)
    try:
        db = SQLiteDatabase.open(path, busy_timeout_s=7, pragmas=("secure_delete=ON",))
    finally:
        os.umask(old)
    try:
        assert (_mode(path), _mode(path.parent), _mode(path.parent.parent)) == (0o600, 0o700, 0o700)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 7000
        assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    finally:
        db.close()


def test_an_existing_file_loses_group_and_other_access_but_keeps_the_owners(tmp_path):
    """A file others could read is made owner-only; a read-only file stays read-only (never made writable)."""
    readable, read_only = tmp_path / "readable.sqlite", tmp_path / "read-only.sqlite"
    for path, mode in ((readable, 0o644), (read_only, 0o444)):
        SQLiteDatabase.open(path).close()
        os.chmod(path, mode)
    SQLiteDatabase.open(readable).close()
    assert _mode(readable) == 0o600
    try:
        SQLiteDatabase.open(read_only).close()
    except sqlite3.OperationalError:
        pass  # SQLite may refuse a read-only file for writing; its mode is what is checked here
    assert _mode(read_only) == 0o400


def test_a_transaction_commits_when_the_block_ends_and_rolls_back_when_it_raises(db):
    """What the block wrote is kept only if it ended normally; the first error is the one raised."""
    with db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ZeroDivisionError):
        with db.transaction():
            db.execute("INSERT INTO t VALUES (2)")
            1 / 0  # noqa: B018 - an error in the middle of the block
    assert db.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert not db.connection.in_transaction


def test_a_transaction_holds_the_write_lock_from_its_start(db, tmp_path):
    """Another connection cannot write while the transaction is open, even before its first write."""
    other = sqlite3.connect(tmp_path / "d.sqlite", timeout=0, isolation_level=None)
    try:
        with db.transaction():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()


def test_not_waiting_raises_busy_at_once_and_keeps_the_busy_timeout(tmp_path):
    """``wait=False`` with another process writing raises ``Busy`` and leaves the connection's timeout as it was."""
    db = SQLiteDatabase.open(tmp_path / "d.sqlite", busy_timeout_s=5)
    other = sqlite3.connect(tmp_path / "d.sqlite", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Busy):
            with db.transaction(wait=False):
                pytest.fail("the block must not run without the write lock")
        other.execute("ROLLBACK")
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        with db.transaction(wait=False):
            db.execute("CREATE TABLE t (x INTEGER)")
        assert db.has_table("t")
    finally:
        other.close()
        db.close()


def test_a_read_only_open_reads_but_never_writes_or_creates(db, tmp_path):
    """A snapshot connection sees the data, refuses writes, and does not make a missing file."""
    with db.transaction():
        db.execute("INSERT INTO t VALUES (3)")
    reader = SQLiteDatabase.open_read_only(tmp_path / "d.sqlite")
    try:
        assert reader.execute("SELECT x FROM t").fetchall() == [(3,)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute("INSERT INTO t VALUES (4)")
    finally:
        reader.close()
    with pytest.raises(sqlite3.OperationalError):
        SQLiteDatabase.open_read_only(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
