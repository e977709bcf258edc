"""Tests for frequent, published checkpoints: only the last minute or hundred records can be changed unnoticed."""

from __future__ import annotations

import shutil
from datetime import timedelta

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.cadence import Cadence
from dojoguard.audit.jobs import Jobs
from dojoguard.audit.log import AuditLog
from dojoguard.audit.verification import verify

from . import attacker
from .conftest import START, invoke, make_action, make_decision, write_config


def settings(tmp_path):
    """Settings whose checkpoints are published to a folder standing for the governors' share."""
    share = tmp_path / "governors"
    share.mkdir()
    cfg = write_config(tmp_path, f'audit:\n  checkpoint_publish_dir: "{share}"\n')
    return cfg, share


def cadence_for(cfg, log, **options) -> Cadence:
    publish = cfg.path("audit", "checkpoint_publish_dir")
    return Cadence(log, cfg.path("audit", "signing_key"), cfg.path("audit", "checkpoint_dir"),
                   [publish] if publish else [], **options)


def decide(log, clock, n, *, seconds_apart=1.0):
    for _ in range(n):
        clock.set(clock.now() + timedelta(seconds=seconds_apart))
        log.append_decision(make_action(), make_decision())


def test_the_hundredth_record_asks_for_a_checkpoint_that_is_published(tmp_path, clock):
    """Record 100 after the last checkpoint wakes the cadence once; its checkpoint covers the head and is published."""
    cfg, share = settings(tmp_path)
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        cadence = cadence_for(cfg, log)
        woken = []
        cadence.wake_with(lambda: woken.append(log.committed_seq))
        log.watch_commits(cadence.note)
        decide(log, clock, 98)
        assert woken == []  # audit.created and 98 decisions: 99 uncovered records
        decide(log, clock, 3)
        assert woken == [100]
        checkpoint = cadence.run()
        assert checkpoint is not None and checkpoint.seq == 102 and cadence.covered == 102
        head = log.head()
        assert head.type == "checkpoint.written" and head.fields["published"] == 1
    published = checkpoints.files(share)
    assert [p.name for p in published] == [head.fields["file"]]
    local = cfg.path("audit", "checkpoint_dir") / head.fields["file"]
    assert published[0].read_bytes() == local.read_bytes()
    assert (share / checkpoints.PUBLIC_KEY_NAME).exists()
    assert not [p for p in share.iterdir() if p.name.startswith(".")]  # written atomically: no leftovers


def test_an_idle_log_gets_no_more_checkpoints(tmp_path, clock):
    """With nothing new but the last checkpoint's own record, no checkpoint is owed and nothing is written."""
    cfg, share = settings(tmp_path)
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        decide(log, clock, 3)
        cadence = cadence_for(cfg, log)
        assert cadence.is_owed() and cadence.run() is not None
        count = log.count()
        assert not cadence.is_owed() and cadence.run() is None and cadence.run() is None
        assert log.count() == count
        decide(log, clock, 1)
        assert cadence.is_owed()
    # A restarted proxy picks up where the log says the last checkpoint was.
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        assert cadence_for(cfg, log).covered == count - 1
    assert len(checkpoints.files(share)) == 1


def test_an_unreachable_share_is_recorded_and_published_later(tmp_path, clock):
    """A missing publish folder is not made locally: the checkpoint is kept, the failure recorded, and it is published once the share is back."""
    cfg, share = settings(tmp_path)
    share.rmdir()  # the share is not mounted
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        decide(log, clock, 3)
        cadence = cadence_for(cfg, log)
        checkpoint = cadence.run()
        assert checkpoint is not None and not share.exists()
        kinds = [r.type for r in log.records()][-2:]
        assert kinds == ["checkpoint.written", "checkpoint.unpublished"]
        assert log.head().fields["error"].endswith("(is the share mounted?)")
        share.mkdir()
        assert cadence.run() is None  # nothing new: the kept checkpoint is published again
    assert [p.name for p in checkpoints.files(share)] == [checkpoint_file(cfg)]


def test_a_long_outage_is_recorded_once_not_every_checkpoint(tmp_path, clock):
    """Checkpoints go on while the share is down; the failure is recorded once, then again after it recovers."""
    cfg, share = settings(tmp_path)
    share.rmdir()
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        cadence = cadence_for(cfg, log)
        for _ in range(4):
            decide(log, clock, 3)
            assert cadence.run() is not None
        kinds = [r.type for r in log.records()]
        assert kinds.count("checkpoint.written") == 4 and kinds.count("checkpoint.unpublished") == 1
        share.mkdir()
        decide(log, clock, 3)
        cadence.run()
        shutil.rmtree(share)  # unmounted again
        decide(log, clock, 3)
        cadence.run()
        assert [r.type for r in log.records()].count("checkpoint.unpublished") == 2


def checkpoint_file(cfg) -> str:
    return checkpoints.files(cfg.path("audit", "checkpoint_dir"))[-1].name


