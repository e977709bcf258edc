"""Parents' messages in the threads a teacher opens: inappropriate language is reported, nothing is kept.

Only with ``inbound.language_alerts`` on (off by default; see docs/dpo.md).
ClassDojo's answer to the thread-reading request (the catalogue's ``thread``
learn entry) is read in memory, in a worker thread, after the answer has
been passed on unchanged. Each message a parent wrote is tested against the
language lists of the policy's rules that use `language:` (and nothing else
of those rules: the parent is not the teacher). A message that matches is
recorded once as an ``inbound.language`` audit event (thread id, when the
parent wrote, the teacher, the class if known, the rule, who is told), which
the alert sender reads like any record with ``alerts``. No text, no parent's
or pupil's name is stored anywhere: the state DB keeps only a keyed hash of
thread id and message id, so the same message is not reported twice, and
forgets it after ``inbound.remember_days``.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from mitmproxy.net.encoding import decode

from dojoguard.proxy.settings import InboundSettings
from dojoguard.state import State

log = structlog.get_logger("dojoguard.proxy")

EVENT = "inbound.language"
# Where a message's sender kind may be: on the message, or on a sender object.
_SENDER_TYPE_KEYS = ("senderType", "senderRole", "authorType", "fromType", "entityType")
_SENDER_OBJECT_KEYS = ("sender", "author", "from")
_PARENT_TYPES = frozenset({"parent", "guardian", "family", "parentuser"})
_TEACHER_TYPES = frozenset({"teacher"})
# Who wrote a message, as far as its sender kind says (``ThreadMessage.sender``).
PARENT = "parent"
TEACHER = "teacher"
_TEXT_KEYS = ("body", "text", "message", "content")
_TIME_KEYS = ("createdAt", "time", "sentAt", "at", "timestamp")
_LIST_KEYS = ("_items", "messages", "items")
# How often entries older than inbound.remember_days are forgotten.
PURGE_EVERY_S = 3600.0


@dataclass(frozen=True)
class ThreadMessage:
    """One message of a thread, as read in memory (never stored)."""

    id: str | None
    at: datetime | None
    from_parent: bool
    text: str
    # PARENT, TEACHER, or None when the sender's kind is missing or neither.
    sender: str | None = None


def messages_of(doc: Any) -> list[ThreadMessage]:
    """The messages in a thread answer: an ``_items`` or ``messages`` list, or a bare list.

    A message whose fields are missing or of the wrong type is kept with what
    can be read: no id (it cannot be remembered, so it is not reported), no
    time, no text; a message whose sender is not plainly a parent is not a
    parent's.
    """
    items: Any = doc
    if isinstance(doc, dict):
        items = next((doc[k] for k in _LIST_KEYS if isinstance(doc.get(k), list)), [])
    if not isinstance(items, list):
        return []
    return [_message(item) for item in items if isinstance(item, dict)]


def class_of(doc_or_messages: Any) -> str | None:
    """The class a thread answer names (``classId`` at the top or in its metadata), if any."""
    if not isinstance(doc_or_messages, dict):
        return None
    for where in (doc_or_messages, doc_or_messages.get("_metadata")):
        if isinstance(where, dict) and isinstance(where.get("classId"), str):
            return where["classId"]
    return None


def _message(item: dict) -> ThreadMessage:
    message_id = item.get("_id") if isinstance(item.get("_id"), str) else \
        item.get("id") if isinstance(item.get("id"), str) else None
    texts = [item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str)]
    contents = item.get("contents")
    if isinstance(contents, dict):
        texts += [contents[k] for k in _TEXT_KEYS if isinstance(contents.get(k), str)]
    kinds = _sender_kinds(item)
    return ThreadMessage(id=message_id or None, at=_time(item), from_parent=bool(kinds & _PARENT_TYPES),
                         text="\n".join(texts), sender=_sender(kinds))


def _sender_kinds(item: dict) -> set[str]:
    kinds = [item.get(k) for k in _SENDER_TYPE_KEYS]
    for key in _SENDER_OBJECT_KEYS:
        sender = item.get(key)
        if isinstance(sender, dict):
            kinds += [sender.get(k) for k in ("type", "role", "entityType", "senderType")]
    return {k.strip().lower() for k in kinds if isinstance(k, str)}


def _sender(kinds: set[str]) -> str | None:
    """PARENT or TEACHER when the message's sender kinds say plainly one of them (a mix is neither)."""
    parent, teacher = bool(kinds & _PARENT_TYPES), bool(kinds & _TEACHER_TYPES)
    if parent and not teacher:
        return PARENT
    if teacher and not parent:
        return TEACHER
    return None


