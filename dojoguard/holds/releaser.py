"""Sends on what is due, retries what failed, expires what waited too long: and records each step.

The proxy runs ``Releaser.run_once`` every few seconds; nothing about an item
is lost between runs because every step is written to the store first. A
restart therefore releases whatever fell due while the proxy was down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Protocol

from dojoguard.clock import Clock
from dojoguard.holds.sender import SendResult
from dojoguard.holds.store import HeldItem, HoldKind, HoldStore, StoredRequest


class EventSink(Protocol):
    def append_event(self, event: str, fields: dict) -> object: ...


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
    def __init__(self, store: HoldStore, send: Callable[[StoredRequest], SendResult], audit: EventSink,
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
            for item in self.store.due(now):
                outcomes.append(await self._release(item))
            return outcomes

    async def _release(self, item: HeldItem) -> Outcome:
        request = self.store.request(item.id)
        result = await asyncio.to_thread(self.send, request)
        prefix = "defer" if item.kind == HoldKind.DEFER else "hold"
        if result.ok:
            await self._record(f"{prefix}.released", _fields(item, status=result.status))
            self.store.remove(item.id)
            return Outcome(item, f"{prefix}.released", result.detail)
        attempts = item.attempts + 1
        give_up = attempts >= self.max_attempts
        updated = self.store.record_attempt(item.id, result.detail, give_up=give_up,
                                            retry_at=self.clock.now() + backoff(attempts))
        event = f"{prefix}.failed" if give_up else f"{prefix}.retrying"
        # The error is for IT to act on; kept short (the audit trail refuses long values).
        await self._record(event, _fields(updated, status=result.status, error=result.detail[:300]))
        return Outcome(updated, event, result.detail)

    async def _expire(self, item: HeldItem) -> Outcome:
        await self._record("hold.expired", _fields(item))
        self.store.remove(item.id)
        return Outcome(item, "hold.expired", f"older than {self.max_age.days} days")


    async def _record(self, event: str, fields: dict) -> None:
        # The audit write waits for the disk: off the event loop. If it fails the step is not
        # taken further (the item stays in the store and is tried again next pass).
        await asyncio.to_thread(self.audit.append_event, event, fields)


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
