"""Sends on what is due, retries what failed, expires what waited too long: and records each step.

The proxy runs ``Releaser.run_once`` every few seconds; nothing about an item
is lost between runs because every step is written to the store first. A
restart therefore releases whatever fell due while the proxy was down.

Nothing is sent on the word of the store alone: an item goes only if its
row's seal matches (no one changed it with another tool), an approved hold
only if the audit log holds the ``hold.approved`` record the approval names,
and no item the audit log already shows released, rejected or expired (a row
put back from a copy). Anything else is recorded as ``hold.tampered``, set
aside and never sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Protocol

from dojoguard.clock import Clock
from dojoguard.holds.sender import SendResult
from dojoguard.holds.store import (HeldItem, HoldError, HoldKind, HoldState, HoldStore, HoldTampered,
                                   StoredRequest)

# Audit records are looked for from a day before the item was kept: the commands'
# clock and the proxy's may differ a little, and the time index keeps the search short.
_CLOCK_MARGIN = timedelta(days=1)
# Records after which an item must not be sent again.
_FINISHED = ("hold.released", "defer.released", "hold.rejected", "hold.expired")


class AuditTrail(Protocol):
    """What the releaser needs of the audit log: to record, and to read back approvals."""

    def append_event(self, event: str, fields: dict) -> object: ...

    def get(self, record_id: str) -> Any: ...

    def records(self, *, start=None, types=None) -> Iterable[Any]: ...


# Kept for callers that name the old protocol.
EventSink = AuditTrail


@dataclass(frozen=True)
class Outcome:
    item: HeldItem
    event: str
    detail: str


# Wait before retry n (1-based): a minute, then longer, so a ClassDojo outage
# is ridden out without hammering it; capped at an hour.
def backoff(attempt: int) -> timedelta:
    return timedelta(minutes=min(60, 2 ** (attempt - 1)))


class Releaser:
    def __init__(self, store: HoldStore, send: Callable[[StoredRequest], SendResult], audit: AuditTrail,
                 clock: Clock, *, max_attempts: int, max_age: timedelta):
        self.store = store
        self.send = send
        self.audit = audit
        self.clock = clock
        self.max_attempts = max_attempts
        self.max_age = max_age
        self._lock = asyncio.Lock()

    async def run_once(self) -> list[Outcome]:
        """One pass: expire, then send everything due. Safe to call concurrently (it serialises)."""
        async with self._lock:
            outcomes = [await self._expire(item) for item in self.store.expired(self.clock.now(), self.max_age)]
            now = self.clock.now()
            for item_id in self.store.due_ids(now):
                outcome = await self._release(item_id)
                if outcome is not None:
                    outcomes.append(outcome)
            return outcomes

    async def _release(self, item_id: str) -> Outcome | None:
        try:
            item, request = self.store.sealed(item_id)
        except HoldTampered as exc:
            return await self._tampered(item_id, exc.why, exc.found)
        except HoldError:
            return None  # rejected by a leader since the list was read
        problem = await asyncio.to_thread(self._unbacked, item)
        if problem is not None:
            return await self._tampered(item.id, problem, _found(item))
        result = await asyncio.to_thread(self.send, request)
        prefix = "defer" if item.kind == HoldKind.DEFER else "hold"
        if result.ok:
            await self._record(f"{prefix}.released", _fields(item, status=result.status))
            self.store.remove(item.id)
            return Outcome(item, f"{prefix}.released", result.detail)
        attempts = item.attempts + 1
        give_up = attempts >= self.max_attempts
        try:
            updated = self.store.record_attempt(item.id, result.detail, give_up=give_up,
                                                retry_at=self.clock.now() + backoff(attempts))
        except HoldTampered as exc:  # changed by hand while it was being sent
            return await self._tampered(item.id, exc.why, exc.found)
        event = f"{prefix}.failed" if give_up else f"{prefix}.retrying"
        # The error is for IT to act on; kept short (the audit trail refuses long values).
        await self._record(event, _fields(updated, status=result.status, error=result.detail[:300]))
        return Outcome(updated, event, result.detail)

    def _unbacked(self, item: HeldItem) -> str | None:
        """Why the audit log does not back sending ``item`` now, or None when it does (blocking)."""
        for record in self.audit.records(start=item.created_at - _CLOCK_MARGIN, types=_FINISHED):
            if record.fields.get("hold") == item.id:
                return f"the audit log already shows it {record.type.split('.', 1)[1]} (record {record.record_id})"
        if item.kind != HoldKind.HOLD:
            return None
        if item.approval:
            record = self.audit.get(item.approval)
            if record is not None and record.type == "hold.approved" and _approves(record, item):
                return None
            return f"its approval names audit record {item.approval[:40]}, which is not a hold.approved for it"
        # Approved before approvals named their record: find it by the hold's id.
        for record in self.audit.records(start=item.created_at - _CLOCK_MARGIN, types=("hold.approved",)):
            if _approves(record, item):
                return None
        return "approved, but the audit log has no hold.approved record for it"

    async def _tampered(self, item_id: str, why: str, found: dict) -> Outcome:
        # Recorded first: if the record cannot be written the item stays as it is (still never sent)
        # and the next pass tries again.
        fields = {"hold": item_id, "found": why[:300],
                  **{k: v for k, v in found.items() if v is not None}}
        await self._record("hold.tampered", fields)
        await asyncio.to_thread(self.store.mark_tampered, item_id)
        try:
            item = self.store.get(item_id)
        except (HoldError, ValueError):  # a row edited past reading: report by id alone
            item = _unreadable(item_id, found, self.clock.now())
        return Outcome(item, "hold.tampered", why)

    async def _expire(self, item: HeldItem) -> Outcome:
        await self._record("hold.expired", _fields(item))
        self.store.remove(item.id)
        return Outcome(item, "hold.expired", f"older than {self.max_age.days} days")


    async def _record(self, event: str, fields: dict) -> None:
        # The audit write waits for the disk: off the event loop. If it fails the step is not
        # taken further (the item stays in the store and is tried again next pass).
        await asyncio.to_thread(self.audit.append_event, event, fields)


def _approves(record, item: HeldItem) -> bool:
    return record.fields.get("hold") == item.id and record.fields.get("decision_id") == item.decision_id


def _unreadable(item_id: str, found: dict, now: datetime) -> HeldItem:
    """The outcome's item for a row edited past reading: its id, what was found, and the time it was found."""
    return HeldItem(id=item_id, kind=HoldKind.HOLD, state=HoldState.TAMPERED, created_at=now,
                    release_at=None, decision_id=str(found.get("decision_id")), teacher_id=None, class_id=None,
                    action_kind="", channel="", rule_ids=(), reason="", attempts=0, last_error=None,
                    content_type=None, content_length=0)


def _found(item: HeldItem) -> dict:
    return {"kind": str(item.kind), "state": str(item.state), "decision_id": item.decision_id,
            "teacher_id": item.teacher_id, "class_id": item.class_id, "approval": item.approval,
            "release_at": item.release_at.isoformat() if item.release_at else None}


def _fields(item: HeldItem, **extra) -> dict:
    fields = {
        "hold": item.id,
        "kind": str(item.kind),
        "decision_id": item.decision_id,
        "teacher_id": item.teacher_id,
        "class_id": item.class_id,
        "attempts": item.attempts,
    }
    fields.update({k: v for k, v in extra.items() if v is not None})
    return fields
