"""Held and deferred requests: kept in a store of their own until released, rejected or expired.

A held request waits for a leader (``dojoguard held approve``); a deferred one
waits for its rule's window to open. Either way the original request, headers
and cookies included, is kept here (and nowhere else) so it can be sent on
unchanged, and deleted as soon as it is no longer needed. The audit log keeps
only the decision trail.

The store is a SQLite file (``HoldStore.open``) or any other ``Database``
(``HoldStore.on``: on PostgreSQL, a school's own ``holds`` schema on the
trust's server). Every statement here is written for both; what differs is
kept to a few lines (the column that keeps notices in the order they were
written) and to the schema's steps (``dojoguard.holds.schema``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from dojoguard import references
from dojoguard.cookies import session_id
from dojoguard.holds import schema
from dojoguard.holds import seal as seals
from dojoguard.rules.action import Action
from dojoguard.rules.decision import Decision
from dojoguard.storage import Database, SQLiteDatabase
from dojoguard.storage.database import create_private_folder


class HoldKind(enum.StrEnum):
    HOLD = "hold"
    DEFER = "defer"


class HoldState(enum.StrEnum):
    PENDING = "pending"      # waiting for a leader (hold) or for its time (defer)
    APPROVED = "approved"    # a leader approved it; the proxy sends it on next
    SENDING = "sending"      # the proxy is sending it now; nothing else may change it
    WAITING_FOR_LOGIN = "waiting-for-login"  # ClassDojo refused the teacher's login; sent when they are back
    UNCERTAIN = "uncertain"  # a send began but its answer never came: it may have arrived; a person decides
    FAILED = "failed"        # ClassDojo refused it, or every attempt failed; listed for leaders
    EXPIRED = "expired"      # waited longer than holds.max_age_days; kept, listed for leaders
    REJECTING = "rejecting"  # a leader's rejection is being recorded; never sent
    TAMPERED = "tampered"    # changed behind the commands' back: never sent, only rejected


# States from which nothing more happens without a person: `held list --failed`.
NEEDS_A_PERSON = (HoldState.FAILED, HoldState.EXPIRED, HoldState.UNCERTAIN)
# States of an item still on its way: a teacher's retry joins it rather than making a second.
OPEN = (HoldState.PENDING, HoldState.APPROVED, HoldState.SENDING, HoldState.WAITING_FOR_LOGIN)


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
    # When its maximum age (holds.max_age_days) started counting: the release time of a
    # deferred item, the approval of a hold, a retry; the time it was kept otherwise.
    waiting_since: datetime | None = None
    # When the last send began (kept for an item left uncertain by a send cut short).
    sending_at: datetime | None = None

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
            "waiting_since": self.waiting_since.isoformat() if self.waiting_since else None,
            "sending_at": self.sending_at.isoformat() if self.sending_at else None,
        }


_COLUMNS = ("id, kind, state, created_at, release_at, decision_id, teacher_id, class_id, action_kind, "
            "channel, rule_ids, reason, attempts, last_error, request, length(content), approval, waiting_since, "
            "sending_at")
_ALL = schema.COLUMNS


def dedupe_key(kind: HoldKind, request: StoredRequest, teacher_id: str | None) -> str:
    """Same teacher, same call, same body: a retry of something already queued."""
    digest = hashlib.sha256()
    for part in (str(kind), teacher_id or request.client_address, request.method, request.host,
                 request.path.split("?", 1)[0]):
        digest.update(part.encode() + b"\0")
    digest.update(request.content)
    return digest.hexdigest()


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


class HoldStore:
    """The held/deferred store. Thread-safe: the proxy calls it from worker threads.

    Every change of an item's state is one transaction that first checks the
    row's seal and its current state, so two processes (the proxy and a
    leader's command, or two proxies sharing a PostgreSQL schema) can never
    both act on one item: a rejection and a send that race are serialised by
    the database's write lock, and the loser is told why.
    """

    def __init__(self, database: Database, path: Path, key: bytes):
        self._db = database
        self._lock = database.lock
        self._key = key
        self.path = path
        # Teachers with something waiting or something to be told, for the proxy's per-write
        # checks (no SQL on the hot path); refreshed by ``refresh_teachers``.
        self.teachers_waiting: frozenset[str] = frozenset()
        self.teachers_to_tell: frozenset[str] = frozenset()

    @classmethod
    def open(cls, path: str | Path, *, key_path: str | Path | None = None) -> "HoldStore":
        """Open (or create) the store's SQLite file; ``key_path`` is its sealing key (default: ``keys/`` beside it)."""
        path = Path(path)
        # Before the key, which goes in a folder beside the store.
        create_private_folder(path.parent)
        key, key_is_new = seals.load_or_create(Path(key_path) if key_path else seals.key_path_for(None, path))
        # Owner-only: it holds whole requests, cookies included. synchronous=FULL is the file's
        # own durability setting; a server database keeps to the server's.
        db = SQLiteDatabase.open(path, busy_timeout_s=10, pragmas=("synchronous=FULL",))
        return cls._start(db, key, key_is_new)

    @classmethod
    def on(cls, database: Database, *, key_path: str | Path) -> "HoldStore":
        """The store in an already opened ``database`` (on PostgreSQL: a school's own ``holds`` schema,
        ``school_schema(school, "holds")``), migrated to this release.

        ``key_path`` is the sealing key's file on this machine (made owner-only
        if missing), never in the database: someone who can write the rows
        must not also hold the key. Every process sharing the database must
        use the same key, or each sees the others' rows as changed by hand.
        The store closes ``database`` when it is closed, or when opening fails.
        """
        try:
            key, key_is_new = seals.load_or_create(Path(key_path))
        except BaseException:
            database.close()
            raise
        return cls._start(database, key, key_is_new)

    @classmethod
    def _start(cls, db: Database, key: bytes, key_is_new: bool) -> "HoldStore":
        """Migrate ``db`` and read who has something waiting; ``db`` is closed if either fails."""
        try:
            schema.migrate(db, key, key_is_new)
            # Where the store is, for messages: the file, or the server and schema (never a password).
            store = cls(db, db.path, key)
            store.refresh_teachers()
        except BaseException:
            db.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- keeping ----------------------------------------------------------------

    def keep(self, kind: str | HoldKind, request: StoredRequest, decision: Decision, action: Action,
             release_at: datetime | None, *, content_key: str | None = None) -> HeldItem:
        """Store a request; a retry of one still on its way returns that one, marked duplicate.

        A retry is the same call with the same body (``dedupe_key``), or the
        same publication (``content_key``: same teacher, text and attachments,
        whatever upload ids or multipart boundaries carry them).
        """
        kind = HoldKind(kind)
        key = dedupe_key(kind, request, action.teacher_id)
        strictest = [m for m in decision.matches if m.verdict == decision.verdict] or list(decision.matches)
        created = decision.at.astimezone(UTC).isoformat()
        row = {
            "id": secrets.token_hex(6),
            "kind": str(kind),
            "state": str(HoldState.PENDING),
            "created_at": created,
            "release_at": _iso(release_at),
            "decision_id": decision.decision_id,
            "teacher_id": action.teacher_id,
            "class_id": action.class_id,
            "action_kind": str(action.kind),
            "channel": str(action.channel),
            "rule_ids": json.dumps([m.rule_id for m in strictest]),
            "reason": "; ".join(m.reason for m in strictest),
            "attempts": 0,
            "last_error": None,
            "dedupe_key": key,
            "request": json.dumps(_request_doc(request)),
            "content": request.content,
            "approval": None,
            # A deferred item's age counts from its release, however far off (a holiday).
            "waiting_since": _iso(release_at) if kind == HoldKind.DEFER and release_at else created,
            "sending_at": None,
            "sender": None,
            "content_key": content_key,
        }
        row["seal"] = seals.seal(self._key, row)
        open_states = tuple(str(s) for s in OPEN)
        with self._db.transaction():
            candidates = self._db.execute(
                f"SELECT {', '.join(_ALL)} FROM items WHERE kind = ? "
                f"AND state IN ({', '.join('?' * len(open_states))}) "
                "AND (dedupe_key = ? OR (content_key IS NOT NULL AND content_key = ?)) ORDER BY created_at",
                (str(kind), *open_states, key, content_key)).fetchall()
            # Only an intact row is joined: one changed by hand to catch later posts is passed over.
            existing = next((_item_of(doc) for doc in (_doc(c) for c in candidates)
                             if seals.matches(self._key, doc)), None)
            if existing is None:
                self._db.execute(f"INSERT INTO items ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                                 tuple(row.values()))
        if existing is not None:
            return replace(existing, is_duplicate=True)
        if action.teacher_id:
            self.teachers_waiting = self.teachers_waiting | {action.teacher_id}
        return self.get(row["id"])

    # -- reading ------------------------------------------------------------------

    def get(self, item_id: str) -> HeldItem:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise HoldError(f"no held or queued item {item_id!r} (it may have been released, rejected or expired)")
        return _item(row)

    def find(self, reference: str) -> HeldItem:
        """The item a reference names: the item's id or the id of the decision that held it, whole or by a
        unique start (as the teacher reads it from the notice). Raises ``HoldError`` or ``ReferenceProblem``."""
        try:
            prefix = references.parse(reference)
        except references.ReferenceProblem:
            if len(reference.strip()) < references.SHORTEST:
                raise
            prefix = reference.strip()  # an item id is always looked up as given
        low, high = references.prefix_range(prefix)
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM items WHERE (id >= ? AND id < ?) OR "
                                    "(decision_id >= ? AND decision_id < ?) ORDER BY id LIMIT 6",
                                    (low, high, low, high)).fetchall()
        found = references.one(prefix, [row[0] for row in rows], "held item")
        if found is None:
            raise HoldError(f"no held or queued item has the reference {reference.strip()!r} (it may have been "
                            "released, rejected or expired; `dojoguard audit show` finds what happened to it)")
        return _item(next(row for row in rows if row[0] == found))

    def request(self, item_id: str) -> StoredRequest:
        """The original request, for sending on or for a reviewer's export."""
        with self._lock:
            row = self._db.execute("SELECT request, content FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise HoldError(f"no held or queued item {item_id!r}")
        return _stored(row[0], _bytes(row[1]))

    def sealed(self, item_id: str) -> tuple[HeldItem, StoredRequest]:
        """The item and its request, read together, only if the row's seal matches (else ``HoldTampered``)."""
        with self._lock:
            doc = self._row(item_id)
        self._check(doc)
        return _item_of(doc), _stored(doc["request"], doc["content"])

    def verify(self, item_id: str) -> None:
        """Raise ``HoldTampered`` unless the row's seal matches."""
        with self._lock:
            doc = self._row(item_id)
        self._check(doc)

    def list(self, *, kind: HoldKind | None = None, state: HoldState | None = None,
             states: tuple[HoldState, ...] | None = None, teacher_id: str | None = None) -> list[HeldItem]:
        query, args = f"SELECT {_COLUMNS} FROM items WHERE 1=1", []
        if kind:
            query, args = query + " AND kind = ?", args + [str(kind)]
        if state:
            states = (state,)
        if states:
            query, args = query + f" AND state IN ({', '.join('?' * len(states))})", args + [str(s) for s in states]
        if teacher_id:
            query, args = query + " AND teacher_id = ?", args + [teacher_id]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, id", args).fetchall()
        return [_item(r) for r in rows]

    def due_ids(self, now: datetime) -> list[str]:
        """Ids of the rows that say they are due: deferred ones whose time has come, approved holds.

        Only ids: what a row says is believed only once ``begin_send`` has checked it.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM items WHERE (state = ? AND kind = ? AND release_at <= ?) "
                "OR (state = ? AND (release_at IS NULL OR release_at <= ?)) ORDER BY created_at, id",
                (str(HoldState.PENDING), str(HoldKind.DEFER), _iso(now),
                 str(HoldState.APPROVED), _iso(now)),
            ).fetchall()
        return [r[0] for r in rows]

    def due(self, now: datetime) -> list[HeldItem]:
        """Items to send now, as their rows say (the releaser checks each seal before sending)."""
        return [self.get(i) for i in self.due_ids(now)]

    def expired(self, now: datetime, max_age: timedelta) -> list[HeldItem]:
        """Items still waiting whose maximum age, counted from ``waiting_since``, has passed."""
        waiting = (HoldState.PENDING, HoldState.APPROVED, HoldState.WAITING_FOR_LOGIN)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM items WHERE state IN (?, ?, ?) "
                "AND coalesce(waiting_since, created_at) < ? ORDER BY created_at",
                (*(str(s) for s in waiting), _iso(now - max_age))).fetchall()
        return [_item(r) for r in rows]

    def in_flight(self) -> list[HeldItem]:
        """Items in state ``sending`` (after a crash: sends whose outcome nobody saw)."""
        return self.list(state=HoldState.SENDING)

    # -- a leader's steps -------------------------------------------------------------

    def approve(self, item_id: str, approval: str, now: datetime) -> HeldItem:
        """Mark a pending (or expired, never approved) hold approved; ``approval`` names the audit record."""
        if not approval:
            raise HoldError("an approval must name its audit record")

        def step(doc):
            _refuse_while_sending(doc, "approved")
            if doc["kind"] != HoldKind.HOLD or doc["state"] not in (HoldState.PENDING, HoldState.EXPIRED) \
                    or doc["approval"]:
                raise HoldError(f"item {item_id} is a {doc['kind']} in state {doc['state']}; "
                                "only holds waiting for a leader can be approved")
            return {"state": str(HoldState.APPROVED), "approval": approval, "waiting_since": _iso(now),
                    "attempts": 0, "release_at": None, "last_error": None}

        self._change(item_id, step)
        return self.get(item_id)

    def retry(self, item_id: str, now: datetime) -> HeldItem:
        """Put a failed or expired item back in the queue (a leader's decision after fixing the cause)."""
        def step(doc):
            _refuse_while_sending(doc, "retried")
            if doc["state"] not in (HoldState.FAILED, HoldState.EXPIRED, HoldState.WAITING_FOR_LOGIN):
                raise HoldError(f"item {item_id} is {doc['state']}: only failed, expired or waiting-for-login "
                                "items can be retried" + (" (an uncertain one is resent with `held resend`)"
                                                          if doc["state"] == HoldState.UNCERTAIN else ""))
            return {**_back_in_queue(doc, now), "attempts": 0, "last_error": None}

        self._change(item_id, step)
        return self.get(item_id)

    def resend(self, item_id: str, record: str, now: datetime) -> HeldItem:
        """Send an uncertain item again: a person checked that it did not arrive (``record``: their audit record)."""
        def step(doc):
            if doc["state"] != HoldState.UNCERTAIN:
                raise HoldError(f"item {item_id} is {doc['state']}, not uncertain: only an item whose send "
                                "was cut short is resent (use `held retry` for failed or expired ones)")
            back = _back_in_queue(doc, now)
            if doc["kind"] == HoldKind.HOLD:
                back["approval"] = record  # the releaser sends a hold only on a record that names it
            return {**back, "attempts": 0, "last_error": None}

        self._change(item_id, step)
        return self.get(item_id)

    def begin_reject(self, item_id: str) -> tuple[HeldItem, str]:
        """Take an item out of the queue for good, before the rejection is recorded: (item, previous state).

        Refused while it is being sent. A row changed by hand can still be
        rejected (that is what a leader does with it), but is never resealed.
        """
        def to_rejecting(doc):
            _refuse_while_sending(doc, "rejected")
            return str(HoldState.REJECTING)

        previous = self._set_state_as_found(item_id, to_rejecting)
        return self.get(item_id), previous

    def undo_reject(self, item_id: str, previous: str) -> None:
        """Put a rejection that could not be recorded back as it was."""
        self._set_state_as_found(item_id, lambda doc: previous if doc["state"] == HoldState.REJECTING else None)

    def _set_state_as_found(self, item_id: str, state_of) -> str:
        """Set the state ``state_of(row)`` names (None: leave it) in one transaction; the state it had.

        Unlike ``_change`` it works on a row whose seal does not match (rejecting is
        what a leader does with one), and reseals only a row that was intact.
        """
        with self._db.transaction():
            doc = self._row(item_id)
            previous, state = doc["state"], state_of(doc)
            if state is not None:
                intact = seals.matches(self._key, doc)
                doc["state"] = state
                if intact:
                    doc["seal"] = seals.seal(self._key, doc)
                self._db.execute("UPDATE items SET state = ?, seal = ? WHERE id = ?",
                                 (doc["state"], doc["seal"], item_id))
        return previous

    # -- the proxy's steps --------------------------------------------------------------

    def begin_send(self, item_id: str, sender: str, now: datetime) -> tuple[HeldItem, StoredRequest]:
        """Claim a due item for sending (state ``sending``): from here no one else may change it.

        Raises ``HoldTampered`` for a row whose seal does not match, and
        ``HoldError`` when it is no longer due (a leader rejected it since).
        """
        def step(doc):
            due = (doc["state"] == HoldState.APPROVED
                   or doc["state"] == HoldState.PENDING and doc["kind"] == HoldKind.DEFER)
            if not due or (doc["release_at"] or "") > _iso(now):
                raise HoldError(f"item {item_id} is no longer due ({doc['state']})")
            return {"state": str(HoldState.SENDING), "sending_at": _iso(now), "sender": sender}

        doc = self._change(item_id, step)
        return _item_of(doc), _stored(doc["request"], doc["content"])

    def sent(self, item_id: str) -> HeldItem:
        """A send ClassDojo accepted: the item and its request are deleted."""
        return self.remove(item_id)

    def send_failed(self, item_id: str, error: str, *, state: HoldState | None, retry_at: datetime) -> HeldItem:
        """A send that ClassDojo refused or that never reached it: counted, its error kept.

        ``state`` is where the item goes (failed, waiting-for-login, uncertain),
        or None to wait in the queue again until ``retry_at``.
        """
        def step(doc):
            if doc["state"] != HoldState.SENDING:
                raise HoldError(f"item {item_id} is {doc['state']}, not being sent")
            queued = HoldState.APPROVED if doc["kind"] == HoldKind.HOLD else HoldState.PENDING
            return {"attempts": doc["attempts"] + 1, "last_error": error[:500], "release_at": _iso(retry_at),
                    "state": str(state or queued)}

        self._change(item_id, step)
        return self.get(item_id)

    def mark_uncertain(self, item_id: str, why: str) -> HeldItem:
        """A send whose outcome nobody saw (the proxy stopped mid-send): never resent without a person."""
        def step(doc):
            if doc["state"] != HoldState.SENDING:
                raise HoldError(f"item {item_id} is {doc['state']}, not being sent")
            return {"state": str(HoldState.UNCERTAIN), "last_error": why[:500]}

        self._change(item_id, step)
        return self.get(item_id)

    def expire(self, item_id: str, why: str, cutoff: datetime) -> HeldItem:
        """An item still waiting since before ``cutoff``: kept, listed for leaders, never sent by itself.

        Checked again inside the transaction: a leader who approved it a moment
        ago (its age counts from the approval) is not overruled.
        """
        def step(doc):
            if doc["state"] not in (HoldState.PENDING, HoldState.APPROVED, HoldState.WAITING_FOR_LOGIN):
                raise HoldError(f"item {item_id} is {doc['state']}")
            if (doc["waiting_since"] or doc["created_at"]) >= _iso(cutoff):
                raise HoldError(f"item {item_id} has not waited that long (approved or retried since)")
            return {"state": str(HoldState.EXPIRED), "last_error": why[:500]}

        self._change(item_id, step)
        return self.get(item_id)

    def wake(self, teacher_id: str, now: datetime) -> list[HeldItem]:
        """The teacher is using ClassDojo again: their items waiting for a login are due now."""
        woken = []
        for item in self.list(state=HoldState.WAITING_FOR_LOGIN, teacher_id=teacher_id):
            try:
                self._change(item.id, lambda doc: _back_in_queue(doc, now, keep_since=True)
                             if doc["state"] == HoldState.WAITING_FOR_LOGIN else {})
            except HoldError:
                continue  # changed since it was listed (rejected, or tampered: the releaser records that)
            woken.append(self.get(item.id))
        return woken

    def mark_tampered(self, item_id: str) -> None:
        """Set a tampered row aside for good: never due again, only rejected.

        It is sealed as found (the change is already recorded), so a later change
        by hand, such as setting it back to approved, shows again.
        """
        with self._db.transaction():
            doc = self._row(item_id)
            doc["state"] = str(HoldState.TAMPERED)
            doc["seal"] = seals.seal(self._key, doc) if isinstance(doc["content"], bytes) else None
            self._db.execute("UPDATE items SET state = ?, seal = ? WHERE id = ?",
                             (doc["state"], doc["seal"], item_id))

    def remove(self, item_id: str) -> HeldItem:
        """Delete an item, its request and its previews (after release or rejection)."""
        item = self.get(item_id)
        with self._db.transaction():
            self._db.execute("DELETE FROM items WHERE id = ?", (item_id,))
            self._db.execute("DELETE FROM previews WHERE item_id = ?", (item_id,))
        return item

    def keep_previews(self, item_id: str, attachments: list[tuple[str | None, bytes]]) -> None:
        """Keep the photos or videos a held post names by reference, for a leader to see (never sent)."""
        rows = [(item_id, n, ctype, data, hashlib.sha256(data).hexdigest())
                for n, (ctype, data) in enumerate(attachments, start=1)]
        with self._db.transaction():
            if self._db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
                return  # decided (or gone) while the previews were fetched: nothing to keep them for
            self._db.executemany("INSERT INTO previews (item_id, number, content_type, data, sha256) "
                                 "VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id, number) DO UPDATE SET "
                                 "content_type = excluded.content_type, data = excluded.data, "
                                 "sha256 = excluded.sha256", rows)

    def previews(self, item_id: str) -> list[tuple[str | None, bytes, str]]:
        """(content type, bytes, sha256) of each preview kept for an item, in order."""
        with self._lock:
            rows = self._db.execute("SELECT content_type, data, sha256 FROM previews WHERE item_id = ? "
                                    "ORDER BY number", (item_id,)).fetchall()
        return [(content_type, _bytes(data), sha256) for content_type, data, sha256 in rows]

    # -- teachers: their latest session, and what they are to be told -----------------------

    def refresh_teachers(self) -> None:
        """Re-read which teachers have items waiting or notices due (other processes change them too)."""
        retryable = tuple(str(s) for s in OPEN + NEEDS_A_PERSON)
        with self._lock:
            keep = {r[0] for r in self._db.execute(
                f"SELECT DISTINCT teacher_id FROM items WHERE teacher_id IS NOT NULL "
                f"AND state IN ({', '.join('?' * len(retryable))})", retryable)}
            tell = {r[0] for r in self._db.execute("SELECT DISTINCT teacher_id FROM notices")}
            # Sessions are kept only while the teacher has something that may still be sent
            # (on its way, or failed, expired or uncertain: `held retry`/`resend` use the latest).
            stale = [r[0] for r in self._db.execute("SELECT teacher_id FROM sessions") if r[0] not in keep]
            for teacher in stale:
                self._db.execute("DELETE FROM sessions WHERE teacher_id = ?", (teacher,))
        self.teachers_waiting, self.teachers_to_tell = frozenset(keep), frozenset(tell)

    def note_session(self, teacher_id: str, cookie: str, session: str, at: datetime) -> bool:
        """Remember the teacher's latest working ClassDojo session; True when it is new (a fresh login)."""
        with self._lock:
            row = self._db.execute("SELECT session, seen_at FROM sessions WHERE teacher_id = ?",
                                   (teacher_id,)).fetchone()
            if row is not None and row[0] == session and row[1] >= _iso(at - _SESSION_REFRESH):
                return False
            doc = {"teacher_id": teacher_id, "cookie": cookie, "session": session, "seen_at": _iso(at)}
            self._db.execute("INSERT INTO sessions (teacher_id, cookie, session, seen_at, seal) "
                             "VALUES (?, ?, ?, ?, ?) ON CONFLICT (teacher_id) DO UPDATE SET "
                             "cookie = excluded.cookie, session = excluded.session, seen_at = excluded.seen_at, "
                             "seal = excluded.seal", (*doc.values(), _seal_session(self._key, doc)))
        return row is None or row[0] != session

    def session_of(self, teacher_id: str | None) -> tuple[str, datetime] | None:
        """(Cookie header, when seen) of the teacher's latest working session, if it is intact."""
        if not teacher_id:
            return None
        with self._lock:
            row = self._db.execute("SELECT teacher_id, cookie, session, seen_at, seal FROM sessions "
                                   "WHERE teacher_id = ?", (teacher_id,)).fetchone()
        if row is None:
            return None
        doc = dict(zip(("teacher_id", "cookie", "session", "seen_at"), row[:4], strict=True))
        if not hmac.compare_digest(row[4] or "", _seal_session(self._key, doc)):
            return None  # changed by hand: the item's own cookie is used instead
        return doc["cookie"], datetime.fromisoformat(doc["seen_at"])

    def login_key(self, cookie_header: str | None) -> str | None:
        """Whom a notice for an item of an unknown teacher goes to: the ClassDojo login it was sent with.

        A keyed hash of the login's session id (the cookie is a credential and is
        not copied), so the proxy can find the notice from the Cookie of that
        login's next write. None when the header names no ClassDojo login.
        """
        sid = session_id(cookie_header)
        if sid is None:
            return None
        digest = hmac.new(self._key, b"notice-login\0" + sid.encode("utf-8", "replace"), hashlib.sha256)
        return LOGIN_PREFIX + digest.hexdigest()[:32]

    def tell(self, teacher_id: str | None, hold_id: str, outcome: str, text: str, at: datetime, *,
             interrupts: bool, login: str | None = None) -> bool:
        """Keep a notice for the teacher's next ClassDojo write (``interrupts``: shown even if that write is fine).

        An item kept before the proxy learned whose login it came from has no
        teacher: its notice goes to that login instead (``login``: the Cookie
        header the item was sent with), so the teacher is still told on their
        next write with it. True when the notice was kept; False when there is
        nobody to address it to (no teacher and no ClassDojo login).
        """
        recipient = teacher_id or self.login_key(login)
        if not recipient:
            return False
        doc = {"id": secrets.token_hex(6), "teacher_id": recipient, "hold_id": hold_id, "outcome": outcome,
               "text": text[:_NOTICE_CHARS], "created_at": _iso(at), "interrupts": int(interrupts)}
        with self._lock:
            self._db.execute(f"INSERT INTO notices ({', '.join(doc)}, seal) VALUES ({', '.join('?' * len(doc))}, ?)",
                             (*doc.values(), _seal_as(self._key, "notices", doc)))
        self.teachers_to_tell = self.teachers_to_tell | {recipient}
        return True

    def notices_for(self, *recipients: str) -> list[Notice]:
        """The notices for a teacher (and the login they write with: ``login_key``), oldest first.

        Rows whose seal does not match are never shown.
        """
        columns = ("id", "teacher_id", "hold_id", "outcome", "text", "created_at", "interrupts")
        wanted = [r for r in dict.fromkeys(recipients) if r]
        if not wanted:
            return []
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(columns)}, seal FROM notices "
                                    f"WHERE teacher_id IN ({', '.join('?' * len(wanted))}) "
                                    f"ORDER BY created_at, {schema.written_order(self._db)}", wanted).fetchall()
        found = []
        for row in rows:
            doc = dict(zip(columns, row[:-1], strict=True))
            if not hmac.compare_digest(str(row[-1] or ""), _seal_as(self._key, "notices", doc)):
                continue  # written by hand: not the school's words
            found.append(Notice(doc["id"], doc["teacher_id"], doc["hold_id"], doc["outcome"], doc["text"],
                                datetime.fromisoformat(doc["created_at"]), bool(doc["interrupts"])))
        return found

    def told(self, notice_ids: list[str]) -> None:
        """Notices shown to the teacher: deleted."""
        with self._lock:
            self._db.executemany("DELETE FROM notices WHERE id = ?", [(i,) for i in notice_ids])
            left = {r[0] for r in self._db.execute("SELECT DISTINCT teacher_id FROM notices")}
        self.teachers_to_tell = frozenset(left)

    # -- plumbing ---------------------------------------------------------------------------

    def _row(self, item_id: str) -> dict[str, Any]:
        # Callers hold the lock.
        row = self._db.execute(f"SELECT {', '.join(_ALL)} FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise HoldError(f"no held or queued item {item_id!r} (it may have been released, rejected or expired)")
        return _doc(row)

    def _check(self, doc: dict[str, Any]) -> None:
        if seals.matches(self._key, doc):
            return
        why = "no seal" if doc.get("seal") is None else "its seal does not match"
        found = {k: None if doc[k] is None else str(doc[k])[:100]
                 for k in ("kind", "state", "decision_id", "teacher_id", "class_id", "release_at", "approval")}
        raise HoldTampered(doc["id"], why, found)

    def _change(self, item_id: str, step) -> dict[str, Any]:
        """Check the row's seal, apply ``step(row) -> new values`` and seal it again, in one transaction."""
        with self._db.transaction():
            doc = self._row(item_id)
            self._check(doc)
            doc.update(step(doc))
            doc["seal"] = seals.seal(self._key, doc)
            columns = [c for c in _ALL if c != "id"]
            self._db.execute(f"UPDATE items SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                             (*(doc[c] for c in columns), item_id))
        return doc

    def __iter__(self) -> Iterator[HeldItem]:
        return iter(self.list())


@dataclass(frozen=True)
class Notice:
    """Something a teacher is to be told about one of their items, on their next write."""

    id: str
    teacher_id: str
    hold_id: str
    outcome: str
    text: str
    created_at: datetime
    interrupts: bool


# The recipient of a notice addressed to a login rather than a teacher (see ``HoldStore.login_key``).
LOGIN_PREFIX = "login:"

# A session already noted is written again at most this often (every write passes here).
_SESSION_REFRESH = timedelta(minutes=1)


# A notice longer than this is cut (a leader's reason can be long; the app's error box is small).
_NOTICE_CHARS = 1000


def _seal_session(key: bytes, doc: dict[str, Any]) -> str:
    # The session row is sealed like an item: a cookie swapped in by hand is never used.
    return _seal_as(key, "sessions", doc)


def _seal_as(key: bytes, table: str, doc: dict[str, Any]) -> str:
    """The HMAC of a row of ``table`` (the table's name is sealed in, so a row cannot move between tables)."""
    encoded = json.dumps({table: doc}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, encoded.encode("ascii"), hashlib.sha256).hexdigest()


def _refuse_while_sending(doc: dict[str, Any], verb: str) -> None:
    if doc["state"] == HoldState.SENDING:
        raise HoldError(f"item {doc['id']} is being sent to ClassDojo right now (since {doc['sending_at']}), so it "
                        f"cannot be {verb}; see how it ended with `dojoguard held show {doc['id']}` in a minute. "
                        "If the proxy stopped during the send, the item is marked uncertain when it starts again")


def _back_in_queue(doc: dict[str, Any], now: datetime, *, keep_since: bool = False) -> dict[str, Any]:
    """The values that make an item due again now: an approved hold, or a deferred item due at once."""
    hold = doc["kind"] == HoldKind.HOLD
    # A hold goes back to its leader unless one approved it; a deferred item is simply due.
    state = HoldState.APPROVED if hold and doc["approval"] else HoldState.PENDING
    values = {"state": str(state), "release_at": None if hold else _iso(now), "sending_at": None, "sender": None}
    if not keep_since:
        values["waiting_since"] = _iso(now)
    return values


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


def _doc(row) -> dict[str, Any]:
    """A row of every column (``_ALL``) as a dict, its body as ``bytes`` whatever the backend returns."""
    doc = dict(zip(_ALL, row, strict=True))
    doc["content"] = _bytes(doc["content"])
    return doc


def _bytes(value):
    # PostgreSQL's driver may hand back a BYTEA as a memoryview; SQLite gives bytes. Anything else
    # (text written into the column by hand) is left as it is, so its seal does not match.
    return bytes(value) if isinstance(value, memoryview) else value


def _stored(request: str, content: bytes) -> StoredRequest:
    doc = json.loads(request)
    return StoredRequest(**{**doc, "headers": tuple(tuple(h) for h in doc["headers"]), "content": content})


def _item_of(doc: dict[str, Any]) -> HeldItem:
    return _item(tuple(doc[c] for c in _ALL[:14]) + (doc["request"], len(doc["content"]), doc["approval"],
                                                     doc["waiting_since"], doc["sending_at"]))


def _item(row) -> HeldItem:
    (item_id, kind, state, created, release, decision_id, teacher, klass, action_kind, channel, rules, reason,
     attempts, last_error, request, length, approval, waiting_since, sending_at) = row
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
        release_at=_time(release),
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
        waiting_since=_time(waiting_since),
        sending_at=_time(sending_at),
    )


def _time(text) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


def _json_list(text) -> tuple[str, ...]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()