def _time(item: dict) -> datetime | None:
    for key in _TIME_KEYS:
        value = item.get(key)
        try:
            if isinstance(value, str) and value:
                at = datetime.fromisoformat(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                # Milliseconds since 1970, as JavaScript gives them (seconds if small enough).
                at = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
            else:
                continue
        except (ValueError, OverflowError, OSError):
            continue
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Inbound:
    """Reads thread answers for parents' inappropriate language; one per proxy, used from worker threads.

    ``counts`` says what happened since the start (read, reported, skipped
    as too large, unreadable, failed, without an id, already reported).
    """

    def __init__(self, state: State, settings: InboundSettings):
        self.state = state
        self.settings = settings
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._purged_at = 0.0

    @property
    def enabled(self) -> bool:
        return self.settings.language_alerts

    def too_large(self, size: int | None) -> bool:
        return size is not None and size > self.settings.max_body_bytes

    def skip_large(self, size: int) -> None:
        self.counts["skipped_large"] += 1
        log.warning("inbound.skipped", reason="too large", bytes=size, limit=self.settings.max_body_bytes,
                    skipped=self.counts["skipped_large"])

    def failed(self, error: BaseException) -> None:
        self.counts["failed"] += 1
        log.warning("inbound.failed", error=type(error).__name__, failed=self.counts["failed"])

    def parse(self, content: bytes, *, encoding: str = "") -> Any:
        """A thread answer as JSON (``encoding``: its Content-Encoding), or None when it is too large or
        unreadable (counted and logged). Blocking; never raises for a bad answer."""
        if self.too_large(len(content)):
            self.skip_large(len(content))
            return None
        try:
            if encoding and encoding.strip().lower() != "identity":
                content = decode(content, encoding)
                if self.too_large(len(content)):
                    self.skip_large(len(content))
                    return None
            return json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            self.counts["unreadable"] += 1
            log.warning("inbound.unreadable", error=type(exc).__name__, unreadable=self.counts["unreadable"])
            return None

    def read(self, content: bytes, *, policy, audit, thread: str, teacher: str | None, at: datetime,
             encoding: str = "") -> int:
        """Check one thread answer and record each newly seen offending parent's message (blocking).

        ``content`` is the body as it came (``encoding``: its Content-Encoding). Returns how many were
        recorded. Never raises for a bad answer: it is counted and logged.
        """
        doc = self.parse(content, encoding=encoding)
        if doc is None:
            return 0
        return self.check(doc, policy=policy, audit=audit, thread=thread, teacher=teacher, at=at)

    def check(self, doc: Any, *, policy, audit, thread: str, teacher: str | None, at: datetime) -> int:
        """``read`` for an answer already parsed."""
        self.counts["read"] += 1
        checks = policy.language_checks()
        if not checks:
            log.info("inbound.read", thread=thread, reported=0)
            return 0
        class_id = class_of(doc)
        recorded = 0
        for message in messages_of(doc):
            if not message.from_parent or not message.text:
                continue
            hits = [c for c in checks if c.test(message.text)]
            if not hits:
                continue
            if message.id is None:
                # Without an id it could not be told apart when the thread is opened again.
                self.counts["no_id"] += 1
                log.warning("inbound.no_message_id", thread=thread, no_id=self.counts["no_id"])
                continue
            alerts = [self._alert(c) for c in hits]
            fields = {"thread": thread, "message_at": _iso(message.at) if message.at else None,
                      "teacher": teacher, "class": class_id, "rule": hits[0].rule_id,
                      "rules": [c.rule_id for c in hits], "alerts": alerts}
            if self._record_once(thread, message.id, audit, fields, at):
                recorded += 1
        self._purge(at)
        log.info("inbound.read", thread=thread, reported=recorded)
        return recorded

    def _alert(self, check) -> dict:
        if check.alert is not None and check.alert.to:
            return {"rule": check.rule_id, "to": list(check.alert.to), "when": check.alert.when}
        return {"rule": check.rule_id, "to": list(self.settings.alert_to), "when": "now"}

    def _hash(self, thread: str, message_id: str) -> str:
        return hmac.digest(self.state.key, f"inbound\0{thread}\0{message_id}".encode(), "sha256").hex()

    def _record_once(self, thread: str, message_id: str, audit, fields: dict, at: datetime) -> bool:
        key = self._hash(thread, message_id)
        with self._lock:
            with self.state.lock:
                seen = self.state.database.execute("SELECT 1 FROM inbound_seen WHERE message_hash = ?",
                                                   (key,)).fetchone()
            if seen:
                self.counts["already_reported"] += 1
                return False
            # Recorded first, remembered second: a failure in between may report it once more, never not at all.
            audit.append_event(EVENT, fields)
            with self.state.database.transaction():
                self.state.database.execute("INSERT INTO inbound_seen (message_hash, seen_at) VALUES (?, ?) "
                                            "ON CONFLICT (message_hash) DO NOTHING", (key, _iso(at)))
        self.counts["reported"] += 1
        log.warning("inbound.language", thread=thread, rule=fields["rule"], teacher=fields["teacher"])
        return True

    def _purge(self, at: datetime) -> None:
        now = time.monotonic()
        if self._purged_at and now - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = now
        self.forget_before(at - timedelta(days=self.settings.remember_days))

    def forget_before(self, cutoff: datetime) -> int:
        """Forget the messages first seen before ``cutoff``; returns how many."""
        with self.state.database.transaction():
            return self.state.database.execute("DELETE FROM inbound_seen WHERE seen_at < ?",
                                               (_iso(cutoff),)).rowcount
