"""The image-check slots: free slots go round the requesters in turn, and no requester holds every worker."""

from __future__ import annotations

import asyncio

import pytest

from dojoguard.consent_registry.fairslots import FairSlots


async def _run(slots: FairSlots, requester: str, log: list, hold: asyncio.Event | float) -> None:
    async with slots.slot(requester):
        log.append(requester)
        if isinstance(hold, asyncio.Event):
            await hold.wait()
        else:
            await asyncio.sleep(hold)


def test_a_batch_does_not_go_first_past_a_later_requester():
    """With one slot, ten jobs of one requester then one of another: the other's runs second, not eleventh."""
    async def scenario():
        slots, log = FairSlots(1), []
        batch = [asyncio.create_task(_run(slots, "teacher:a", log, 0.01)) for _ in range(10)]
        await asyncio.sleep(0)
        other = asyncio.create_task(_run(slots, "teacher:b", log, 0.01))
        await asyncio.gather(*batch, other)
        return log

    log = asyncio.run(scenario())
    assert log.index("teacher:b") <= 2
    assert log.count("teacher:a") == 10


def test_one_requester_never_holds_every_slot():
    """With two slots and a per-requester cap of one, a second requester starts at once while the first is busy."""
    async def scenario():
        slots, log, release = FairSlots(2, per_requester=1), [], asyncio.Event()
        batch = [asyncio.create_task(_run(slots, "device:10.0.0.5", log, release)) for _ in range(5)]
        await asyncio.sleep(0.01)
        assert slots.busy == 1 and slots.waiting("device:10.0.0.5") == 4
        other = asyncio.create_task(_run(slots, "device:10.0.0.6", log, 0))
        await asyncio.wait_for(other, 1)  # finished while the batch's first job still holds its slot
        release.set()
        await asyncio.gather(*batch)
        return log

    log = asyncio.run(scenario())
    assert log[:2] == ["device:10.0.0.5", "device:10.0.0.6"]


def test_turns_go_round_three_requesters():
    """Three requesters with queued jobs are served a, b, c, a, b, c: none waits for another's whole batch."""
    async def scenario():
        slots, log, gate = FairSlots(1), [], asyncio.Event()
        first = asyncio.create_task(_run(slots, "x", log, gate))
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(_run(slots, who, log, 0)) for who in ("a", "a", "b", "b", "c", "c")]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, *tasks)
        return log

    assert asyncio.run(scenario()) == ["x", "a", "b", "c", "a", "b", "c"]


def test_a_cancelled_wait_gives_up_its_place_and_leaks_no_slot():
    """A check cancelled while it queues (its request went away) neither runs nor keeps a slot."""
    async def scenario():
        slots, log, gate = FairSlots(1), [], asyncio.Event()
        first = asyncio.create_task(_run(slots, "a", log, gate))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(_run(slots, "b", log, 0))
        await asyncio.sleep(0)
        doomed.cancel()
        gate.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await asyncio.wait_for(_run(slots, "c", log, 0), 1)
        return log, slots.busy

    log, busy = asyncio.run(scenario())
    assert log == ["a", "c"] and busy == 0


def test_an_error_in_a_job_returns_its_slot():
    """A job that raises still hands its slot on (a failed check must not shrink the pool)."""
    async def scenario():
        slots = FairSlots(1)
        with pytest.raises(RuntimeError):
            async with slots.slot("a"):
                raise RuntimeError("worker died")
        async with slots.slot("b"):
            return slots.busy

    assert asyncio.run(scenario()) == 1


def test_a_check_borrows_an_idle_worker_only_while_nobody_waits():
    """try_borrow takes a second slot beyond the requester's share only when one is idle and no one is queued,
    and a request arriving meanwhile gets the slot as soon as the borrowed one is returned."""
    async def scenario():
        slots = FairSlots(2, per_requester=1)
        await slots.acquire("teacher:a")
        assert slots.try_borrow("teacher:a") and slots.busy == 2
        assert not slots.try_borrow("teacher:a")  # no slot left
        other = asyncio.create_task(slots.acquire("teacher:b"))
        await asyncio.sleep(0)
        assert not other.done() and slots.waiting("teacher:b") == 1
        slots.release("teacher:a")  # the borrowed half finishes
        await asyncio.sleep(0)
        assert other.done() and slots.busy == 2
        assert not slots.try_borrow("teacher:a")  # full again
        slots.release("teacher:b")
        await slots.acquire("teacher:c")
        assert slots.busy == 2 and not slots.try_borrow("teacher:a")
        slots.release("teacher:c")
        assert slots.try_borrow("teacher:a")  # idle again, nobody waiting
        return slots

    slots = asyncio.run(scenario())
    assert slots.busy == 2


def test_nothing_is_borrowed_while_someone_waits():
    """With a request queued, a free slot goes to it, never to a borrower."""
    async def scenario():
        slots = FairSlots(2, per_requester=1)
        await slots.acquire("teacher:a")
        await slots.acquire("teacher:b")
        waiting = asyncio.create_task(slots.acquire("teacher:b"))  # b's second job waits for its share
        await asyncio.sleep(0)
        assert slots.waiting("teacher:b") == 1
        slots.release("teacher:a")
        # one slot is free but b is queued (over its share): a may not jump in by borrowing
        assert not slots.try_borrow("teacher:a")
        waiting.cancel()
        return True

    assert asyncio.run(scenario())
