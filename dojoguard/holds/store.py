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

from dojoguard.holds import seal as seals
from dojoguard.rules.action import Action
from dojoguard.rules.decision import Decision


class HoldKind(enum.StrEnum):
    HOLD = "hold"
    DEFER = "defer"


class HoldState(enum.StrEnum):
    PENDING = "pending"      # waiting for a leader (hold) or for its time (defer)
    APPROVED = "approved"    # a leader approved it; the proxy sends it on next
    FAILED = "failed"        # every release attempt failed; listed for leaders
    TAMPERED = "tampered"    # changed behind the commands' back: never sent, only rejected or expired


class HoldError(Exception):
    """A held item that cannot be found or cannot take the step asked for."""


class HoldTampered(HoldError):
    """A row whose seal does not match: it was changed by something other than dojoguard."""

    def __init__(self, item_id: str, why: str, found: dict[str, Any]):
        super().__init__(f"item {item_id} was changed outside dojoguard ({why}); it will not be sent. "
                         "Reject it, and find out who can write the hold store")
        self.item_id = item_id
        self.why = why
        # The row's identifying columns as found (strings, never the request).
        self.found = found


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
    # The id of the audit record of the leader's approval (approved holds only).
    approval: str | None = None

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
    content BLOB NOT NULL,
    approval TEXT,
    seal TEXT
);
CREATE INDEX IF NOT EXISTS items_due ON items (state, release_at);
CREATE UNIQUE INDEX IF NOT EXISTS items_dedupe ON items (dedupe_key);
"""

_COLUMNS = ("id, kind, state, created_at, release_at, decision_id, teacher_id, class_id, action_kind, "
            "channel, rule_ids, reason, attempts, last_error, request, length(content), approval")
# Every stored column, in order: what a seal covers.
_ALL = ("id", "kind", "state", "created_at", "release_at", "decision_id", "teacher_id", "class_id", "action_kind",
        "channel", "rule_ids", "reason", "attempts", "last_error", "dedupe_key", "request", "content", "approval",
        "seal")


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

    def __init__(self, connection: sqlite3.Connection, path: Path, key: bytes):
        self._db = connection
        self._lock = threading.Lock()
        self._key = key
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, key_path: str | Path | None = None) -> "HoldStore":
        """Open (or create) the store; ``key_path`` is its sealing key (default: ``keys/`` beside it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key, key_is_new = seals.load_or_create(Path(key_path) if key_path else seals.key_path_for(None, path))
        if not path.exists():
            # Created owner-only: it holds whole requests, cookies included.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        store = cls(db, path, key)
        store._upgrade(key_is_new)
        return store

    def _upgrade(self, key_is_new: bool) -> None:
        """Add the approval and seal columns to a store made before rows were sealed.

        Rows already waiting are sealed as they are only when the key is new too,
        i.e. on the first start of a version that seals. Columns missing while the
        key already exists mean someone removed them: the rows stay unsealed, and
        so are never sent.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
                missing = [c for c in ("approval", "seal") if c not in columns]
                for column in missing:
                    self._db.execute(f"ALTER TABLE items ADD COLUMN {column} TEXT")
                if missing and key_is_new:
                    for row in self._db.execute(f"SELECT {', '.join(_ALL)} FROM items").fetchall():
                        doc = dict(zip(_ALL, row))
                        self._db.execute("UPDATE items SET seal = ? WHERE id = ?",
                                         (seals.seal(self._key, doc), doc["id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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
            "attempts": 0,
            "last_error": None,
            "approval": None,
        }
        row["seal"] = seals.seal(self._key, row)
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

    def sealed(self, item_id: str) -> tuple[HeldItem, StoredRequest]:
        """The item and its request, read together, only if the row's seal matches (else ``HoldTampered``)."""
        with self._lock:
            doc = self._row(item_id)
        self._check(doc)
        item = _item(tuple(doc[c] for c in _ALL[:14]) + (doc["request"], len(doc["content"]), doc["approval"]))
        request = json.loads(doc["request"])
        return item, StoredRequest(**{**request, "headers": tuple(tuple(h) for h in request["headers"]),
                                      "content": doc["content"]})

    def verify(self, item_id: str) -> None:
        """Raise ``HoldTampered`` unless the row's seal matches."""
        with self._lock:
            doc = self._row(item_id)
        self._check(doc)

    def list(self, *, kind: HoldKind | None = None, state: HoldState | None = None) -> list[HeldItem]:
        query, args = f"SELECT {_COLUMNS} FROM items WHERE 1=1", []
        if kind:
            query, args = query + " AND kind = ?", args + [str(kind)]
        if state:
            query, args = query + " AND state = ?", args + [str(state)]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, id", args).fetchall()
        return [_item(r) for r in rows]

    def due_ids(self, now: datetime) -> list[str]:
        """Ids of the rows that say they are due: deferred ones whose time has come, approved holds.

        Only ids: what a row says is believed only once ``sealed`` has checked it.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM items WHERE (state = ? AND kind = ? AND release_at <= ?) "
                "OR (state = ? AND (release_at IS NULL OR release_at <= ?)) ORDER BY created_at, id",
                (str(HoldState.PENDING), str(HoldKind.DEFER), now.astimezone(UTC).isoformat(),
                 str(HoldState.APPROVED), now.astimezone(UTC).isoformat()),
            ).fetchall()
        return [r[0] for r in rows]

    def due(self, now: datetime) -> list[HeldItem]:
        """Items to send now, as their rows say (the releaser checks each seal before sending)."""
        return [self.get(i) for i in self.due_ids(now)]

    def approve(self, item_id: str, approval: str) -> HeldItem:
        """Mark a pending hold approved; ``approval`` is the id of the audit record of the leader's approval."""
        if not approval:
            raise HoldError("an approval must name its audit record")

        def step(doc):
            if doc["kind"] != HoldKind.HOLD or doc["state"] != HoldState.PENDING:
                raise HoldError(f"item {item_id} is a {doc['kind']} in state {doc['state']}; "
                                "only pending holds can be approved")
            return {"state": str(HoldState.APPROVED), "approval": approval}

        self._change(item_id, step)
        return self.get(item_id)

    def record_attempt(self, item_id: str, error: str, *, give_up: bool, retry_at: datetime) -> HeldItem:
        """A failed release: counted, its error kept, retried not before ``retry_at`` (or given up)."""
        self._change(item_id, lambda doc: {
            "attempts": doc["attempts"] + 1, "last_error": error[:500],
            "release_at": retry_at.astimezone(UTC).isoformat(),
            "state": str(HoldState.FAILED) if give_up else doc["state"]})
        return self.get(item_id)

    def retry(self, item_id: str, now: datetime) -> HeldItem:
        """Put a failed item back in the queue (a leader's decision after fixing the cause)."""
        def step(doc):
            if doc["state"] != HoldState.FAILED:
                raise HoldError(f"item {item_id} has not failed; nothing to retry")
            hold = doc["kind"] == HoldKind.HOLD
            return {"state": str(HoldState.APPROVED if hold else HoldState.PENDING), "attempts": 0,
                    "release_at": None if hold else now.astimezone(UTC).isoformat()}

        self._change(item_id, step)
        return self.get(item_id)

    def mark_tampered(self, item_id: str) -> None:
        """Set a tampered row aside for good: never due again, only rejected or expired.

        It is sealed as found (the change is already recorded), so a later change
        by hand, such as setting it back to approved, shows again.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                doc = self._row(item_id)
                doc["state"] = str(HoldState.TAMPERED)
                doc["seal"] = seals.seal(self._key, doc) if isinstance(doc["content"], bytes) else None
                self._db.execute("UPDATE items SET state = ?, seal = ? WHERE id = ?",
                                 (doc["state"], doc["seal"], item_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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

    def _row(self, item_id: str) -> dict[str, Any]:
        # Callers hold the lock.
        row = self._db.execute(f"SELECT {', '.join(_ALL)} FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise HoldError(f"no held or queued item {item_id!r} (it may have been released, rejected or expired)")
        return dict(zip(_ALL, row))

    def _check(self, doc: dict[str, Any]) -> None:
        if seals.matches(self._key, doc):
            return
        why = "no seal" if doc.get("seal") is None else "its seal does not match"
        found = {k: None if doc[k] is None else str(doc[k])[:100]
                 for k in ("kind", "state", "decision_id", "teacher_id", "class_id", "release_at", "approval")}
        raise HoldTampered(doc["id"], why, found)

    def _change(self, item_id: str, step) -> None:
        """Check the row's seal, apply ``step(row) -> new values`` and seal it again, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                doc = self._row(item_id)
                self._check(doc)
                doc.update(step(doc))
                doc["seal"] = seals.seal(self._key, doc)
                columns = [c for c in _ALL if c != "id"]
                self._db.execute(f"UPDATE items SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                                 (*(doc[c] for c in columns), item_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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
     attempts, last_error, request, length, approval) = row
    try:
        headers = json.loads(request)["headers"]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    except (TypeError, ValueError, KeyError, AttributeError):
        # Not what dojoguard writes: listed (as tampered) so it can be rejected; never sent.
        content_type, kind, state = None, HoldKind.HOLD, "unreadable"
    rule_ids = _json_list(rules)
    # dojoguard writes no other kinds or states: a row saying otherwise was edited by hand,
    # and is listed as such rather than breaking `held list` for every other item.
    known = kind in HoldKind._value2member_map_ and state in HoldState._value2member_map_
    return HeldItem(
        id=item_id,
        kind=HoldKind(kind) if kind in HoldKind._value2member_map_ else HoldKind.HOLD,
        state=HoldState(state) if known else HoldState.TAMPERED,
        created_at=datetime.fromisoformat(created),
        release_at=datetime.fromisoformat(release) if release else None,
        decision_id=decision_id,
        teacher_id=teacher,
        class_id=klass,
        action_kind=action_kind,
        channel=channel,
        rule_ids=rule_ids,
        reason=reason,
        attempts=attempts,
        last_error=last_error,
        content_type=content_type,
        content_length=length,
        approval=approval,
    )


def _json_list(text) -> tuple[str, ...]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()
