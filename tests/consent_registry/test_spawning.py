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
