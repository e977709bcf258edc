"""The one migration runner: named steps applied once, in order, each with its record; newer files refused."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from dojoguard.storage import Migration, NewerSchemaError, SQLiteDatabase, migrate
from dojoguard.storage.migrations import from_schema_version, from_table, recorded, run_script

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _table(name: str) -> Migration:
    return Migration(f"create_{name}", lambda db: db.execute(f"CREATE TABLE {name} (x INTEGER)"))


STEPS = (_table("a"), _table("b"))


@pytest.fixture
def db(tmp_path):
    opened = SQLiteDatabase.open(tmp_path / "d.sqlite")
    yield opened
    opened.close()


def _tables(db) -> set[str]:
    return {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_each_migration_runs_once_in_order_and_is_recorded_with_its_time(db):
    """A new database gets every step, recorded by name, position and time; opening again runs none."""
    assert migrate(db, STEPS, what="the test database", now=NOW) == ["create_a", "create_b"]
    assert migrate(db, STEPS, what="the test database", now=NOW) == []
    assert db.execute("SELECT seq, name, applied_at FROM schema_migrations ORDER BY seq").fetchall() == [
        (1, "create_a", NOW.isoformat()), (2, "create_b", NOW.isoformat())]
    assert recorded(db) == ["create_a", "create_b"]
    # The count is kept as the schema version too, for releases that read only that.
    assert db.schema_version() == 2


def test_a_new_step_is_applied_alone(db):
    """A step appended by a later release runs on its own; the ones already recorded are not run again."""
    migrate(db, STEPS[:1], what="the test database")
    assert migrate(db, STEPS, what="the test database") == ["create_b"]
    assert {"a", "b"} <= _tables(db)


def test_a_failing_step_leaves_neither_its_changes_nor_its_record(db):
    """A step that fails half way is rolled back with its record; the steps before it stay applied."""
    def broken(d):
        run_script(d, "CREATE TABLE half_done (x INTEGER);\nCREATE TABLE nonsense (;")
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, (*STEPS, Migration("broken", broken)), what="the test database")
    assert "half_done" not in _tables(db) and recorded(db) == ["create_a", "create_b"]
    assert db.schema_version() == 2


def test_a_database_recording_an_unknown_migration_is_refused_before_anything_runs(db):
    """An unknown recorded name means a newer dojoguard wrote the file: refused, and no step of ours is run."""
    migrate(db, STEPS[:1], what="the test database")
    with db.transaction():
        db.execute("INSERT INTO schema_migrations VALUES (7, 'from_the_future', 'x')")
    with pytest.raises(NewerSchemaError, match="the test database is newer than this dojoguard"):
        migrate(db, STEPS, what="the test database")
    assert "b" not in _tables(db)


def test_a_schema_version_beyond_the_known_steps_is_refused(db):
    """A file whose schema version counts more steps than this release knows is refused, unchanged."""
    db.set_schema_version(5)
    with pytest.raises(NewerSchemaError, match=r"schema version 5, this dojoguard knows 2"):
        migrate(db, STEPS, what="the test database")
    assert not db.has_table("schema_migrations")


def test_an_old_marker_table_is_adopted_with_its_times_and_dropped(db):
    """A file that recorded its steps in a table of its own gets them recorded, not run again."""
    db.execute("CREATE TABLE a (x INTEGER)")
    db.execute("INSERT INTO a VALUES (1)")
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    db.execute("INSERT INTO migrations VALUES ('create_a', '2026-01-05T10:00:00+00:00')")
    applied = migrate(db, STEPS, what="the test database", now=NOW,
                      adopt=from_table("migrations", time_column="applied_at"))
    assert applied == ["create_b"]
    assert db.execute("SELECT seq, name, applied_at FROM schema_migrations ORDER BY seq").fetchall() == [
        (1, "create_a", "2026-01-05T10:00:00+00:00"), (2, "create_b", NOW.isoformat())]
    assert db.execute("SELECT x FROM a").fetchall() == [(1,)] and not db.has_table("migrations")


def test_an_old_marker_naming_an_unknown_step_is_refused_and_left_as_it_was(db):
    """Adoption refuses a file from a newer release before writing: the old marker table is still there."""
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY)")
    db.execute("INSERT INTO migrations VALUES ('create_a'), ('from_the_future')")
    with pytest.raises(NewerSchemaError, match="from_the_future"):
        migrate(db, STEPS, what="the test database", adopt=from_table("migrations"))
    assert db.has_table("migrations") and not db.has_table("schema_migrations")


def test_a_schema_version_marker_is_adopted_as_that_many_steps(db):
    """A file that counted its steps in the schema version gets that many recorded and runs the rest."""
    db.execute("CREATE TABLE a (x INTEGER)")
    db.set_schema_version(1)
    applied = migrate(db, STEPS, what="the test database", adopt=from_schema_version([m.name for m in STEPS]))
    assert applied == ["create_b"] and recorded(db) == ["create_a", "create_b"]


def test_two_processes_opening_a_new_file_at_once_apply_each_step_once(tmp_path):
    """Connections racing to open and migrate the same new file all succeed, and never run a step twice.

    Switching a new file to WAL is refused at once ("database is locked")
    while another connection is doing the same; the race is run on 25 new
    files, because it is lost only now and then.
    """
    for attempt in range(25):
        path = tmp_path / f"d{attempt}.sqlite"
        errors, barrier = [], threading.Barrier(4, timeout=60)

        def open_and_migrate(path=path, errors=errors, barrier=barrier):
            try:
                barrier.wait()  # all four open the new file at once, then migrate it
                database = SQLiteDatabase.open(path, busy_timeout_s=30)
            except Exception as exc:  # noqa: BLE001 - any failure is the test's finding
                errors.append(exc)
                barrier.abort()
                return
            try:
                migrate(database, STEPS, what="the test database")
            except Exception as exc:  # noqa: BLE001 - any failure is the test's finding
                errors.append(exc)
            finally:
                database.close()

        threads = [threading.Thread(target=open_and_migrate) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"attempt {attempt}"
        database = SQLiteDatabase.open(path)
        try:
            assert recorded(database) == ["create_a", "create_b"]
        finally:
            database.close()
