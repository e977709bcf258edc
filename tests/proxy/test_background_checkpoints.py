"""The proxy's checkpoint loop: started by time and by record count, run off the event loop."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.log import AuditLog
from dojoguard.proxy.background import Background
from tests.audit.conftest import make_action, make_decision, write_config


def run_background(tmp_path, audit_yaml: str, scenario):
    cfg = write_config(tmp_path, audit_yaml)
    log = AuditLog.open(cfg.path("audit", "database"), emit_decisions=False, deferred_sync=True)
    background = Background(SimpleNamespace(audit=log), cfg)

    async def main():
        await background._start_checkpoints()
        try:
            return await scenario(log, background)
        finally:
            await background.stop()

    try:
        return cfg, asyncio.run(main())
    finally:
        log.close()


def test_a_few_records_are_checkpointed_after_checkpoint_every_s(tmp_path):
    """Three decisions, far fewer than 100, are covered by a checkpoint once checkpoint_every_s has passed."""
    async def scenario(log, background):
        for _ in range(3):
            log.try_append_decision(make_action(), make_decision())
        head = log.committed_seq
        await asyncio.sleep(1.6)
        return head

    cfg, head = run_background(tmp_path, "audit:\n  checkpoint_every_s: 0.5\n", scenario)
    files = checkpoints.files(cfg.path("audit", "checkpoint_dir"))
    assert files and checkpoints.read(files[0]).seq == head
    assert len(files) == 1  # nothing new afterwards: no more checkpoints


def test_the_hundredth_record_starts_a_checkpoint_without_blocking_the_loop(tmp_path):
    """Records committed on the event loop set off a checkpoint at 100; the loop keeps turning while it is made."""
    async def scenario(log, background):
        lags = []

        async def ticker():
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - before)

        tick = asyncio.create_task(ticker())
        for _ in range(105):
            # As the judge does: on the loop when the log is free, else from a thread.
            if log.try_append_decision(make_action(), make_decision()) is None:
                await asyncio.to_thread(log.append_decision, make_action(), make_decision(), durable=False)
            await asyncio.sleep(0)
        for _ in range(200):
            if background.cadence.covered >= 100:
                break
            await asyncio.sleep(0.01)
        tick.cancel()
        return background.cadence.covered, max(lags)

    cfg, (covered, worst_lag) = run_background(tmp_path, "audit:\n  checkpoint_every_s: 3600\n", scenario)
    assert covered >= 100
    assert checkpoints.files(cfg.path("audit", "checkpoint_dir"))
    assert worst_lag < 0.25  # the signing, file writes and flushes ran on a worker thread


def test_a_checkpoint_that_cannot_be_signed_is_recorded_once(tmp_path):
    """A signing key other users can read stops checkpoints: the failure is recorded once, not every minute."""
    key = tmp_path / "data" / "keys" / "audit-signing.key"
    key.parent.mkdir(parents=True)
    key.write_text("not a key")
    key.chmod(0o644)

    async def scenario(log, background):
        for _ in range(3):
            log.try_append_decision(make_action(), make_decision())
            await asyncio.sleep(0.4)
        await asyncio.sleep(0.8)
        return [r.fields for r in log.records(types=("job.failed",))]

    cfg, failures = run_background(tmp_path, "audit:\n  checkpoint_every_s: 0.2\n", scenario)
    assert len(failures) == 1 and failures[0]["job"] == "checkpoint_cadence"
    assert "readable by other users" in failures[0]["error"]
