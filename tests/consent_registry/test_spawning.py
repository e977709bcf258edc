"""The spawn context that keeps the workers a process pool starts, so that a stuck one can be ended."""

from __future__ import annotations

import os
import time
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from dojoguard.consent_registry.spawning import KeepingSpawnContext


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether the process has ended, as the system sees it (gone, or a zombie waiting to be reaped).

    Not ``Process.is_alive()``: the pool's own thread reaps its workers too,
    and a poll racing it can find the child already reaped and answer "alive".
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


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
            assert _gone(process.pid)
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
        assert _gone(process.pid)
        assert process.exitcode == -9
