"""The append-only, hash-chained audit log.

Every write goes through one pipeline, in one SQLite transaction:
``redact`` (refuse content, pseudonymise pupils) -> ``enrich`` (sequence
number, id, time) -> ``seal`` (hash over the canonical encoding, chained to
the previous record) -> ``append`` (insert and commit with synchronous=FULL).
A record is durable before ``append_*`` returns; if it cannot be written the
caller gets ``AuditWriteError`` and must not act as if it had been recorded.

The proxy opens the log with ``deferred_sync``: a commit then writes the
record to the write-ahead log (so a crash of the process loses nothing, and
every way a write can fail, from a full disk to a locked or corrupt
database, is still reported before the caller goes on), and ``sync(seq)``
makes it safe from power loss with one ``fdatasync`` of the write-ahead log,
which covers every record committed before it. The proxy forwards a write
once its record is committed and answers the app once the record is
synced, so the flush overlaps the round trip to ClassDojo instead of adding
to it. A failed flush cannot be retried safely (the kernel may have dropped
the pages): the log then refuses every later write until it is reopened.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from dojoguard import references
from dojoguard.audit import events, fingerprints, schema
from dojoguard.audit.entry import decision_fields
from dojoguard.audit.fingerprints import FingerprintKey, FingerprintKeyError
from dojoguard.audit.flusher import Flusher
from dojoguard.audit.privacy import refuse_content
from dojoguard.audit.pseudonyms import Pseudonyms
from dojoguard.audit.record import GENESIS, AuditRecord, canonical, format_time, parse_time, seal
from dojoguard.clock import Clock, SystemClock
from dojoguard.rules.action import Action
from dojoguard.rules.decision import Decision
from dojoguard.storage import Busy, Database, NewerSchemaError, SQLiteDatabase

SCHEMA_VERSION = 1
# A deferred-sync log checkpoints after this many commits (a decision commit
# writes a few pages, so this keeps the write-ahead log near SQLite's own
# automatic checkpoint size of 1,000 pages).
CHECKPOINT_EVERY_COMMITS = 300
_COLUMNS = "seq, id, at, type, body, prev, hash"


class AuditWriteError(Exception):
    """A record could not be made durable (disk full, read-only, locked, corrupt)."""


class AuditLog:
    """One open audit database. Safe to share between threads."""

    def __init__(self, db: Database, path: Path, clock: Clock, emit_decisions: bool,
                 deferred_sync: bool = False, fingerprint_key: Path | None = None):
        self._db = db
        # SQLite's own connection, for the statements on the write path and for ``connection``'s callers.
        self._conn = conn = db.connection
        # Keys message fingerprints (see ``fingerprints``); read when first needed unless it exists.
        self._fingerprint_path = Path(fingerprint_key) if fingerprint_key is not None else \
            fingerprints.key_path_for(None, path)
        self._fingerprint: FingerprintKey | None = None
        # Called with the seq of each record this connection commits (see ``watch_commits``).
        self._on_commit = None
        self.deferred_sync = deferred_sync
        self._commits_since_checkpoint = 0
        self._sync_lock = threading.Lock()
        self._committed = 0      # highest seq committed (written to the WAL)
        self._synced = 0         # highest seq known to be on disk
        self._sync_failure: str | None = None
        self._flusher = Flusher(str(path))
        self.path = path
        self.clock = clock
        self._lock = db.lock
        self._pseudonyms = Pseudonyms(conn)
        self._emit = emit_decisions
        self._logger = structlog.get_logger("dojoguard.audit")
        self.log_id = self._meta("log_id")

    # -- opening ---------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, clock: Clock | None = None, busy_timeout_s: float = 5.0,
             emit_decisions: bool = True, deferred_sync: bool = False,
             fingerprint_key: str | Path | None = None) -> "AuditLog":
        """Open (creating if needed, owner-only) the log at ``path``; raises ``AuditWriteError``.

        ``deferred_sync``: commits reach the write-ahead log and ``sync`` makes them
        durable (see the module notes); records written with ``durable=True``
        (the default) are still synced before ``append_*`` returns.
        ``fingerprint_key``: the key file for message fingerprints (default
        ``keys/audit-fingerprint.key`` beside the database; give
        ``fingerprints.key_path_for(config, path)`` to keep it beside the
        signing key). Given explicitly, it is read or made now, so a bad key
        stops the opening rather than the first decision.
        """
        path = Path(path)
        # NORMAL in WAL mode: commits are written, not flushed; checkpoints still flush.
        pragmas = ["synchronous=NORMAL" if deferred_sync else "synchronous=FULL"]
        if deferred_sync:
            # Checkpoints (which flush and can take milliseconds) run after flushes, on the
            # flushing thread, never inside a commit made from an event loop.
            pragmas.append("wal_autocheckpoint=0")
        pragmas += ["secure_delete=ON", "foreign_keys=ON"]
        try:
            db = SQLiteDatabase.open(path, busy_timeout_s=busy_timeout_s, pragmas=pragmas)
        except OSError as exc:
            raise AuditWriteError(f"cannot open the audit log {path}: {exc}") from exc
        except sqlite3.Error as exc:
            # Setting the journal mode and pragmas is the first write: a read-only file fails here.
            raise AuditWriteError(f"cannot open the audit log {path}: {_explain(exc)}") from exc
        try:
            schema.migrate(db)
            log = cls(db, path, clock or SystemClock(), emit_decisions, deferred_sync, fingerprint_key)
            if log.log_id is None:
                log._create()
            # The proxy (deferred sync) reads it now: never a file made on its event loop.
            if fingerprint_key is not None or deferred_sync or log._fingerprint_path.exists():
                log.fingerprint_key()
            return log
        except sqlite3.Error as exc:
            db.close()
            raise AuditWriteError(f"cannot open the audit log {path}: {_explain(exc)}") from exc
        except NewerSchemaError as exc:
            db.close()
            raise AuditWriteError(f"cannot open the audit log {path}: {exc}") from exc
        except AuditWriteError:
            db.close()
            raise

    def _create(self) -> None:
        log_id = uuid.uuid4().hex
        with self._lock:
            self._transaction(lambda: self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('log_id', ?)",
                                                         (log_id,)))
            self.log_id = self._meta("log_id")
            if self.head() is None:
                self.append_event("audit.created", {"log_id": self.log_id, "schema": SCHEMA_VERSION})

    def close(self) -> None:
        with self._lock:
            if self.deferred_sync and self._sync_failure is None:
                try:
                    self.sync(self._committed)
                except AuditWriteError:
                    pass  # already reported by sync(); closing must still release the file
            self._db.close()
            with self._sync_lock:
                self._flusher.close()

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ---------------------------------------------------------

    def append_decision(self, action: Action, decision: Decision, *, durable: bool = True) -> AuditRecord:
        """Record one decision (durable on return unless ``durable=False``). Never stores text, images or names.

        ``durable=False`` (deferred-sync logs only) returns once the record is
        committed; the caller must ``sync(record.seq)`` before it acts as if
        the record were safe from power loss.
        """
        fields = decision_fields(action, decision, self.fingerprint_key())
        record = self._write("decision", decision.decision_id, fields, durable=durable)
        if self._emit:
            self._logger.info("decision", seq=record.seq, decision_id=record.record_id,
                              verdict=fields["verdict"], kind=fields["kind"], channel=fields["channel"],
                              teacher=fields.get("teacher"), device=fields.get("device"),
                              class_id=fields.get("class"), rules=fields["rules"],
                              pupils=len(fields["pupils"]), policy_revision=fields["policy_revision"])
        return record

    def append_event(self, event: str, fields: dict[str, Any], *, durable: bool = True) -> AuditRecord:
        """Record a system event from ``events.EVENTS``; content-bearing fields are refused."""
        events.check(event, fields)
        if event == "pupil.erased":
            return self._erase(fields)
        return self._write(event, uuid.uuid4().hex, fields, durable=durable)

    def _erase(self, fields: dict[str, Any]) -> AuditRecord:
        pupil = fields.get("pupil")
        if not isinstance(pupil, str) or not pupil:
            # A member of staff (recorded by staff id): there is no pseudonym key to destroy.
            return self._write("pupil.erased", uuid.uuid4().hex, fields)
        def forget(pending: dict[str, bytes]) -> None:
            pending.pop(pupil, None)  # a pupil first seen in this very record
            self._pseudonyms.forget(pupil)

        record = self._write("pupil.erased", uuid.uuid4().hex, fields, after=forget)
        try:
            # Push the deleted key out of the write-ahead log too.
            with self._lock:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            pass  # the key row is already deleted; the WAL is overwritten in time
        return record

    def try_append_decision(self, action: Action, decision: Decision) -> AuditRecord | None:
        """``append_decision(durable=False)`` if it needs no waiting; None if it would have to wait.

        For callers on an event loop: it never waits for the log's lock (another
        thread writing) or SQLite's (another process writing) and never runs a
        checkpoint (a deferred-sync log checkpoints after its flushes). On None,
        append from a thread instead. Failures raise as ``append_decision``'s do.
        """
        fields = decision_fields(action, decision, self.fingerprint_key())
        return self._write("decision", decision.decision_id, fields, durable=False, wait=False)

    def _write(self, type_: str, record_id: str, fields: dict[str, Any], after=None,
               durable: bool = True, wait: bool = True) -> AuditRecord | None:
        refuse_content(fields)
        if not self._lock.acquire(blocking=wait):
            return None
        try:
            if self._sync_failure is not None:
                raise AuditWriteError(self._sync_failure)
            pending: dict[str, bytes] = {}
            try:
                with self._db.transaction(wait=wait):
                    record = self.insert(type_, record_id, fields, pending)
                    if after is not None:
                        after(pending)
            except Busy:
                return None
            except sqlite3.IntegrityError as exc:
                raise AuditWriteError(f"record {record_id} not written: {exc}") from exc
            except sqlite3.Error as exc:
                raise AuditWriteError(f"audit record not written: {_explain(exc)}") from exc
            self._pseudonyms.committed(pending)
            self._committed = record.seq
            self._commits_since_checkpoint += 1
        finally:
            self._lock.release()
        if self._on_commit is not None:
            self._on_commit(record.seq)
        if durable:
            self.sync(record.seq)
        return record

    def fingerprint_key(self) -> FingerprintKey:
        """The message fingerprint key, read (or made) once; raises ``AuditWriteError``."""
        key = self._fingerprint
        if key is None:
            with self._lock:
                if self._fingerprint is None:
                    try:
                        self._fingerprint = fingerprints.load_or_create(self._fingerprint_path)
                    except FingerprintKeyError as exc:
                        raise AuditWriteError(f"decision not recorded: {exc}") from exc
                key = self._fingerprint
        return key

    def watch_commits(self, callback) -> None:
        """Call ``callback(seq)`` after each record this connection commits (None: stop).

        It runs on the committing thread, which may be an event loop: it must
        only note the number and return (the proxy uses it to start a signed
        checkpoint every so many records).
        """
        self._on_commit = callback

    def flush(self) -> None:
        """Make everything committed so far durable, records or not (job state, say)."""
        self.sync(None)

    def sync(self, seq: int | None) -> None:
        """Make every record up to ``seq`` safe from power loss (None: flush regardless); raises ``AuditWriteError``.

        A no-op unless the log was opened with ``deferred_sync``. Thread-safe;
        one flush covers every record committed before it started, so
        concurrent writers share flushes.
        """
        if not self.deferred_sync:
            return
        with self._sync_lock:
            if self._sync_failure is not None:
                raise AuditWriteError(self._sync_failure)
            if seq is not None and self._synced >= seq:
                return
            target = self._committed
            try:
                self._flusher.flush()
            except OSError as exc:
                self._refuse_after_failed_flush(str(exc), error=type(exc).__name__, seq=seq)
                raise AuditWriteError(self._sync_failure) from exc
            self._synced = max(self._synced, target)
        if self.wants_checkpoint:
            self._checkpoint()

    def mark_synced(self, seq: int) -> None:
        """Another process (the proxy's flusher) flushed the log after record ``seq`` was committed."""
        with self._sync_lock:
            self._synced = max(self._synced, seq)

    def mark_sync_failed(self, reason: str) -> None:
        """A flush failed elsewhere: refuse every later record, as a failed ``sync`` does."""
        with self._sync_lock:
            if self._sync_failure is None:
                self._refuse_after_failed_flush(reason, error=reason)

    def _refuse_after_failed_flush(self, reason: str, **logged: Any) -> None:
        """From now on every record is refused (the caller holds ``_sync_lock``)."""
        self._sync_failure = (f"the audit log could not be flushed to disk ({reason}); it refuses "
                              f"further records until the proxy is restarted")
        self._logger.error("audit.sync_failed", **logged)

    @property
    def committed_seq(self) -> int:
        """The last record this connection committed."""
        return self._committed

    @property
    def wants_checkpoint(self) -> bool:
        """A deferred-sync log's write-ahead log has grown enough to be copied into the database."""
        return self.deferred_sync and self._commits_since_checkpoint >= CHECKPOINT_EVERY_COMMITS

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database (deferred-sync logs do this themselves)."""
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database so that it restarts small (deferred-sync logs)."""
        try:
            with self._lock:
                self._commits_since_checkpoint = 0
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            # Readers (a long report) can hold it back; the next flush tries again.
            self._logger.warning("audit.checkpoint_deferred", error=type(exc).__name__)

    @property
    def synced_seq(self) -> int:
        """Every record up to this one is on disk (all records, unless the log defers syncing)."""
        return self._synced if self.deferred_sync else sys.maxsize

    @property
    def sync_failure(self) -> str | None:
        """Why the log refuses records after a failed flush, or None."""
        return self._sync_failure

    def insert(self, type_: str, record_id: str, fields: dict[str, Any], pending: dict[str, bytes]) -> AuditRecord:
        """Redact, enrich, seal and insert one record inside the caller's open write transaction."""
        conn = self._conn
        redacted = self._pseudonyms.replace_ids(fields, pending)                     # redact
        last = conn.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)                 # enrich
        at_text = format_time(self.clock.now())
        body = canonical(redacted)
        hash_ = seal(seq, record_id, at_text, type_, prev, body)                     # seal
        conn.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",              # append
                     (seq, record_id, at_text, type_, body, prev, hash_))
        return AuditRecord(seq, record_id, parse_time(at_text), type_, redacted, prev, hash_)

    def write_in_transaction(self, step) -> AuditRecord:
        """Run ``step(log, pending)`` inside one write transaction; it returns the record it inserted.

        For operations that must change the database and record that they did
        so atomically (the retention purge).
        """
        with self._lock:
            pending: dict[str, bytes] = {}
            try:
                with self._db.transaction():
                    record = step(self, pending)
            except sqlite3.Error as exc:
                raise AuditWriteError(f"audit record not written: {_explain(exc)}") from exc
            self._pseudonyms.committed(pending)
            if record is not None:
                self._committed = max(self._committed, record.seq)
        if record is not None and self._on_commit is not None:
            self._on_commit(record.seq)
        self.flush()
        return record

    def _transaction(self, step) -> None:
        try:
            with self._db.transaction():
                step()
        except sqlite3.Error as exc:
            raise AuditWriteError(_explain(exc)) from exc

    # -- reading ---------------------------------------------------------

    def head(self) -> AuditRecord | None:
        """The last record, or None for an empty log."""
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        return AuditRecord.from_row(row) if row else None

    def get(self, record_id: str) -> AuditRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM records WHERE id = ?", (record_id,)).fetchone()
        return AuditRecord.from_row(row) if row else None

    def find(self, reference: str) -> AuditRecord | None:
        """The record a reference names: its full id, or a start of it (``references.SHORTEST`` characters or
        more) that only one record has. Raises ``ReferenceProblem`` for a malformed or ambiguous one."""
        prefix = references.parse(reference)
        low, high = references.prefix_range(prefix)
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM records WHERE id >= ? AND id < ? ORDER BY id LIMIT 6",
                                      (low, high)).fetchall()
        found = references.one(prefix, [row[1] for row in rows])
        return next(AuditRecord.from_row(row) for row in rows if row[1] == found) if found else None

    def records(self, *, start: datetime | None = None, end: datetime | None = None,
                after_seq: int = 0, types: tuple[str, ...] | None = None) -> Iterator[AuditRecord]:
        """Records in order, optionally within [start, end) and of the given types."""
        for row in self.rows(start=start, end=end, after_seq=after_seq, types=types):
            yield AuditRecord.from_row(row)

    def rows(self, *, start=None, end=None, after_seq: int = 0, types=None, conn=None) -> list[tuple]:
        """Raw stored rows (seq, id, at, type, body, prev, hash), for fast readers (``conn``: a snapshot)."""
        where, args = ["seq > ?"], [after_seq]
        if start is not None:
            where.append("at >= ?")
            args.append(format_time(start))
        if end is not None:
            where.append("at < ?")
            args.append(format_time(end))
        if types:
            where.append(f"type IN ({', '.join('?' * len(types))})")
            args.extend(types)
            if "decision" not in types:
                # Rare types (grants, approvals, purges): read them through the type index. SQLite
                # would walk the whole table by seq instead (0.15 s against 0.4 ms for a million records);
                # the unary + keeps it from choosing the primary key.
                where[0] = "+seq > ?"
        sql = f"SELECT {_COLUMNS} FROM records WHERE {' AND '.join(where)} ORDER BY seq"
        if conn is not None:
            return conn.execute(sql, args).fetchall()
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]

    def pupil_lookup(self, pupil_ids) -> dict[str, str]:
        """Pseudonym -> pupil id, for pupils not erased (used by reports a leader asks for)."""
        with self._lock:
            return self._pseudonyms.lookup(pupil_ids)

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A separate read-only connection for long reads (verification, reports).

        In WAL mode readers never block the writer, so a report over a year
        of records does not hold up a teacher's post while it runs.
        """
        db = SQLiteDatabase.open_read_only(self.path)
        try:
            db.execute("BEGIN")  # one consistent view for the whole read
            yield db.connection
        finally:
            db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for the verifier, the purge and the job state (hold ``lock``)."""
        return self._conn

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def transaction(self):
        """One write transaction on ``connection`` beside the records (the job state); it holds ``lock``."""
        return self._db.transaction()

    def _meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return f"{text} (another process holds the audit database's write lock)"
    if "readonly" in lowered or "read-only" in lowered:
        return f"{text} (the audit database or its folder is read-only)"
    if "unable to open" in lowered:
        return f"{text} (the audit database or its folder is read-only or missing for this user)"
    if "full" in lowered or "disk i/o" in lowered:
        return f"{text} (the disk is full or failing)"
    return text
