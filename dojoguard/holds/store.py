"""Held and deferred requests: kept in their own SQLite file until released, rejected or expired.

A held request waits for a leader (``dojoguard held approve``); a deferred one
waits for its rule's window to open. Either way the original request, headers
and cookies included, is kept here (and nowhere else) so it can be sent on
unchanged, and deleted as soon as it is no longer needed. The audit log keeps
only the decision trail.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from dojoguard.rules.action import Action
from dojoguard.rules.decision import Decision


class HoldKind(enum.StrEnum):
    HOLD = "hold"
    DEFER = "defer"


class HoldState(enum.StrEnum):
    PENDING = "pending"      # waiting for a leader (hold) or for its time (defer)
    APPROVED = "approved"    # a leader approved it; the proxy sends it on next
    FAILED = "failed"        # every release attempt failed; listed for leaders


class HoldError(Exception):
    """A held item that cannot be found or cannot take the step asked for."""


@dataclass(frozen=True)
class StoredRequest:
    """An HTTP request exactly as the teacher's device sent it."""

    method: str
    scheme: str
    host: str
    port: int
    path: str
    http_version: str
    headers: tuple[tuple[str, str], ...]
    content: bytes
    client_address: str

    @property
    def url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.path}"

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


@dataclass(frozen=True)
class HeldItem:
    id: str
    kind: HoldKind
    state: HoldState
    created_at: datetime
    release_at: datetime | None
    decision_id: str
    teacher_id: str | None
    class_id: str | None
    action_kind: str
    channel: str
    rule_ids: tuple[str, ...]
    reason: str
    attempts: int
    last_error: str | None
    content_type: str | None
    content_length: int
    is_duplicate: bool = False

    def summary(self) -> dict[str, Any]:
        """What a leader sees: who, what, when, why. No message text, no image."""
        return {
            "id": self.id,
            "kind": str(self.kind),
            "state": str(self.state),
            "created_at": self.created_at.isoformat(),
            "release_at": self.release_at.isoformat() if self.release_at else None,
            "decision_id": self.decision_id,
            "teacher_id": self.teacher_id,
            "class_id": self.class_id,
            "action": self.action_kind,
            "channel": self.channel,
            "rules": list(self.rule_ids),
            "reason": self.reason,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "content_type": self.content_type,
            "content_length": self.content_length,
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    release_at TEXT,
    decision_id TEXT NOT NULL,
    teacher_id TEXT,
    class_id TEXT,
    action_kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    rule_ids TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    dedupe_key TEXT NOT NULL,
    request TEXT NOT NULL,
    content BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS items_due ON items (state, release_at);
CREATE UNIQUE INDEX IF NOT EXISTS items_dedupe ON items (dedupe_key);
"""

_COLUMNS = ("id, kind, state, created_at, release_at, decision_id, teacher_id, class_id, action_kind, "
            "channel, rule_ids, reason, attempts, last_error, request, length(content)")


def dedupe_key(kind: HoldKind, request: StoredRequest, teacher_id: str | None) -> str:
    """Same teacher, same call, same body: a retry of something already queued."""
    digest = hashlib.sha256()
    for part in (str(kind), teacher_id or request.client_address, request.method, request.host,
                 request.path.split("?", 1)[0]):
        digest.update(part.encode() + b"\0")
    digest.update(request.content)
    return digest.hexdigest()


class HoldStore:
    """The held/deferred store. Thread-safe: the proxy calls it from worker threads."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self._db = connection
        self._lock = threading.Lock()
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> "HoldStore":
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # Created owner-only: it holds whole requests, cookies included.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        return cls(db, path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def keep(self, kind: str | HoldKind, request: StoredRequest, decision: Decision, action: Action,
             release_at: datetime | None) -> HeldItem:
        """Store a request; a retry of one already waiting returns that one, marked duplicate."""
        kind = HoldKind(kind)
        key = dedupe_key(kind, request, action.teacher_id)
        strictest = [m for m in decision.matches if m.verdict == decision.verdict] or list(decision.matches)
        row = {
            "id": secrets.token_hex(6),
            "kind": str(kind),
            "state": str(HoldState.PENDING),
            "created_at": decision.at.astimezone(UTC).isoformat(),
            "release_at": release_at.astimezone(UTC).isoformat() if release_at else None,
            "decision_id": decision.decision_id,
            "teacher_id": action.teacher_id,
            "class_id": action.class_id,
            "action_kind": str(action.kind),
            "channel": str(action.channel),
            "rule_ids": json.dumps([m.rule_id for m in strictest]),
            "reason": "; ".join(m.reason for m in strictest),
            "dedupe_key": key,
            "request": json.dumps(_request_doc(request)),
            "content": request.content,
        }
        with self._lock:
            existing = self._db.execute(f"SELECT {_COLUMNS} FROM items WHERE dedupe_key = ?", (key,)).fetchone()
            if existing:
                item = _item(existing)
                return HeldItem(**{**item.__dict__, "is_duplicate": True})
            self._db.execute(
                f"INSERT INTO items ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            )
        return self.get(row["id"])

    def get(self, item_id: str) -> HeldItem:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise HoldError(f"no held or queued item {item_id!r} (it may have been released, rejected or expired)")
        return _item(row)

    def request(self, item_id: str) -> StoredRequest:
        """The original request, for sending on or for a reviewer's export."""
        with self._lock:
            row = self._db.execute("SELECT request, content FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise HoldError(f"no held or queued item {item_id!r}")
        doc = json.loads(row[0])
        return StoredRequest(**{**doc, "headers": tuple(tuple(h) for h in doc["headers"]), "content": row[1]})

    def list(self, *, kind: HoldKind | None = None, state: HoldState | None = None) -> list[HeldItem]:
        query, args = f"SELECT {_COLUMNS} FROM items WHERE 1=1", []
        if kind:
            query, args = query + " AND kind = ?", args + [str(kind)]
        if state:
            query, args = query + " AND state = ?", args + [str(state)]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, id", args).fetchall()
        return [_item(r) for r in rows]

    def due(self, now: datetime) -> list[HeldItem]:
        """Items to send now: deferred ones whose time has come, and approved holds."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM items WHERE (state = ? AND kind = ? AND release_at <= ?) "
                "OR (state = ? AND (release_at IS NULL OR release_at <= ?)) ORDER BY created_at, id",
                (str(HoldState.PENDING), str(HoldKind.DEFER), now.astimezone(UTC).isoformat(),
                 str(HoldState.APPROVED), now.astimezone(UTC).isoformat()),
            ).fetchall()
        return [_item(r) for r in rows]

    def approve(self, item_id: str) -> HeldItem:
        item = self.get(item_id)
        if item.kind != HoldKind.HOLD or item.state != HoldState.PENDING:
            raise HoldError(f"item {item_id} is a {item.kind} in state {item.state}; only pending holds can be approved")
        self._set(item_id, state=str(HoldState.APPROVED))
        return self.get(item_id)

    def record_attempt(self, item_id: str, error: str, *, give_up: bool, retry_at: datetime) -> HeldItem:
        """A failed release: counted, its error kept, retried not before ``retry_at`` (or given up)."""
        with self._lock:
            self._db.execute(
                "UPDATE items SET attempts = attempts + 1, last_error = ?, release_at = ?, "
                "state = CASE WHEN ? THEN ? ELSE state END WHERE id = ?",
                (error[:500], retry_at.astimezone(UTC).isoformat(), give_up, str(HoldState.FAILED), item_id),
            )
        return self.get(item_id)

    def retry(self, item_id: str, now: datetime) -> HeldItem:
        """Put a failed item back in the queue (a leader's decision after fixing the cause)."""
        item = self.get(item_id)
        if item.state != HoldState.FAILED:
            raise HoldError(f"item {item_id} has not failed; nothing to retry")
        state = HoldState.APPROVED if item.kind == HoldKind.HOLD else HoldState.PENDING
        self._set(item_id, state=str(state), attempts=0, release_at=None if item.kind == HoldKind.HOLD
                  else now.astimezone(UTC).isoformat())
        return self.get(item_id)

    def remove(self, item_id: str) -> HeldItem:
        """Delete an item and its request (after release, rejection or expiry)."""
        item = self.get(item_id)
        with self._lock:
            self._db.execute("DELETE FROM items WHERE id = ?", (item_id,))
        return item

    def expired(self, now: datetime, max_age: timedelta) -> list[HeldItem]:
        cutoff = (now - max_age).astimezone(UTC).isoformat()
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM items WHERE created_at < ? ORDER BY created_at",
                                    (cutoff,)).fetchall()
        return [_item(r) for r in rows]

    def _set(self, item_id: str, **values) -> None:
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE items SET {assignments} WHERE id = ?", (*values.values(), item_id))

    def __iter__(self) -> Iterator[HeldItem]:
        return iter(self.list())


def _request_doc(request: StoredRequest) -> dict[str, Any]:
    return {
        "method": request.method,
        "scheme": request.scheme,
        "host": request.host,
        "port": request.port,
        "path": request.path,
        "http_version": request.http_version,
        "headers": [list(h) for h in request.headers],
        "client_address": request.client_address,
    }


def _item(row) -> HeldItem:
    (item_id, kind, state, created, release, decision_id, teacher, klass, action_kind, channel, rules, reason,
     attempts, last_error, request, length) = row
    headers = json.loads(request)["headers"]
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    return HeldItem(
        id=item_id,
        kind=HoldKind(kind),
        state=HoldState(state),
        created_at=datetime.fromisoformat(created),
        release_at=datetime.fromisoformat(release) if release else None,
        decision_id=decision_id,
        teacher_id=teacher,
        class_id=klass,
        action_kind=action_kind,
        channel=channel,
        rule_ids=tuple(json.loads(rules)),
        reason=reason,
        attempts=attempts,
        last_error=last_error,
        content_type=content_type,
        content_length=length,
    )
