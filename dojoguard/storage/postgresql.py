"""A PostgreSQL server database behind the same ``Database`` interface as the SQLite files.

A trust's central store lives here (``dojoguard.trust``): many schools'
proxies ship their audit records to one server. What differs from SQLite,
and how this class answers the interface:

- **Parameters.** Stores write SQLite's ``?`` placeholders; they are turned
  into psycopg's ``%s`` here (outside quoted text), so a statement written
  for the interface runs on both. Code written only for PostgreSQL uses
  ``%s`` through ``connection`` directly.
- **The write transaction.** ``transaction`` takes a transaction-scoped
  advisory lock first, so two processes never both act on what they read
  inside it (the migration runner relies on this); ``wait=False`` tries the
  lock and raises ``Busy``. Stores that need finer locks (one shipping node's
  row) use ``connection.transaction()`` and row locks instead.
- **Schema version.** Kept in a one-row table, since PostgreSQL has no
  ``user_version``.
- **Errors.** psycopg's ``OperationalError`` (the server cannot be reached, the
  connection broke) is the caller's to turn into its own "unavailable" error.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dojoguard.storage.database import Busy, Database

# pg_advisory_xact_lock's key for "a dojoguard write transaction": any fixed 64-bit number, the same in
# every process that shares the database.
_WRITE_LOCK = 0x646F6A6F67756172  # "dojoguar"

_VERSION_TABLE = "dojoguard_schema_version"


def redacted(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***``, for messages and logs."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - an unparseable DSN is named without its text
        return "(an unreadable PostgreSQL address)"
    if "password" in parts:
        parts["password"] = "***"
    host = parts.get("host", "")
    name = parts.get("dbname", "")
    shown = {k: v for k, v in parts.items() if k in ("host", "port", "dbname", "user", "password")}
    return make_conninfo(**shown) if shown else f"{host}/{name}"


def has_password(dsn: str) -> bool:
    """Whether ``dsn`` carries a password itself (settings files must not: libpq's password file does)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        return "password" in conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - the caller's connect names an unreadable address
        return False


@functools.lru_cache(maxsize=512)
def to_format(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` as ``%%``), quoted text left alone."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class PostgreSQLDatabase(Database):
    """One connection to a PostgreSQL database, in autocommit mode: every write is an explicit ``transaction``."""

    def __init__(self, connection, dsn: str):
        self.connection = connection
        self.dsn = dsn
        # Named in messages: the server and database, never a password.
        self.path = Path(redacted(dsn))
        self.lock = threading.RLock()

    @classmethod
    def open(cls, dsn: str, *, connect_timeout_s: float = 5.0, application_name: str = "dojoguard",
             statement_timeout_s: float | None = None) -> "PostgreSQLDatabase":
        """Connect to ``dsn`` (a ``postgresql://`` URL or libpq key=value string).

        TCP keepalives find a server that vanished without closing the
        connection within about half a minute; ``statement_timeout_s`` also
        ends any one statement that takes longer (a hung server, a lock
        held elsewhere), so a caller's thread never waits for ever.
        Raises ``psycopg.OperationalError`` if the server cannot be reached or refuses the login.
        """
        import psycopg

        extra = {}
        if statement_timeout_s is not None:
            extra["options"] = f"-c statement_timeout={int(statement_timeout_s * 1000)}"
        connection = psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, round(connect_timeout_s)),
                                     application_name=application_name, keepalives=1, keepalives_idle=10,
                                     keepalives_interval=5, keepalives_count=3, **extra)
        return cls(connection, dsn)

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        params = tuple(params)
        return self.connection.execute(to_format(sql) if params or "?" in sql else sql, params or None)

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> Any:
        cursor = self.connection.cursor()
        cursor.executemany(to_format(sql), [tuple(r) for r in rows])
        return cursor

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[None]:
        with self.lock, self.connection.transaction():
            if wait:
                self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            else:
                (got,) = self.connection.execute("SELECT pg_try_advisory_xact_lock(%s)", (_WRITE_LOCK,)).fetchone()
                if not got:
                    raise Busy("another dojoguard process is writing to this database")
            yield

    def has_table(self, name: str) -> bool:
        # Read from pg_class with the statement's own snapshot, not through to_regclass: that answers from
        # the connection's catalog cache, which can still say "no such table" after another process
        # created it while this one waited for the write lock (and the migration would run twice).
        (found,) = self.connection.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relname = %s AND n.nspname = ANY (current_schemas(false)))",
            (name,)).fetchone()
        return bool(found)

    def schema_version(self) -> int:
        if not self.has_table(_VERSION_TABLE):
            return 0
        row = self.connection.execute(f"SELECT version FROM {_VERSION_TABLE}").fetchone()
        return int(row[0]) if row else 0

    def set_schema_version(self, version: int) -> None:
        self.connection.execute(f"CREATE TABLE IF NOT EXISTS {_VERSION_TABLE} (version integer NOT NULL)")
        self.connection.execute(f"DELETE FROM {_VERSION_TABLE}")
        self.connection.execute(f"INSERT INTO {_VERSION_TABLE} (version) VALUES (%s)", (int(version),))

    def close(self) -> None:
        with self.lock:
            self.connection.close()

    @property
    def closed(self) -> bool:
        return bool(self.connection.closed)
