"""The proxy's learned state (``dojoguard.state``) on each backend, for the stores' tests.

``StateOpener`` opens a ``State`` on SQLite (a file in the test's folder) or
on PostgreSQL (a school's own ``state`` schema in a database shared by the
test session, each test with schools of its own). Opening the same ``name``
again reopens the same state, as a restarted proxy would.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from dojoguard.state import State

BACKENDS = ("sqlite", "postgresql")
# Every table of the state, for tests that look at everything it holds.
TABLES = ("sessions", "skills", "unclassified", "names", "inbound_seen", "class_teachers", "counted", "checks_run")


class StateOpener:
    def __init__(self, backend: str, folder: Path, dsn: str | None = None):
        self.backend = backend
        self.folder = folder
        self.dsn = dsn
        # Schools unique to this test: the shared database never mixes two tests' rows.
        self._prefix = f"t{uuid.uuid4().hex[:10]}"
        self._opened: list[State] = []

    def __call__(self, name: str = "proxy") -> State:
        if self.backend == "sqlite":
            state = State(self.folder / f"{name}.sqlite")
        else:
            state = State.on(self.postgresql(name), key_path=self.folder / f"{name}.key")
        self._opened.append(state)
        return state

    def school(self, name: str) -> str:
        return f"{self._prefix}-{name}"

    def postgresql(self, name: str):
        """A new connection to the schema of the school ``name``."""
        from dojoguard.storage.postgresql import PostgreSQLDatabase, school_schema

        return PostgreSQLDatabase.open(self.dsn, schema=school_schema(self.school(name), "state"))

    def close(self) -> None:
        for state in self._opened:
            state.close()


def everything(state: State) -> str:
    """Every value of every row the state holds, as text (to show what it never holds)."""
    with state.lock:
        return "\n".join(repr(row) for table in TABLES
                         for row in state.database.execute(f"SELECT * FROM {table}").fetchall())


def count_rows(state: State, table: str) -> int:
    with state.lock:
        return state.database.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
