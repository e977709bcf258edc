"""The proxy's own small database: sessions, learned skills, the discovery summary, display names,
which parents' messages were already reported, which teachers teach which class and what the rules count.

A SQLite file with owner-only permissions (``State(path)``), or any other
``Database`` (``State.on``: a school's own schema on a PostgreSQL server).
Schema changes are named, ordered migrations recorded in the database
(``dojoguard.storage.migrations``), each in a transaction. The stores on it
(``dojoguard.names``, the proxy's sessions, skills, discovery, counting,
inbound and context modules) go through ``State.database`` only, in SQL
both backends understand. Nothing here holds message text, names of
pupils (teachers' and classes' display names only), images or cookies (sessions are stored as keyed hashes).
It lives outside ``dojoguard/proxy/`` because the other packages' commands and the console read its names
(``dojoguard.names``), and nothing but the proxy may import the proxy.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from dojoguard.storage import Database, Migration, SQLiteDatabase, migrations


def _m1_sessions(db: Database) -> None:
    db.execute("""CREATE TABLE sessions (
        session_hash TEXT PRIMARY KEY, teacher_id TEXT NOT NULL, teacher_name TEXT, learned_at TEXT NOT NULL)""")


def _m2_skills(db: Database) -> None:
    db.execute("""CREATE TABLE skills (
        class_id TEXT NOT NULL, skill_id TEXT NOT NULL, name TEXT, value INTEGER NOT NULL,
        learned_at TEXT NOT NULL, PRIMARY KEY (class_id, skill_id))""")


def _m3_discovery(db: Database) -> None:
    db.execute("""CREATE TABLE unclassified (
        method TEXT NOT NULL, host TEXT NOT NULL, path TEXT NOT NULL, content_type TEXT NOT NULL,
        skeleton TEXT NOT NULL, count INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
        PRIMARY KEY (method, host, path, content_type, skeleton))""")


def _m4_names(db: Database) -> None:
    # Display names of teachers and classes (``names``): never pupils', never in the audit log.
    db.execute("""CREATE TABLE names (
        kind TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, source TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, id))""")


def _m5_inbound_seen(db: Database) -> None:
    # Parents' messages already reported (``proxy/inbound.py``): a keyed hash of thread id and message id,
    # and when it was first seen. No text, no names, not even the ids themselves.
    db.execute("CREATE TABLE inbound_seen (message_hash TEXT PRIMARY KEY, seen_at TEXT NOT NULL)")
    db.execute("CREATE INDEX inbound_seen_at ON inbound_seen (seen_at)")


def _m6_class_teachers(db: Database) -> None:
    # Which teachers teach which class (``proxy/context.py``), as ClassDojo's class lists name their
    # collaborators: ids only. A class's rows are replaced whenever ClassDojo sends the class again.
    db.execute("""CREATE TABLE class_teachers (
        class_id TEXT NOT NULL, teacher_id TEXT NOT NULL, learned_at TEXT NOT NULL,
        PRIMARY KEY (class_id, teacher_id))""")
    db.execute("CREATE INDEX class_teachers_teacher ON class_teachers (teacher_id)")


def _m7_counted(db: Database) -> None:
    # What the rules' counting conditions count (``proxy/counting.py``): a tally id, a teacher or class id
    # and a time. Kept 32 days. No text, no names.
    db.execute("CREATE TABLE counted (tally TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL)")
    db.execute("CREATE INDEX counted_at ON counted (at)")
    # The day each scheduled check last ran, so a restart neither repeats nor skips it.
    db.execute("CREATE TABLE checks_run (check_id TEXT PRIMARY KEY, day TEXT NOT NULL)")


MIGRATIONS = (Migration("1-sessions", _m1_sessions), Migration("2-skills", _m2_skills),
              Migration("3-discovery", _m3_discovery), Migration("4-names", _m4_names),
              Migration("5-inbound-seen", _m5_inbound_seen), Migration("6-class-teachers", _m6_class_teachers),
              Migration("7-counted", _m7_counted))
# Files made before the shared runner recorded the names in a table of their own.
_RECORDED_BEFORE = migrations.from_table("migrations")


class State:
    """The database the proxy's stores share, and the key of their hashes.

    Every store goes through ``database`` (statements with ``?`` placeholders,
    writes in ``database.transaction()``); ``lock`` is the database's lock,
    held by readers so that no statement runs inside another thread's
    transaction on the one shared connection (use from threads).
    """

    def __init__(self, path: Path):
        """Open (creating it owner-only) the SQLite file at ``path``; the key is kept beside it (``.key``)."""
        path = Path(path)
        self._start(SQLiteDatabase.open(path, busy_timeout_s=5.0), path.with_suffix(".key"))

    @classmethod
    def on(cls, database: Database, *, key_path: Path) -> "State":
        """The state in an already opened ``database`` (on PostgreSQL: a school's own ``state`` schema,
        ``school_schema(school, "state")``), migrated to this release.

        ``key_path`` is the file holding the key of the session and message
        hashes, made owner-only if missing; every proxy sharing the database
        must use the same key, or none can read the others' sessions. The
        state closes ``database`` when it is closed, or when migrating fails.
        """
        state = cls.__new__(cls)
        state._start(database, Path(key_path))
        return state

    def _start(self, database: Database, key_path: Path) -> None:
        self.database = database
        # Where the state is, for messages: the file, or the server and schema (never a password).
        self.path = database.path
        self.lock = database.lock
        try:
            migrations.migrate(database, MIGRATIONS, what="the proxy state", adopt=_RECORDED_BEFORE)
        except BaseException:
            database.close()
            raise
        self.key = _key(key_path)

    def close(self) -> None:
        self.database.close()


def _key(path: Path) -> bytes:
    """The secret that keys session hashes, kept in its own owner-only file (made if missing)."""
    try:
        return bytes.fromhex(path.read_text("ascii").strip())
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex())
        return key


class StateUnavailable(RuntimeError):
    """The proxy's learned state is on the trust's server, and the server cannot be reached."""


def open_state(config: Any, *, create: bool = True) -> "State | None":
    """The proxy's state where the settings keep it: ``proxy.state`` (SQLite), or the school's ``state``
    schema on the trust's server (``storage: postgresql://...``).

    The key of the session and message hashes is the file beside ``proxy.state``
    either way. None when the file does not exist and ``create`` is false.
    Raises ``StateUnavailable`` when the server cannot be reached.
    """
    from dojoguard.storage.location import Storage

    path = config.path("proxy", "state")
    storage = Storage.from_config(config)
    if storage.central:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            database = storage.open("state")
        except Exception as exc:  # psycopg's errors: say which store and where, then why
            from dojoguard.storage.postgresql import redacted

            raise StateUnavailable(f"cannot reach the proxy's learned state on the trust's server "
                                   f"({redacted(storage.dsn)}, schema {storage.schema('state')}): {exc}") from exc
        return State.on(database, key_path=path.with_suffix(".key"))
    if not create and not path.exists():
        return None
    return State(path)
