"""Sends on what is due, retries what failed, expires what waited too long: and records each step.

The proxy runs ``Releaser.run_once`` every few seconds; nothing about an item
is lost between runs because every step is written to the store first. A
restart therefore releases whatever fell due while the proxy was down.

**At most once when in doubt.** An item is claimed (state ``sending``) in one
transaction before it is sent, and released, failed or put back in another
after ClassDojo answers. An item found still ``sending`` at the start of a
pass is one whose send was cut short (the proxy was killed, the machine lost
power): the audit log is asked whether its release was recorded; if not, it
becomes ``uncertain`` and waits for a person (``held resend`` or
``held close``). It is never sent again by itself. A send whose request went
out whole but whose answer never came is uncertain in the same way.

Nothing is sent on the word of the store alone: an item goes only if its
row's seal matches (no one changed it with another tool), an approved hold
only if the audit log holds the ``hold.approved`` (or ``hold.resent``) record
the approval names, and no item the audit log already shows released,
rejected or expired (a row put back from a copy). Anything else is recorded
as ``hold.tampered``, set aside and never sent.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any, Callable, Iterable, Protocol

import structlog

from dojoguard.clock import Clock
from dojoguard.holds import notices
from dojoguard.holds.sender import SendResult
from dojoguard.holds.store import (HeldItem, HoldError, HoldKind, HoldState, HoldStore, HoldTampered,
                                   StoredRequest)

log = structlog.get_logger("dojoguard.holds")

# Audit records are looked for from a day before the item was kept: the commands'
# clock and the proxy's may differ a little, and the time index keeps the search short.
_CLOCK_MARGIN = timedelta(days=1)
# The records that say where an item stands. The latest one naming an item must allow a send.
# Released, rejected or closed is final: nothing reopens it (a row put back from an old copy
# of the store is never sent). After a send cut short, an expiry or a final failure, only a
# person's `held resend`, `held retry` or `held approve` (a later record) sends it again.
FINAL = ("hold.released", "defer.released", "hold.rejected", "hold.closed")
_STOPPING = FINAL + ("hold.uncertain", "defer.uncertain", "hold.expired", "defer.expired", "hold.failed",
                     "defer.failed")
_REOPENING = ("hold.retried", "hold.resent", "hold.approved")
_RELEASED = ("hold.released", "defer.released")
# Records that let a hold be sent: a leader's approval, or a person's decision to send an uncertain one again.
_APPROVALS = ("hold.approved", "hold.resent")
# Answers that mean ClassDojo did not act on the request: worth trying again after a while.
# (A 502 or 504 is not among them: a gateway may give up while ClassDojo behind it finishes the
# write, so those are "uncertain", like a send whose answer never came.)
_TRY_AGAIN = frozenset({408, 425, 429, 503})
# Answers that mean the teacher's ClassDojo login has ended.
_LOGGED_OUT = frozenset({401, 403})


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
                 clock: Clock, *, max_attempts: int, max_age: timedelta, tz: tzinfo | None = None,
                 run_id: str | None = None, login_owner: Callable[[str | None], str | None] | None = None):
        self.store = store
        self.send = send
        self.audit = audit
        self.clock = clock
        self.max_attempts = max_attempts
        self.max_age = max_age
        self.tz = tz
        # Cookie header -> the teacher the proxy last saw that login belong to (None: not known).
        self.login_owner = login_owner
        # Which proxy run claimed an item for sending (kept with the item, for whoever looks later).
        self.run_id = run_id or secrets.token_hex(6)
        # Set when the proxy stops: the pass in progress finishes its current item and takes no more.
        self.closing = False
        self._lock = asyncio.Lock()

    async def run_once(self) -> list[Outcome]:
        """One pass: settle sends cut short, expire, then send everything due. Serialised with itself."""
        async with self._lock:
            outcomes: list[Outcome] = []
            try:
                # No send of this releaser is in flight between passes: anything still `sending` was cut short.
                for item in self.store.in_flight():
                    await self._one(outcomes, item.id, self._cut_short, item)
                await self._finish_rejections(outcomes)
                for item in self.store.expired(self.clock.now(), self.max_age):
                    await self._one(outcomes, item.id, self._expire, item)
                for item_id in self.store.due_ids(self.clock.now()):
                    if self.closing:
                        break
                    await self._one(outcomes, item_id, self._release, item_id)
            finally:
                await asyncio.to_thread(self.store.refresh_teachers)
            return outcomes

    async def _one(self, outcomes: list[Outcome], item_id: str, step, *args) -> None:
        """One item's step; a failure is logged and the pass goes on (one bad row must not stop the queue)."""
        try:
            outcome = await step(*args)
        except Exception:  # the item stays as it is and is tried again next pass
            log.exception("hold.step_failed", hold=item_id, step=step.__name__)
            return
        if outcome is not None:
            outcomes.append(outcome)

    async def finish(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) for a pass in progress, so a stopping proxy does not cut a send short."""
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout_s)
        except TimeoutError:
            return False
        self._lock.release()
        return True

    # -- one item -------------------------------------------------------------------

    async def _release(self, item_id: str) -> Outcome | None:
        try:
            item, request = await asyncio.to_thread(self.store.begin_send, item_id, self.run_id, self.clock.now())
        except HoldTampered as exc:
            return await self._tampered(item_id, exc.why, exc.found)
        except HoldError:
            return None  # rejected by a leader since the list was read
        problem = await asyncio.to_thread(self._unbacked, item)
        if problem is not None:
            return await self._tampered(item.id, problem, _found(item))
        request = await asyncio.to_thread(self._with_latest_session, item, request)
        owner = self.login_owner(request.header("cookie")) if self.login_owner is not None else None
        if owner is not None and item.teacher_id is not None and owner != item.teacher_id:
            # The login is now someone else's (a shared device): never post as them. Wait for the teacher's own.
            # Treated as a refused login (401): it waits for the teacher's own, as a logged-out release does.
            return await self._not_sent(item, SendResult(401, False, "not sent: the login it carries now "
                                                         "belongs to another teacher"))
        result = await asyncio.to_thread(self.send, request)
        prefix = _prefix(item)
        if result.ok:
            # Recorded before the item is deleted: if the record cannot be written, the item stays
            # `sending` and the next pass finds no release recorded, so it becomes uncertain (never resent).
            await self._record(f"{prefix}.released", _fields(item, status=result.status))
            await asyncio.to_thread(self.store.sent, item.id)
            if item.kind == HoldKind.HOLD:
                # The request as sent: the item and its request are deleted by now.
                await self._tell(item, "released", request)
            return Outcome(item, f"{prefix}.released", result.detail)
        return await self._not_sent(item, result)

    async def _not_sent(self, item: HeldItem, result: SendResult) -> Outcome:
        """Where an item goes when ClassDojo did not take it: uncertain, waiting for a login, queued again, failed."""
        prefix, now = _prefix(item), self.clock.now()
        attempts = item.attempts + 1
        if result.maybe_delivered or (result.status >= 500 and result.status not in _TRY_AGAIN):  # 500, 502, 504
            state, event = HoldState.UNCERTAIN, f"{prefix}.uncertain"
        elif result.status in _LOGGED_OUT:
            state, event = HoldState.WAITING_FOR_LOGIN, f"{prefix}.waiting_for_login"
        elif result.status == 0 or result.status in _TRY_AGAIN:
            give_up = attempts >= self.max_attempts
            state = HoldState.FAILED if give_up else None
            event = f"{prefix}.failed" if give_up else f"{prefix}.retrying"
        else:  # ClassDojo refused the request itself: sending the same bytes again will not help
            state, event = HoldState.FAILED, f"{prefix}.failed"
        try:
            updated = await asyncio.to_thread(self.store.send_failed, item.id, result.detail, state=state,
                                              retry_at=now + backoff(attempts))
        except HoldTampered as exc:  # changed by hand while it was being sent
            return await self._tampered(item.id, exc.why, exc.found)
        extra = {"sent_at": item.sending_at.isoformat()} if state == HoldState.UNCERTAIN and item.sending_at else {}
        # The error is for IT to act on; kept short (the audit trail refuses long values).
        await self._record(event, _fields(updated, status=result.status or None, error=result.detail[:300], **extra))
        if state in (HoldState.UNCERTAIN, HoldState.FAILED):
            await self._tell(updated, str(state))
        return Outcome(updated, event, result.detail)

    async def _cut_short(self, item: HeldItem) -> Outcome:
        """An item left `sending` by a run that stopped mid-send: released if the log says so, else uncertain."""
        prefix = _prefix(item)
        try:
            await asyncio.to_thread(self.store.verify, item.id)
        except HoldTampered as exc:
            return await self._tampered(item.id, exc.why, exc.found)
        final = await asyncio.to_thread(self._finished_record, item, FINAL)
        if final is not None and final.type not in _RELEASED:
            # A rejected or closed item cannot be in flight: this row came back from an old copy.
            return await self._tampered(item.id, f"the audit log already shows it {final.type.split('.', 1)[1]} "
                                        f"(record {final.record_id})", _found(item))
        released = final
        if released is not None:
            await asyncio.to_thread(self.store.sent, item.id)
            return Outcome(item, released.type, f"already recorded as {released.type} ({released.record_id})")
        sent_at = item.sending_at.isoformat() if item.sending_at else None
        why = (f"the proxy stopped while sending it (send began {sent_at or 'at an unknown time'}; no answer "
               "was seen): ClassDojo may or may not have it")
        # Recorded first: if the record cannot be written the item stays `sending`, and the next pass tries again.
        await self._record(f"{prefix}.uncertain", _fields(item, sent_at=sent_at, error="no answer (proxy stopped)"))
        try:
            updated = await asyncio.to_thread(self.store.mark_uncertain, item.id, why)
        except HoldTampered as exc:
            return await self._tampered(item.id, exc.why, exc.found)
        await self._tell(updated, "uncertain")
        return Outcome(updated, f"{prefix}.uncertain", why)

    async def _finish_rejections(self, outcomes: list[Outcome]) -> None:
        """Delete items a `held reject`/`close` took out and recorded but did not get to delete (it was killed)."""
        for item in self.store.list(state=HoldState.REJECTING):
            record = await asyncio.to_thread(self._finished_record, item, ("hold.rejected", "hold.closed"))
            if record is not None:
                await asyncio.to_thread(self.store.remove, item.id)
                outcomes.append(Outcome(item, record.type, f"finished the {record.type} of record {record.record_id}"))

    async def _expire(self, item: HeldItem) -> Outcome | None:
        """An item that waited longer than the maximum age: kept for leaders, the teacher told, never sent."""
        since = item.waiting_since or item.created_at
        what = {HoldState.PENDING: "a leader's decision" if item.kind == HoldKind.HOLD else "its release",
                HoldState.APPROVED: "a successful send", HoldState.WAITING_FOR_LOGIN: "the teacher to log in again"}
        why = (f"expired: waited more than {self.max_age.days} days for {what.get(item.state, 'release')} "
               f"(counted from {since.isoformat()})")
        event = f"{_prefix(item)}.expired"
        try:
            await asyncio.to_thread(self.store.verify, item.id)
        except HoldTampered as exc:
            return await self._tampered(item.id, exc.why, exc.found)
        # The store first: its transaction checks again that the item has waited that long (a leader
        # may have approved it a moment ago), and an expired item is never sent whatever the log says.
        try:
            updated = await asyncio.to_thread(self.store.expire, item.id, why, self.clock.now() - self.max_age)
        except HoldTampered as exc:
            return await self._tampered(item.id, exc.why, exc.found)
        except HoldError:
            return None  # decided since it was listed
        await self._record(event, _fields(item, waiting_since=since.isoformat()))
        await self._tell(updated, "expired")
        return Outcome(updated, event, why)

    # -- checks ----------------------------------------------------------------------

    def _unbacked(self, item: HeldItem) -> str | None:
        """Why the audit log does not back sending ``item`` now, or None when it does (blocking)."""
        # One read of the item's records: any final one refuses, else the latest must not be a stopping one.
        final, last = None, None
        for record in self.audit.records(start=item.created_at - _CLOCK_MARGIN, types=_STOPPING + _REOPENING):
            if record.fields.get("hold") == item.id:
                last = record
                final = final or (record if record.type in FINAL else None)
        if final is not None:
            return f"the audit log already shows it {final.type.split('.', 1)[1]} (record {final.record_id})"
        if last is not None and last.type in _STOPPING:
            return (f"the audit log's latest record of it says {last.type.split('.', 1)[1]} "
                    f"(record {last.record_id})")
        if item.kind != HoldKind.HOLD:
            return None
        if item.approval:
            record = self.audit.get(item.approval)
            if record is not None and record.type in _APPROVALS and _approves(record, item):
                return None
            return f"its approval names audit record {item.approval[:40]}, which is not a hold.approved for it"
        # Approved before approvals named their record: find it by the hold's id.
        for record in self.audit.records(start=item.created_at - _CLOCK_MARGIN, types=("hold.approved",)):
            if _approves(record, item):
                return None
        return "approved, but the audit log has no hold.approved record for it"

    def _finished_record(self, item: HeldItem, types: tuple[str, ...]):
        for record in self.audit.records(start=item.created_at - _CLOCK_MARGIN, types=types):
            if record.fields.get("hold") == item.id:
                return record
        return None

    def _with_latest_session(self, item: HeldItem, request: StoredRequest) -> StoredRequest:
        """The request with the teacher's most recent working ClassDojo login, when one was seen since."""
        latest = self.store.session_of(item.teacher_id)
        if latest is None:
            return request
        cookie, _ = latest
        headers = tuple((k, v) for k, v in request.headers if k.lower() != "cookie") + (("Cookie", cookie),)
        return replace(request, headers=headers)

    # -- recording ---------------------------------------------------------------------

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

    async def _tell(self, item: HeldItem, outcome: str, request: StoredRequest | None = None) -> None:
        """Keep a notice of the outcome for the teacher's next ClassDojo write.

        An item kept before the proxy knew whose login it came from is told to
        the teacher the proxy now knows that login to be, else to the login itself.
        """
        notice = notices.for_outcome(item, outcome, tz=self.tz, max_age_days=self.max_age.days)
        if notice is None:
            return
        text, interrupts = notice
        teacher, login = item.teacher_id, None
        if teacher is None:
            if request is None:
                request = await asyncio.to_thread(self._request_of, item.id)
            login = request.header("cookie") if request is not None else None
            if login is not None and self.login_owner is not None:
                teacher = self.login_owner(login)
        told = await asyncio.to_thread(self.store.tell, teacher, item.id, outcome, text, self.clock.now(),
                                       interrupts=interrupts, login=login)
        if not told:
            log.warning("hold.nobody_to_tell", hold=item.id, outcome=outcome)

    def _request_of(self, item_id: str) -> StoredRequest | None:
        try:
            return self.store.request(item_id)
        except HoldError:
            return None

    async def _record(self, event: str, fields: dict) -> None:
        # The audit write waits for the disk: off the event loop. If it fails the step is not
        # taken further (the item stays in the store and is tried again next pass).
        await asyncio.to_thread(self.audit.append_event, event, fields)


def latest_record(audit: AuditTrail, item: HeldItem, types: tuple[str, ...]):
    """The audit log's latest record of ``types`` naming ``item``, or None."""
    last = None
    for record in audit.records(start=item.created_at - _CLOCK_MARGIN, types=types):
        if record.fields.get("hold") == item.id:
            last = record
    return last


def _prefix(item: HeldItem) -> str:
    return "defer" if item.kind == HoldKind.DEFER else "hold"


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
    # Ids come from a sealed row, but are kept short anyway: the audit trail refuses long values.
    return {k: v[:120] if isinstance(v, str) else v for k, v in fields.items()}
