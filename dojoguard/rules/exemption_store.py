"""The headteacher's exemptions kept on the trust's server (``storage: postgresql://...``), and each proxy's copy.

With stores on the server, the school's exemptions file is kept there, in
the school's own ``exemptions_<school>`` schema, as one document with a
version: ``dojoguard exempt grant`` and ``revoke`` (from any machine with the
school's settings) change it there, under the schema's write lock, through
the same checked, atomic rewrite as the file (``grants.py``). Each proxy keeps
``rules.exemptions`` as a copy of it (``ExemptionsCopy.sync``, from the
proxy's background work, off the event loop): when the server's document
differs from the file, the file is rewritten, and the proxy's usual reload
applies it, with its usual check that every exemption in force was granted on
record (``proxy/exemption_checks.py``). An edit to the file by hand is undone
at the next look.

Exemptions only ever relax the rules, so a copy that cannot be confirmed is
not trusted for long: the proxy suspends every exemption once the server has
not answered for ``consent.max_staleness_s`` (a revocation could be waiting
there), and applies them again when it does.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from dojoguard import yamlfile
from dojoguard.rules.exemptions import Exemptions, load_exemptions, parse_exemptions
from dojoguard.rules.grants import write_atomically
from dojoguard.storage import Database, Migration, migrations
from dojoguard.storage.location import Storage
from dojoguard.storage.postgresql import close_quietly

T = TypeVar("T")


def _m1_document(db: Database) -> None:
    # One row: the whole exemptions file, as `exempt grant` wrote it, and how many times it was changed.
    db.execute("CREATE TABLE exemptions_file (id INTEGER PRIMARY KEY CHECK (id = 1), text TEXT NOT NULL, "
               "version INTEGER NOT NULL, updated_at TEXT NOT NULL)")
    # What each grant and revocation recorded (its audit event's type and fields), so that every proxy can
    # put it on its own record before it applies the document (proxy/exemption_checks.py).
    db.execute("CREATE TABLE exemptions_trail (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, fields TEXT NOT NULL, "
               "at TEXT NOT NULL)")


MIGRATIONS = (Migration("1-exemptions-file", _m1_document),)


class ExemptionStoreUnavailable(RuntimeError):
    """The exemptions are kept on the trust's server, and the server cannot be reached."""


def open_store(storage: Storage, *, statement_timeout_s: float | None = 30.0) -> Database:
    """The school's exemptions schema on the server, migrated."""
    try:
        db = storage.open("exemptions", statement_timeout_s=statement_timeout_s)
    except Exception as exc:  # psycopg's errors: say which store and where, then why
        from dojoguard.storage.postgresql import redacted

        raise ExemptionStoreUnavailable(f"cannot reach the exemptions on the trust's server "
                                        f"({redacted(storage.dsn)}, schema {storage.schema('exemptions')}): "
                                        f"{exc}") from exc
    try:
        migrations.migrate(db, MIGRATIONS, what="the exemptions on the trust's server")
    except BaseException:
        db.close()
        raise
    return db


def read(db: Database) -> tuple[str | None, int]:
    """The server's document and its version; (None, 0) before the first grant."""
    row = db.execute("SELECT text, version FROM exemptions_file WHERE id = 1").fetchone()
    return (row[0], int(row[1])) if row else (None, 0)


