"""The proxy's state file: one made before the shared migration runner opens with its data, nothing re-run."""

from __future__ import annotations

import sqlite3

import pytest

from dojoguard.state import MIGRATIONS, State
from dojoguard.storage import NewerSchemaError
from dojoguard.storage.migrations import recorded

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
        assert state.db.execute("SELECT session_hash, teacher_id FROM sessions").fetchall() == [("h1", "t1")]
        assert state.db.execute("SELECT name FROM skills").fetchall() == [("Teamwork",)]
        assert state.database.has_table("unclassified") and not state.database.has_table("migrations")
    finally:
        state.close()
    State(path).close()  # and opens again without re-running anything


def test_a_state_file_from_a_newer_dojoguard_is_refused(tmp_path):
    """A state file recording a migration this release does not know is refused, not opened."""
    path = tmp_path / "proxy.sqlite"
    State(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES (9, '9-from-the-future', 'x')")
    db.commit()
    db.close()
    with pytest.raises(NewerSchemaError, match="the proxy state is newer than this dojoguard"):
        State(path)
