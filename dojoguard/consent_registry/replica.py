"""A proxy's local copy of its school's consent register on the trust's PostgreSQL server.

With ``storage: postgresql://...`` the register is kept once, on the server,
in the school's ``registry_<school>`` schema: the office's imports, the
console and every command write there. Each proxy judges photos from a copy
in its own SQLite file (``consent.database``), so a photo never waits on the
network:

- **Changes arrive at once.** Triggers on the server count every change
  (``registry_changes.version``) and ``NOTIFY`` the school's channel when the
  transaction commits. The copier thread (``Replica``) ``LISTEN``s, and on a
  notification, or at the latest every ``heartbeat_s``, compares versions and,
  when they differ, copies the register in one repeatable-read snapshot and
  writes it over the copy in one SQLite transaction (readers see the old
  copy or the new one, never half of each). A copy changed here since it
  was written (its rows no longer hash to the digest recorded with them)
  is copied again at the next comparison.
- **Staleness is bounded.** Each comparison that succeeds stamps the copy
  ``confirmed_at``: "equal to the server's register at this moment". The
  image check calls ``check_fresh`` before each photo that needs the
  register; a copy confirmed longer ago than ``consent.max_staleness_s``
  (the server has been unreachable that long) is refused with
  ``RegistryUnavailable``, and the photo fails closed. A missed notification
  costs at most ``heartbeat_s``, never correctness.
- **Erasure reaches the copies.** The copy is rewritten whole, in a file with
  ``secure_delete``, and its write-ahead log truncated after every copy, so a
  person erased on the server is gone from every proxy at its next copy.
- **Only what a proxy needs is copied**: people, consents, templates and the
  ClassDojo links; not consent history or the erasure record.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from dojoguard.consent_registry.registry import Registry, RegistryUnavailable
from dojoguard.storage import Database, SQLiteDatabase
from dojoguard.storage.location import Storage
from dojoguard.storage.postgresql import PostgreSQLDatabase, close_quietly

log = structlog.get_logger("dojoguard.consent")

# What a proxy's copy holds, parents before children (written in this order, emptied in the reverse).
COPIED = (
    ("people", "id"),
    ("consents", "person_id, purpose"),
    ("templates", "id"),
    ("dojo_classes", "class_id"),
    ("dojo_pupils", "dojo_pupil_id"),
    ("dojo_roster", "class_id, dojo_pupil_id"),
)
_STATE = "replica_state"
# The longest one statement of the copier may take before it gives up and reconnects.
STATEMENT_TIMEOUT_S = 30.0
# At most this long between attempts while the server cannot be reached.
RETRY_MAX_S = 5.0


# -- the server's side -----------------------------------------------------------


def open_central(storage: Storage, *, clock=None, purposes=None,
                 statement_timeout_s: float | None = STATEMENT_TIMEOUT_S, reconnect: bool = True) -> Registry:
    """The school's register on the server, migrated, with its change notifications in place.

    Raises ``RegistryUnavailable`` when the server cannot be reached or refuses the account.
    """
    try:
        db = storage.open("registry", statement_timeout_s=statement_timeout_s, reconnect=reconnect)
    except Exception as exc:  # psycopg's errors, a bad address: the register is unavailable
        raise RegistryUnavailable(f"cannot reach the consent register on the trust's server: {exc}") from exc
    registry = Registry.on(db, clock=clock, purposes=purposes)
    try:
        install_notifications(db)
    except db.errors as exc:
        registry.close()
        raise RegistryUnavailable(f"cannot set up the consent register's change notifications: {exc}") from exc
    return registry


def channel(db: PostgreSQLDatabase) -> str:
    """The NOTIFY channel of a school's register: its schema's name."""
    return db.schema or "registry"


def install_notifications(db: PostgreSQLDatabase) -> None:
    """Count and announce every change to the copied tables (once per schema; later opens find them in place).

    A row trigger, not a statement one, so a statement that changes nothing
    (a class list the proxy learns again, unchanged) announces nothing and no
    proxy copies for it.
    """
    if _notifications_installed(db):
        return
    with db.transaction():
        if _notifications_installed(db):
            return
        schema = channel(db)
        db.execute("CREATE TABLE IF NOT EXISTS registry_changes (version BIGINT NOT NULL, "
                   "changed_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        db.execute("INSERT INTO registry_changes (version) SELECT 0 "
                   "WHERE NOT EXISTS (SELECT 1 FROM registry_changes)")
        # The schema's name is one school_schema made ([a-z0-9_] only), so it can be written into the body.
        db.execute(f"""CREATE OR REPLACE FUNCTION "{schema}".registry_changed() RETURNS trigger
            LANGUAGE plpgsql AS $body$
            BEGIN
                UPDATE "{schema}".registry_changes SET version = version + 1, changed_at = now();
                PERFORM pg_notify('{schema}', '');
                RETURN NULL;
            END
            $body$""")
        for table, _ in COPIED:
            db.execute(f"CREATE OR REPLACE TRIGGER {table}_changed AFTER INSERT OR DELETE ON {table} "
                       f'FOR EACH ROW EXECUTE FUNCTION "{schema}".registry_changed()')
            db.execute(f"CREATE OR REPLACE TRIGGER {table}_updated AFTER UPDATE ON {table} FOR EACH ROW "
                       f'WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION "{schema}".registry_changed()')
            db.execute(f"CREATE OR REPLACE TRIGGER {table}_truncated AFTER TRUNCATE ON {table} "
                       f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".registry_changed()')


def _notifications_installed(db: PostgreSQLDatabase) -> bool:
    (count,) = db.execute(
        "SELECT COUNT(*) FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ? AND t.tgname LIKE '%\\_changed' ESCAPE '\\'", (channel(db),)).fetchone()
    return count >= len(COPIED) and db.has_table("registry_changes")


def central_version(db: PostgreSQLDatabase) -> int:
    (version,) = db.execute("SELECT version FROM registry_changes").fetchone()
    return int(version)


# -- the proxy's copy ------------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    """What a copy says of itself: the server's version it holds and when it was last confirmed equal."""

    school: str
    version: int
    copied_at: float
    confirmed_at: float
    max_staleness_s: float
    # A hash of the rows as copied: a copy changed since (by hand) no longer matches it and is copied again.
    digest: str = ""

    def age(self, now: float) -> float:
        return max(0.0, now - self.confirmed_at)


