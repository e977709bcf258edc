"""One open database, and what a store may ask of it: statements, a write transaction, schema bookkeeping.

``Database`` is the interface every store uses; ``SQLiteDatabase`` is the
embedded backend (``PostgreSQLDatabase``, in postgresql.py, the server one).
It opens a file owner-only (folders ``0700``, the file
``0600``) in write-ahead-log mode with a busy timeout, and serialises the
threads that share its one connection with ``lock``.
"""

from __future__ import annotations

import abc
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any


class Busy(Exception):
    """Another process holds the database's write lock and the caller asked not to wait for it."""


class Database(abc.ABC):
    """One open database, shared by a store's threads (hold ``lock`` across statements that belong together)."""

    path: Path
    lock: threading.RLock
    # Which SQL dialect the statements run in, for the few that differ ("sqlite", "postgresql").
    dialect: str
    # The backend's own errors: a store catches these to turn them into its "unavailable" error.
    errors: tuple[type[BaseException], ...]
    # The subset raised when a constraint (unique, foreign key, check) refuses a write.
    integrity_errors: tuple[type[BaseException], ...]

    @abc.abstractmethod
    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """Run one statement; returns a cursor (``fetchone``, ``fetchall``, ``rowcount``, ``lastrowid``)."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> Any:
        """Run one statement once per row of parameters."""

    @abc.abstractmethod
    def transaction(self, *, wait: bool = True) -> AbstractContextManager[None]:
        """A write transaction under ``lock``: committed if the block ends, rolled back if it raises.

        The write lock is taken at the start, so two processes never both act
        on what they read inside it. ``wait=False``: raise ``Busy`` at once
        rather than wait for another process's write to end.
        """

    @abc.abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether the database has a table of this name."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The number of schema migrations the database says it has (0 for a new one)."""

    @abc.abstractmethod
    def set_schema_version(self, version: int) -> None:
        """Record the number of applied migrations, inside the caller's transaction."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection; the database cannot be used afterwards."""


class SQLiteDatabase(Database):
    """A SQLite file on one connection, in autocommit mode: every write is an explicit ``transaction``."""

    dialect = "sqlite"
    errors = (sqlite3.Error,)
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self.connection = connection
        self.path = path
        self.lock = threading.RLock()
        self._busy_ms = int(connection.execute("PRAGMA busy_timeout").fetchone()[0])

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_s: float = 5.0, pragmas: Iterable[str] = ()) -> "SQLiteDatabase":
        """Open the file at ``path`` (creating it and its folders owner-only) in WAL mode, then set ``pragmas``.

        Raises ``OSError`` if the file cannot be made, ``sqlite3.Error`` if it cannot be opened.
        """
        path = Path(path)
        create_private(path)
        # isolation_level=None: transactions are opened explicitly, so each
        # write is exactly one transaction and nothing is left pending.
        connection = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        try:
            deadline = time.monotonic() + busy_timeout_s
            _while_busy(lambda: connection.execute("PRAGMA journal_mode=WAL").fetchone(), deadline)
            for pragma in pragmas:
                _while_busy(lambda p=pragma: connection.execute(f"PRAGMA {p}").fetchone(), deadline)
            return cls(connection, path)
        except BaseException:
            connection.close()
            raise

    @classmethod
    def open_read_only(cls, path: str | Path, *, busy_timeout_s: float = 5.0) -> "SQLiteDatabase":
        """Open an existing file for reading only (a report's snapshot); nothing is created."""
        path = Path(path)
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout_s,
                                     check_same_thread=False)
        try:
            return cls(connection, path)
        except BaseException:
            connection.close()
            raise

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> sqlite3.Cursor:
        return self.connection.executemany(sql, rows)

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[None]:
        with self.lock:
            connection = self.connection
            if not wait:
                connection.execute("PRAGMA busy_timeout=0")
            try:
                try:
                    connection.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if not wait and _is_busy(exc):
                        raise Busy(str(exc)) from exc
                    raise
                try:
                    yield
                    connection.execute("COMMIT")
                except BaseException:
                    _rollback(connection)
                    raise
            finally:
                if not wait:
                    try:
                        connection.execute(f"PRAGMA busy_timeout={self._busy_ms}")
                    except sqlite3.Error:
                        pass  # a closed connection: the next statement says so

    def has_table(self, name: str) -> bool:
        return self.connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                       (name,)).fetchone() is not None

    def schema_version(self) -> int:
        return int(self.connection.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self.connection.execute(f"PRAGMA user_version = {int(version)}")

    def close(self) -> None:
        with self.lock:
            self.connection.close()


def create_private(path: Path) -> None:
    """Create the missing folders (0700) and the file (0600); an existing file loses any group or other access.

    The owner's own bits of an existing file are left alone: a file made
    read-only on purpose stays read-only.
    """
    create_private_folder(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
        return
    os.close(fd)
    os.chmod(path, 0o600)


def create_private_folder(folder: Path) -> None:
    """Create ``folder`` and any missing parents, each ``0700`` whatever the umask; existing ones are left alone."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(mode=0o700, exist_ok=True)
        os.chmod(new, 0o700)


def _rollback(connection: sqlite3.Connection) -> None:
    try:
        connection.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # nothing to roll back (SQLite already did, or BEGIN never took hold): the first error stands


def _while_busy(statement, deadline: float):
    """Run ``statement``, again while the file is locked, until ``deadline``.

    Switching a new file to WAL needs it to itself, and SQLite answers
    "database is locked" at once, without its busy timeout, when another
    process is opening the same new file (the proxy and a command starting
    together): so the wait is done here.
    """
    pause = 0.005
    while True:
        try:
            return statement()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
