"""The proxy's state: a file made before the shared migration runner opens with its data, nothing re-run; a
newer one is refused; on PostgreSQL each school's state is its own, and text compares as in SQLite."""

from __future__ import annotations

import sqlite3
import stat
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from dojoguard.names import Names
from dojoguard.proxy.counting import Counts
from dojoguard.proxy.sessions import Sessions
from dojoguard.proxy.skills import Skills
from dojoguard.state import MIGRATIONS, State
from dojoguard.storage import NewerSchemaError
from dojoguard.storage.migrations import recorded
from dojoguard.storage.postgresql import school_schema
from tests.support.state import TABLES, StateOpener, everything

AT = datetime(2026, 12, 4, 9, tzinfo=UTC)
T1 = "5f00000000000000000000a1"

# The state file as the release before the shared runner left it: its tables, and the names of the
# migrations applied in a ``migrations`` table of its own.
LEGACY = """
CREATE TABLE migrations (name TEXT PRIMARY KEY);
CREATE TABLE sessions (
    session_hash TEXT PRIMARY KEY, teacher_id TEXT NOT NULL, teacher_name TEXT, learned_at TEXT NOT NULL);
CREATE TABLE skills (
    class_id TEXT NOT NULL, skill_id TEXT NOT NULL, name TEXT, value INTEGER NOT NULL,
    learned_at TEXT NOT NULL, PRIMARY KEY (class_id, skill_id));
INSERT INTO migrations VALUES ('1-sessions'), ('2-skills');
INSERT INTO sessions VALUES ('h1', 't1', 'Mrs Hartley', '2026-11-23T09:00:00+00:00');
INSERT INTO skills VALUES ('c1', 's1', 'Teamwork', 1, '2026-11-23T09:00:00+00:00');
"""


def test_a_state_file_from_before_the_shared_runner_keeps_its_data_and_runs_only_what_it_lacks(tmp_path):
    """Sessions and skills survive; the two recorded steps are adopted, the discovery table is added once."""
    path = tmp_path / "proxy.sqlite"
    db = sqlite3.connect(path)
    db.executescript(LEGACY)
    db.close()
    state = State(path)
    try:
        assert recorded(state.database) == [m.name for m in MIGRATIONS]
        assert state.database.execute("SELECT session_hash, teacher_id FROM sessions").fetchall() == [("h1", "t1")]
        assert state.database.execute("SELECT name FROM skills").fetchall() == [("Teamwork",)]
        assert state.database.has_table("unclassified") and not state.database.has_table("migrations")
    finally:
        state.close()
    State(path).close()  # and opens again without re-running anything


def test_a_state_from_a_newer_dojoguard_is_refused(open_state):
    """A state recording a migration this release does not know is refused, not opened."""
    state = open_state()
    with state.database.transaction():
        state.database.execute("INSERT INTO schema_migrations (seq, name, applied_at) VALUES (99, ?, 'x')",
                               ("99-from-the-future",))
    state.close()
    with pytest.raises(NewerSchemaError, match="the proxy state is newer than this dojoguard"):
        open_state()


def test_state_on_an_open_database_migrates_it_and_keeps_its_key_apart(open_state, tmp_path):
    """The key of the hashes is made owner-only in its own file and read back on reopening."""
    state = open_state()
    assert recorded(state.database) == [m.name for m in MIGRATIONS]
    key_file = tmp_path / "proxy.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and bytes.fromhex(key_file.read_text()) == state.key
    state.close()
    assert open_state().key == state.key


def test_two_schools_in_one_postgresql_database_never_see_each_others_state(state_dsn, tmp_path):
    """Each school's learned state is in a schema of its own: nothing one learns is seen by the other."""
    opener = StateOpener("postgresql", tmp_path, state_dsn)
    try:
        first, second = opener("first"), opener("second")
        Sessions(first).remember("s:first", "t-first", "Ms First", AT)
        Skills(first).learn("c1", [("b1", "Helping", 1)], AT)
        Names(first).set([("teacher", T1, "Ms First")], AT)
        counts = Counts(first, AT)
        counts.history.add("tally", "t-first", AT.timestamp())
        counts.flush()
        assert everything(second) == ""
        Names(second).set([("teacher", T1, "Mr Second")], AT)
        assert Names(first).name("teacher", T1) == "Ms First" and Names(second).name("teacher", T1) == "Mr Second"
        assert Sessions(second).teacher("s:first") == (None, None)
        schemas = [school_schema(opener.school(name), "state") for name in ("first", "second")]
        with psycopg.connect(state_dsn) as conn:
            found = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                                 "WHERE table_schema = ANY(%s) AND table_name = ANY(%s)",
                                 (schemas, list(TABLES))).fetchall()
        assert sorted(found) == sorted((schema, table) for schema in schemas for table in TABLES)
    finally:
        opener.close()


@pytest.fixture
def language_collated_dsn(postgres) -> str:
    """A new database whose default collation is English's (ICU): "a" before "B", punctuation weighed less."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'")
    return postgres.dsn(name)


def test_text_compares_byte_by_byte_as_in_sqlite_whatever_the_databases_collation(language_collated_dsn, tmp_path):
    """Times kept as text are compared and ordered as SQLite does, not by the language's rules."""
    opener = StateOpener("postgresql", tmp_path, language_collated_dsn)
    try:
        state = opener()
        with state.database.transaction():
            state.database.executemany("INSERT INTO inbound_seen (message_hash, seen_at) VALUES (?, ?)",
                                       [("h1", "2026-11-30T10:00:00Z"), ("h2", "a"), ("h3", "B")])
        ordered = [h for (h,) in state.database.execute("SELECT message_hash FROM inbound_seen ORDER BY seen_at")]
        assert ordered == ["h1", "h3", "h2"]  # SQLite's order: digits, capitals, small letters
        below = state.database.execute("SELECT message_hash FROM inbound_seen WHERE seen_at < ?", ("a",)).fetchall()
        assert sorted(below) == [("h1",), ("h3",)]
    finally:
        opener.close()


def test_a_state_on_an_unreachable_server_is_refused_naming_the_store(tmp_path):
    from dojoguard import config
    from dojoguard.state import StateUnavailable, open_state

    path = tmp_path / "config.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\nstorage: host=127.0.0.1 port=1 dbname=dg user=dg "
                    "connect_timeout=1\ntrust:\n  school: oak\n")
    with pytest.raises(StateUnavailable) as refused:
        open_state(config.load(path))
    assert "learned state" in str(refused.value) and "state_oak" in str(refused.value)
    assert not (tmp_path / "data" / "proxy.sqlite").exists()