def freshness(db: Database) -> Freshness | None:
    """The copy's own record of its freshness; None for a register that is not a copy."""
    if not db.has_table(_STATE):
        return None
    row = db.execute(f"SELECT school, version, copied_at, confirmed_at, max_staleness_s, digest "
                     f"FROM {_STATE}").fetchone()
    return Freshness(row[0], int(row[1]), float(row[2]), float(row[3]), float(row[4]), row[5]) if row else None


def check_fresh(db: Database, now: float | None = None, *, required: bool = False) -> None:
    """Refuse (``RegistryUnavailable``) a copy not confirmed with the server within its bound.

    A register that is not a copy (the school's own SQLite file) passes,
    unless ``required``: the settings say it must be a copy, and a file that
    has lost its record (or was never copied) is then refused too.
    """
    found = freshness(db)
    if found is None:
        if required:
            raise RegistryUnavailable("this proxy's copy of the consent register has not been copied from the "
                                      "trust's server yet (or has lost its record of when it was)")
        return
    now = time.time() if now is None else now
    if found.age(now) > found.max_staleness_s:
        raise RegistryUnavailable(
            f"this proxy's copy of the consent register was last confirmed with the trust's server "
            f"{found.age(now):.0f} s ago (consent.max_staleness_s is {found.max_staleness_s:g} s): "
            f"photos that need the register are blocked until the server can be reached")


def open_copy(path: Path) -> Registry:
    """The proxy's copy (created, migrated and marked as a copy if new)."""
    registry = Registry.open(path)
    with registry.transaction():
        registry.db.execute(f"CREATE TABLE IF NOT EXISTS {_STATE} (school TEXT NOT NULL, version INTEGER NOT NULL, "
                            "copied_at REAL NOT NULL, confirmed_at REAL NOT NULL, max_staleness_s REAL NOT NULL, "
                            "digest TEXT NOT NULL)")
    return registry


@dataclass(frozen=True)
class Copied:
    version: int
    rows: int          # rows written (0 when the copy was already equal: only confirmed)


def refresh(central: PostgreSQLDatabase, copy: SQLiteDatabase, *, school: str, max_staleness_s: float,
            now: Callable[[], float] = time.time) -> Copied:
    """Confirm the copy against the server, copying the register first if it changed (there, or here by hand)."""
    held = freshness(copy)
    stamp = now()
    with central.lock, central.connection.transaction():
        central.connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        version = central_version(central)
        # The copy's own rows are hashed only when nothing else already says it must be copied.
        if held is not None and held.version == version and held.school == school and held.digest == digest(copy):
            tables = None
        else:
            tables = {}
            for table, order in COPIED:
                cursor = central.execute(f"SELECT * FROM {table} ORDER BY {order}")
                tables[table] = ([c.name for c in cursor.description], cursor.fetchall())
    with copy.transaction():
        written = 0
        if tables is not None:
            written = _write(copy, tables)
            copied_at, rows_digest = stamp, digest(copy)
        else:
            copied_at, rows_digest = held.copied_at, held.digest
        copy.execute(f"DELETE FROM {_STATE}")
        copy.execute(f"INSERT INTO {_STATE} (school, version, copied_at, confirmed_at, max_staleness_s, digest) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (school, version, copied_at, stamp, float(max_staleness_s), rows_digest))
    if tables is not None:
        # No erased row may linger in the write-ahead log (the rows themselves were overwritten: secure_delete).
        copy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Copied(version, written)


def digest(copy: Database) -> str:
    """SHA-256 of every copied row, in order: what the copy holds, whoever wrote it."""
    hashed = hashlib.sha256()
    for table, order in COPIED:
        for row in copy.execute(f"SELECT * FROM {table} ORDER BY {order}"):
            for value in row:
                # Bytes (templates) hashed as they are, with their length; anything else by its repr.
                raw = value if isinstance(value, bytes) else repr(value).encode()
                hashed.update(len(raw).to_bytes(4, "big"))
                hashed.update(raw)
        hashed.update(b"\x00")
    return hashed.hexdigest()


def _write(copy: SQLiteDatabase, tables: dict[str, tuple[list[str], list[tuple]]]) -> int:
    for table, _ in reversed(COPIED):
        copy.execute(f"DELETE FROM {table}")
    written = 0
    for table, _ in COPIED:
        columns, rows = tables[table]
        if rows:
            marks = ", ".join("?" for _ in columns)
            copy.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                             [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows])
            written += len(rows)
    return written


