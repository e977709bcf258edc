"""Named, ordered schema migrations, each applied once in its own transaction and recorded in the database.

A migration is never edited once released: a change to a schema is a new
``Migration`` appended to its database's list. Each one runs in a write
transaction together with the row that records it (``schema_migrations``:
its position, name and when it was applied), so a failure leaves the database
at the previous step, never half changed, and two processes opening the same
file never both apply it.

A database that records a migration this code does not know was written by
a newer dojoguard and is refused (``NewerSchemaError``) before anything is
written to it. The number of recorded migrations is also kept as the
database's schema version (SQLite's ``user_version``), so releases that read
only that number refuse a newer file too.

Files made before migrations were recorded this way are recognised by an
``adopt`` function, which says which migrations the old marker (a table of
its own, a version number) shows as applied; they are recorded, not run again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dojoguard.storage.database import Database

TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    """One step of a schema: ``apply(db)`` runs inside the transaction that records ``name``."""

    name: str
    apply: Callable[[Database], None]


class NewerSchemaError(RuntimeError):
    """The database was written by a newer dojoguard: opening it with this one could lose or misread data."""


# What an ``adopt`` function returns: the names an older marker shows as applied, with when (None: unknown).
Adopted = list[tuple[str, str | None]]


def migrate(db: Database, migrations: Sequence[Migration], *, what: str,
            adopt: Callable[[Database], Adopted] | None = None, now: datetime | None = None) -> list[str]:
    """Apply every migration not yet recorded, in order; returns the names applied now.

    ``what`` names the database in errors ("the hold store"); ``now`` is the
    time recorded (default: the current time); ``adopt`` reads the marker of a
    file made before this runner (see the module notes).
    """
    known = [m.name for m in migrations]
    if len(set(known)) != len(known):
        raise ValueError(f"{what}: two migrations share a name")
    applied_at = (now or datetime.now(UTC)).isoformat()
    version = db.schema_version()
    if version > len(known):
        raise _newer(what, f"schema version {version}, this dojoguard knows {len(known)}")
    if not db.has_table(TABLE):
        with db.transaction():
            if not db.has_table(TABLE):
                _adopt(db, known, what, adopt, applied_at)
    done = recorded(db)
    _refuse_unknown(what, done, known)
    names_now = []
    for seq, migration in enumerate(migrations, start=1):
        if migration.name in done:
            continue
        with db.transaction():
            # Another process may have applied it since the names were read.
            if db.execute(f"SELECT 1 FROM {TABLE} WHERE name = ?", (migration.name,)).fetchone():
                continue
            migration.apply(db)
            db.execute(f"INSERT INTO {TABLE} (seq, name, applied_at) VALUES (?, ?, ?)",
                       (seq, migration.name, applied_at))
            _mirror_version(db)
        names_now.append(migration.name)
    if db.schema_version() < len(done):
        with db.transaction():
            _mirror_version(db)
    return names_now


def recorded(db: Database) -> list[str]:
    """The names of the migrations recorded in ``db``, in order (empty before the first ``migrate``)."""
    if not db.has_table(TABLE):
        return []
    return [name for (name,) in db.execute(f"SELECT name FROM {TABLE} ORDER BY seq")]


def run_script(db: Database, script: str) -> None:
    """Run the statements of ``script`` one by one, inside the caller's transaction.

    Not ``executescript``: that commits first and would take the migration
    out of its transaction.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        # SQLite's own splitter: the text of every migration is SQLite's dialect today.
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip() and not _only_comments(statement):
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:60]}")


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("--") for line in text.splitlines())


def _adopt(db: Database, known: list[str], what: str, adopt, applied_at: str) -> None:
    """Create the record table and record what an older marker shows as applied (the caller's transaction)."""
    found = adopt(db) if adopt is not None else []
    _refuse_unknown(what, [name for name, _ in found], known)
    db.execute(f"CREATE TABLE {TABLE} (seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)")
    for name, at in found:
        db.execute(f"INSERT INTO {TABLE} (seq, name, applied_at) VALUES (?, ?, ?)",
                   (known.index(name) + 1, name, at or applied_at))
    if found:
        _mirror_version(db)


def _refuse_unknown(what: str, names, known: list[str]) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise _newer(what, f"migrations {unknown}")


def _newer(what: str, detail: str) -> NewerSchemaError:
    return NewerSchemaError(f"{what} is newer than this dojoguard knows ({detail}): it was written by a newer "
                            f"release; upgrade dojoguard rather than open it with an older one")


def _mirror_version(db: Database) -> None:
    (count,) = db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()
    db.set_schema_version(count)


def from_table(table: str, *, time_column: str | None = None) -> Callable[[Database], Adopted]:
    """An ``adopt`` for files that recorded applied migrations by name in a ``table`` of their own.

    The names (and ``time_column``, when the old table had one) are copied,
    and the old table dropped: a release that still reads it then fails to
    open the file instead of running its migrations a second time.
    """
    def adopt(db: Database) -> Adopted:
        if not db.has_table(table):
            return []
        when = time_column or "NULL"
        rows = [(name, at) for name, at in db.execute(f"SELECT name, {when} FROM {table}")]
        db.execute(f"DROP TABLE {table}")
        return rows
    return adopt


def from_schema_version(names: Sequence[str]) -> Callable[[Database], Adopted]:
    """An ``adopt`` for files whose schema version counted the steps applied: the first that many ``names``."""
    def adopt(db: Database) -> Adopted:
        return [(name, None) for name in names[:db.schema_version()]]
    return adopt