def test_the_daily_job_publishes_too(tmp_path, clock):
    """The daily (and shutdown) checkpoint goes to the publish folder as well as the local one."""
    cfg, share = settings(tmp_path)
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        decide(log, clock, 2)
        Jobs(cfg, log, clock).checkpoint()
    assert [p.name for p in checkpoints.files(share)] == [checkpoint_file(cfg)]


def filled(tmp_path, clock, records=250):
    """A log written with the cadence running as the proxy runs it; returns (settings, share, database)."""
    cfg, share = settings(tmp_path)
    db = cfg.path("audit", "database")
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        cadence = cadence_for(cfg, log)
        owed = []
        cadence.wake_with(lambda: owed.append(True))
        log.watch_commits(cadence.note)
        for _ in range(records):
            decide(log, clock, 1)
            if owed:
                owed.clear()
                cadence.run()
    return cfg, share, db


def test_rewriting_history_before_the_published_checkpoint_is_caught(tmp_path, clock):
    """Opening the SQLite file, changing a verdict and re-hashing the chain fails against the published folder."""
    cfg, share, db = filled(tmp_path, clock)
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", "--checkpoint", share, clock=clock)
    assert result.exit_code == 0, output
    attacker.rewrite(db, 150, '"verdict":"block"', '"verdict":"allow"')
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", "--checkpoint", share, clock=clock)
    assert result.exit_code == 1, output
    assert "differs from the signed checkpoint: the log was rewritten" in output


def test_deleting_the_newest_hour_is_caught(tmp_path, clock):
    """Deleting every record from some point on (a valid, shorter chain) fails against the published checkpoints."""
    cfg, share, db = filled(tmp_path, clock)
    attacker.delete_from(db, 180)
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", "--checkpoint", share, clock=clock)
    assert result.exit_code == 1, output
    assert "the log was cut short or rebuilt" in output


def test_deleting_the_local_checkpoints_does_not_help(tmp_path, clock):
    """With the local checkpoint folder emptied too, the published copies still catch a rebuilt log."""
    cfg, share, db = filled(tmp_path, clock)
    for path in cfg.path("audit", "checkpoint_dir").iterdir():
        path.unlink()
    attacker.rewrite(db, 20, '"verdict":"block"', '"verdict":"allow"')
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", clock=clock)  # default: both folders
    assert result.exit_code == 1, output
    assert "the log was rewritten" in output


def test_only_the_unprotected_tail_can_change_and_verify_says_how_long_it_is(tmp_path, clock):
    """Records after the newest published checkpoint (at most 100) are the only ones a rewrite survives; verify counts them."""
    cfg, share, db = filled(tmp_path, clock, records=250)
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", "--checkpoint", share, clock=clock)
    assert result.exit_code == 0, output
    newest = max(checkpoints.read(p).seq for p in checkpoints.files(share))
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        head = log.head().seq
    tail = head - newest
    assert 0 < tail <= 100
    assert f"unprotected tail: {tail} record(s), " in output
    assert f"s after the newest matching checkpoint (record {newest})" in output
    attacker.rewrite(db, newest + 2, '"verdict":"block"', '"verdict":"allow"')
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", "--checkpoint", share, clock=clock)
    assert result.exit_code == 0, output  # the chain alone cannot tell: hence the short tail
    attacker.rewrite(db, newest, '"verdict":"block"', '"verdict":"allow"')
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", "--checkpoint", share, clock=clock)
    assert result.exit_code == 1, output


def test_a_log_without_checkpoints_is_all_tail(tmp_path, clock):
    """Verify says plainly when no checkpoint matched: the whole log is unprotected."""
    with AuditLog.open(tmp_path / "data" / "audit.sqlite", clock=clock, emit_decisions=False) as log:
        decide(log, clock, 3)
        result = verify(log)
    assert result.is_ok and result.tail.records == 4 and result.tail.after_seq is None


def test_a_minute_is_the_longest_a_busy_tail_waits(tmp_path, clock):
    """Fewer than 100 records still get a checkpoint once is_owed: the proxy's timer runs it every checkpoint_every_s."""
    cfg, share = settings(tmp_path)
    assert cfg["audit"]["checkpoint_every_s"] == 60 and cfg["audit"]["checkpoint_every_records"] == 100
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, emit_decisions=False) as log:
        clock.set(START)
        decide(log, clock, 5)
        cadence = cadence_for(cfg, log)
        assert cadence.is_owed()
        assert cadence.run().seq == log.head().seq - 1


def test_verify_says_when_the_published_copies_cannot_be_reached(tmp_path, clock):
    """With the share unmounted, verify says it checked only the local checkpoints rather than passing quietly."""
    cfg, share, db = filled(tmp_path, clock, records=120)
    share.rename(tmp_path / "unmounted")
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", clock=clock)
    assert result.exit_code == 0, output
    assert "cannot be reached; only the local checkpoints" in output
