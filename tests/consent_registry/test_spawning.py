"""The spawn context that keeps the workers a process pool starts, so that a stuck one can be ended."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from dojoguard.consent_registry.spawning import KeepingSpawnContext


def test_a_stuck_worker_is_ended_and_its_pool_reports_broken():
    """The pool's workers are the processes the context kept; killing them ends a stuck task for real."""
    context = KeepingSpawnContext()
    pool = ProcessPoolExecutor(max_workers=2, mp_context=context)
    try:
        pids = {pool.submit(os.getpid).result(timeout=60) for _ in range(4)}
        stuck = pool.submit(time.sleep, 600)
        assert pids <= {p.pid for p in context.started} and len(context.started) <= 2
        assert context.get_start_method() == "spawn"
        context.kill_alive()
        with pytest.raises(BrokenProcessPool):
            stuck.result(timeout=30)
        for process in context.started:
            process.join(timeout=10)
            assert not process.is_alive()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def test_a_worker_that_starts_after_the_others_were_ended_is_ended_too():
    """A pool growing while its workers are ended: the late starter must not outlive the broken pool."""
    context = KeepingSpawnContext()
    early = context.Process(target=time.sleep, args=(600,))
    early.start()
    late = context.Process(target=time.sleep, args=(600,))  # created before the kill, started after it
    context.kill_alive()
    late.start()
    for process in (early, late):
        process.join(timeout=10)
        assert not process.is_alive()
        assert process.exitcode == -9
