"""A leader's decisions on held and queued items: approve, reject, close, retry, resend.

Plain functions over the configuration and a clock, so the `held` commands
and any other front end (a web console) run the same steps in the same
order: each is recorded in the audit log first, and an item found changed
behind the commands' back is recorded (``hold.tampered``) and set aside
before the step fails. Every refusal is a ``HoldError`` whose message says
why; nothing here prints.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from dojoguard.clock import Clock
from dojoguard.holds import notices
from dojoguard.holds.opening import HoldsUnavailable, open_holds
from dojoguard.holds.seal import SealKeyError
from dojoguard.holds.store import NEEDS_A_PERSON, HeldItem, HoldError, HoldKind, HoldState, HoldStore, HoldTampered


@contextmanager
def opened(config: Any, clock: Clock, step: str = "") -> Iterator[HoldStore]:
    """The store, closed afterwards.

    An item found changed behind the commands' back during ``step`` is
    recorded (``hold.tampered``, noticed by ``held STEP``) and set aside before
    the ``HoldTampered`` goes on: it is never approved, retried or sent.
    """
    try:
        store = open_holds(config)
    except (SealKeyError, HoldsUnavailable) as exc:
        raise HoldError(str(exc)) from None
    try:
        yield store
    except HoldTampered as exc:
        audit(config, clock, "hold.tampered", {"hold": exc.item_id, "found": exc.why, "noticed_by": f"held {step}",
                                               **{k: v for k, v in exc.found.items() if v is not None}})
        store.mark_tampered(exc.item_id)
        raise
    finally:
        store.close()


def audit(config: Any, clock: Clock, event: str, fields: dict):
    """Record ``event``; returns the audit record (its id is kept with an approval)."""
    # Imported here so that `held list` works even while the audit log is unreachable;
    # steps that change an item must be recorded, so their failure stops the step.
    from dojoguard.audit.log import AuditLog

    log = AuditLog.open(config.path("audit", "database"), clock=clock)
    try:
        return log.append_event(event, fields)
    finally:
        log.close()


def refuse_if_finished(config: Any, clock: Clock, item: HeldItem) -> None:
    """Refuse to reopen an item the audit log shows released, rejected or closed (a row put back from a copy)."""
    from dojoguard.audit.log import AuditLog
    from dojoguard.holds.releaser import FINAL, latest_record

    log = AuditLog.open(config.path("audit", "database"), clock=clock)
    try:
        record = latest_record(log, item, FINAL)
    finally:
        log.close()
    if record is not None:
        raise HoldError(f"the audit log already shows item {item.id} {record.type.split('.', 1)[1]} "
                        f"(record {record.record_id}): this row came back from an old copy of the store. "
                        f"It will not be sent; reject it to remove it")


def approve(config: Any, clock: Clock, item_id: str, by: str, reason: str | None = None) -> HeldItem:
    """Approve a held item: the running proxy sends it on, then tells the teacher it was posted.

    ``reason`` is not asked for (an approval needs none) and is not recorded.
    """
    with opened(config, clock, "approve") as store:
        store.verify(item_id)
        item = store.get(item_id)
        if item.state == HoldState.TAMPERED:
            raise HoldError(f"item {item_id} was changed outside dojoguard and set aside: it can only be rejected")
        if item.state == HoldState.SENDING:
            store.approve(item_id, "-", clock.now())  # raises, saying it is being sent
        if item.kind != HoldKind.HOLD or item.state not in (HoldState.PENDING, HoldState.EXPIRED) or item.approval:
            raise HoldError(f"item {item_id} is a {item.kind} in state {item.state}; "
                            "only holds waiting for a leader can be approved")
        refuse_if_finished(config, clock, item)
        # The record comes first and the item names it: the proxy sends an approved
        # hold only when this very record is in the audit log.
        record = audit(config, clock, "hold.approved", {"hold": item.id, "decision_id": item.decision_id, "by": by})
        return store.approve(item_id, record.record_id, clock.now())


def reject(config: Any, clock: Clock, item_id: str, by: str, reason: str) -> HeldItem:
    """Reject a held or queued item: discarded, never sent, and the teacher told why on their next write."""
    return _discard(config, clock, item_id, "hold.rejected", "rejected", by=by, reason=reason)


def close(config: Any, clock: Clock, item_id: str, by: str, reason: str) -> HeldItem:
    """Close an uncertain, failed, expired (or tampered) item without sending it."""
    return _discard(config, clock, item_id, "hold.closed", None, by=by, reason=reason)


def retry(config: Any, clock: Clock, item_id: str, by: str, reason: str | None = None) -> HeldItem:
    """Queue a failed, expired or waiting-for-login item again (``reason`` is not recorded)."""
    with opened(config, clock, "retry") as store:
        store.verify(item_id)
        item = store.get(item_id)
        if item.state not in (HoldState.FAILED, HoldState.EXPIRED, HoldState.WAITING_FOR_LOGIN):
            store.retry(item_id, clock.now())  # raises, saying why
        refuse_if_finished(config, clock, item)
        # Recorded first: the proxy sends a retried item only once the audit log says it was reopened.
        audit(config, clock, "hold.retried", {"hold": item.id, "kind": str(item.kind),
                                              "decision_id": item.decision_id, "by": by})
        return store.retry(item_id, clock.now())


def resend(config: Any, clock: Clock, item_id: str, by: str, reason: str | None = None) -> HeldItem:
    """Send an uncertain item again, once someone checked it is not on ClassDojo (``reason`` is not recorded)."""
    with opened(config, clock, "resend") as store:
        store.verify(item_id)
        item = store.get(item_id)
        if item.state != HoldState.UNCERTAIN:
            store.resend(item_id, "-", clock.now())  # raises, saying why
        refuse_if_finished(config, clock, item)
        record = audit(config, clock, "hold.resent", {"hold": item.id, "kind": str(item.kind),
                                                      "decision_id": item.decision_id, "by": by})
        return store.resend(item_id, record.record_id, clock.now())


def _discard(config: Any, clock: Clock, item_id: str, event: str, outcome: str | None, *, by: str,
             reason: str) -> HeldItem:
    """Take the item out of the queue, record why, tell the teacher, then delete it; put it back if the record fails."""
    with opened(config, clock) as store:
        item = store.get(item_id)
        if event == "hold.closed" and item.state not in NEEDS_A_PERSON + (HoldState.TAMPERED,):
            raise HoldError(f"item {item_id} is {item.state}; only uncertain, failed or expired items are closed "
                            "(a waiting one is rejected with `held reject`)")
        # Taken out first, in one transaction that refuses while it is being sent: once this
        # returns, the proxy can no longer start sending it.
        item, previous = store.begin_reject(item_id)
        try:
            audit(config, clock, event, {"hold": item.id, "kind": str(item.kind), "decision_id": item.decision_id,
                                         "by": by, "reason": reason, "state": previous})
        except BaseException:
            store.undo_reject(item_id, previous)
            raise
        if outcome is not None:
            notice = notices.for_outcome(item, outcome, tz=config.timezone, reason=reason)
            if notice is not None:
                # An item kept before the proxy knew whose login it came from is told to that login.
                login = _login_of(store, item_id) if item.teacher_id is None else None
                store.tell(item.teacher_id, item.id, outcome, notice[0], clock.now(), interrupts=notice[1],
                           login=login)
        store.remove(item_id)
        return item


def _login_of(store: HoldStore, item_id: str) -> str | None:
    """The Cookie header an item was sent with; None when its request cannot be read (a row edited by hand)."""
    try:
        return store.request(item_id).header("cookie")
    except (HoldError, ValueError, TypeError, KeyError):
        return None