def edit(storage: Storage, local: Path, change: Callable[[Path], T],
         trail: list[tuple[str, dict[str, Any]]]) -> T:
    """Apply ``change`` (``grants.grant`` or ``revoke`` on a path) to the server's document, then copy it here.

    The document is written to a file beside ``local``, changed there by the
    same code that changes a school's own file, read back and stored with the
    next version, all inside one transaction under the schema's write lock:
    two leaders' grants never lose each other. The first edit starts from
    this machine's file, so exemptions granted before the school moved to
    the server are kept. ``trail`` is filled by ``change`` with the audit
    events it recorded; they are kept with the document, in the same
    transaction, for the proxies to put on their own record.
    """
    db = open_store(storage)
    try:
        with db.transaction():
            text, version = read(db)
            if text is None:
                text = local.read_text("utf-8") if local.exists() else ""
            scratch = _scratch(local, text)
            try:
                result = change(scratch)
                changed = scratch.read_text("utf-8")
            finally:
                scratch.unlink(missing_ok=True)
            db.execute("INSERT INTO exemptions_file (id, text, version, updated_at) VALUES (1, ?, ?, ?) "
                       "ON CONFLICT (id) DO UPDATE SET text = excluded.text, version = excluded.version, "
                       "updated_at = excluded.updated_at",
                       (changed, version + 1, datetime.now(UTC).isoformat()))
            for event, fields in trail:
                db.execute("INSERT INTO exemptions_trail (type, fields, at) VALUES (?, ?, ?)",
                           (event, json.dumps(fields, sort_keys=True), datetime.now(UTC).isoformat()))
    finally:
        db.close()
    write_atomically(local, changed)
    return result


def _scratch(local: Path, text: str) -> Path:
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.server.", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(name)


def change(config: Any, change_file: Callable[[Path], T], trail: list[tuple[str, dict[str, Any]]]) -> T:
    """``change_file`` (a grant or revocation on a path) the school's exemptions where the settings keep them:
    the file ``rules.exemptions``, or the document on the trust's server (``edit``)."""
    path = config.path("rules", "exemptions")
    storage = Storage.from_config(config)
    if not storage.central:
        return change_file(path)
    return edit(storage, path, change_file, trail)


def current(config: Any, *, max_days: int | None = None) -> Exemptions:
    """The school's exemptions as they stand: the file, or the document on the trust's server (before its
    first grant there, the file)."""
    path = config.path("rules", "exemptions")
    storage = Storage.from_config(config)
    if storage.central:
        db = open_store(storage)
        try:
            text, _ = read(db)
        finally:
            db.close()
        if text is not None:
            return parse_exemptions(yamlfile.parse(text, f"{path.name} on the trust's server"), max_days=max_days)
    return load_exemptions(path, max_days=max_days)


class ExemptionsCopy:
    """Keeps ``local`` equal to the school's exemptions on the server; ``sync`` is one look (blocking)."""

    def __init__(self, storage: Storage, local: Path, *, max_staleness_s: float):
        self.storage = storage
        self.local = Path(local)
        self.max_staleness_s = float(max_staleness_s)
        # Since the proxy started, until the first answer: a copy is never trusted longer than the bound.
        self.confirmed_at = time.monotonic()
        self._db: Database | None = None

    def sync(self, *, recorded: Callable[[], set[tuple[str, str]]],
             record: Callable[[str, dict[str, Any]], None]) -> bool:
        """Look at the server once; rewrite the file when it differs. Returns whether the file was rewritten.

        Before the file is rewritten, each grant and revocation on the server
        not yet on this proxy's record (``recorded``: (event type, exemption
        id) pairs in its audit log) is recorded with ``record``, exactly as
        the command recorded it where it ran: so the proxy's check finds every
        exemption it applies on record. Raises what the server or the audit
        log raised (the connection is opened again at the next look).
        """
        try:
            if self._db is None:
                self._db = open_store(self.storage)
            text, _ = read(self._db)
            self.confirmed_at = time.monotonic()
            if text is None:
                return False  # nothing granted on the server yet: the file here stands until the first grant
            current = self.local.read_text("utf-8") if self.local.exists() else None
            if current == text:
                return False
            # Only when the document differs from the file: the records it brings.
            trail = self._db.execute("SELECT type, fields FROM exemptions_trail ORDER BY seq").fetchall()
        except Exception:
            self.close()
            raise
        known = recorded()
        for event, fields_text in trail:
            fields = json.loads(fields_text)
            if (event, fields.get("exemption")) not in known:
                record(event, fields)
                known.add((event, fields.get("exemption")))
        write_atomically(self.local, text)
        return True

    @property
    def stale(self) -> bool:
        """Whether the server has not answered for longer than the bound."""
        return time.monotonic() - self.confirmed_at > self.max_staleness_s

    def close(self) -> None:
        close_quietly(self._db)
        self._db = None
