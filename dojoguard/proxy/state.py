"""The proxy's own small SQLite file: sessions, learned skills and the discovery summary.

Owner-only permissions; schema changes are named, ordered migrations recorded
in a table, each in a transaction. Nothing here holds message text, names of
pupils, images or cookies (sessions are stored as keyed hashes).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from pathlib import Path


def _m1_sessions(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE sessions (
        session_hash TEXT PRIMARY KEY, teacher_id TEXT NOT NULL, teacher_name TEXT, learned_at TEXT NOT NULL)""")


def _m2_skills(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE skills (
        class_id TEXT NOT NULL, skill_id TEXT NOT NULL, name TEXT, value INTEGER NOT NULL,
        learned_at TEXT NOT NULL, PRIMARY KEY (class_id, skill_id))""")


def _m3_discovery(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE unclassified (
        method TEXT NOT NULL, host TEXT NOT NULL, path TEXT NOT NULL, content_type TEXT NOT NULL,
        skeleton TEXT NOT NULL, count INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
        PRIMARY KEY (method, host, path, content_type, skeleton))""")


MIGRATIONS = (("1-sessions", _m1_sessions), ("2-skills", _m2_skills), ("3-discovery", _m3_discovery))


class State:
    """One connection shared by the proxy's stores; calls are serialised by a lock (use from threads)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self._migrate()
        self.key = self._key()

    def _migrate(self) -> None:
        with self.lock:
            self.db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY)")
            done = {row[0] for row in self.db.execute("SELECT name FROM migrations")}
            for name, migrate in MIGRATIONS:
                if name in done:
                    continue
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    migrate(self.db)
                    self.db.execute("INSERT INTO migrations (name) VALUES (?)", (name,))
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise

    def _key(self) -> bytes:
        """The secret that keys session hashes, kept beside the database, owner-only."""
        path = self.path.with_suffix(".key")
        try:
            return bytes.fromhex(path.read_text("ascii").strip())
        except FileNotFoundError:
            key = secrets.token_bytes(32)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key.hex())
            return key

    def close(self) -> None:
        with self.lock:
            self.db.close()