@dataclass
class Status:
    version: int | None = None
    copies: int = 0
    failing_since: float | None = None
    error: str | None = None


class Replica:
    """Keeps the copy at ``path`` equal to the school's register; ``start`` runs it on a thread of its own."""

    def __init__(self, storage: Storage, path: Path, *, max_staleness_s: float,
                 record: Callable[[str, dict[str, Any]], None] | None = None):
        self.storage = storage
        self.path = Path(path)
        self.max_staleness_s = float(max_staleness_s)
        # A comparison at least three times within the bound, so one slow turn does not let the copy go stale.
        self.heartbeat_s = max(0.2, min(30.0, self.max_staleness_s / 3))
        self.record = record
        self.status = Status()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._central: PostgreSQLDatabase | None = None
        self._copy: Registry | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dojoguard-register-copy", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        ended = self._thread is None or not self._thread.is_alive()
        if ended:
            self.close()
        return ended

    def close(self) -> None:
        self._disconnect()
        if self._copy is not None:
            self._copy.close()
            self._copy = None

    def turn(self) -> Copied:
        """Connect if need be, then confirm (or copy) once. Raises what the server or the copy raised."""
        if self._copy is None:
            self._copy = open_copy(self.path)
        if self._central is None:
            self._connect()
        copied = refresh(self._central, self._copy.database, school=self.storage.school or "",
                         max_staleness_s=self.max_staleness_s)
        if copied.rows or self.status.version != copied.version:
            self.status.copies += 1
            log.info("consent.copied", version=copied.version, rows=copied.rows)
        self.status.version = copied.version
        return copied

    def _connect(self) -> None:
        # No reconnecting by itself: a new connection would not be LISTENing; a break ends the turn here, and
        # ``_run`` connects again and LISTENs again.
        central = open_central(self.storage, statement_timeout_s=STATEMENT_TIMEOUT_S, reconnect=False)
        db = central.database
        try:
            from psycopg import sql

            db.connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel(db))))
        except BaseException:
            central.close()
            raise
        self._central = db

    def _disconnect(self) -> None:
        close_quietly(self._central)
        self._central = None

    def _wait_for_change(self) -> None:
        """Until a change is announced, ``heartbeat_s`` passes or the copier is stopped."""
        for _ in self._central.connection.notifies(timeout=self.heartbeat_s, stop_after=1):
            pass

    def _run(self) -> None:
        pause = 0.2
        while not self._stop.is_set():
            try:
                self.turn()
                self._recovered()
                pause = 0.2
                if not self._stop.is_set():
                    self._wait_for_change()
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect and try again; readers see the age
                self._disconnect()
                self._failed(exc)
                self._stop.wait(pause)
                pause = min(pause * 2, RETRY_MAX_S)

    def _failed(self, exc: BaseException) -> None:
        detail = f"{type(exc).__name__}: {exc}"[:300]
        if self.status.failing_since is None:
            self.status.failing_since = time.monotonic()
            log.error("consent.copy_failing", error=detail)
            if self.record is not None:
                self._safe_record("consent.copy_failing", {"error": detail, "version": self.status.version,
                                                            "max_staleness_s": self.max_staleness_s})
        self.status.error = detail

    def _recovered(self) -> None:
        if self.status.failing_since is None:
            return
        seconds = round(time.monotonic() - self.status.failing_since, 1)
        self.status.failing_since = None
        self.status.error = None
        log.info("consent.copy_resumed", after_s=seconds)
        if self.record is not None:
            self._safe_record("consent.copy_resumed", {"after_s": seconds, "version": self.status.version})

    def _safe_record(self, event: str, fields: dict[str, Any]) -> None:
        try:
            self.record(event, fields)
        except Exception:  # the audit log reports its own failures; the copier keeps going
            log.exception("consent.copy_record_failed", event=event)
