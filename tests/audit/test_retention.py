"""Tests for the retention purge: old records go, the purge is recorded, and the rest still verifies."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit import retention
from dojoguard.audit.chain import verify_chain
from dojoguard.audit.log import AuditLog
from dojoguard.audit.verification import verify

from .conftest import START, invoke, make_action, make_decision, write_config


KEY = Ed25519PrivateKey.generate()


def purge(log, before, **options):
    """The purge as the daily job runs it: signed, under a retention short enough for these few days."""
    options.setdefault("key", KEY)
    return retention.purge(log, before, retention_days=1, **options)


def spread(log, clock, days=30):
    """One decision a day for ``days`` days from START."""
    for day in range(days):
        clock.set(START + timedelta(days=day, hours=1))
        log.append_decision(make_action(), make_decision())


def test_purge_removes_old_records_and_the_rest_verifies(log, clock):
    """Records before the cut go; the purge record carries the last removed hash; verification starts from it."""
    spread(log, clock)
    rows = log.rows()
    cut = START + timedelta(days=10)
    result = purge(log, cut)
    # The creation record and days 0..9 were written before the cut.
    assert result.records == 11 and result.first_seq == 1 and result.last_seq == 11
    assert result.last_hash == rows[10][6]
    head = log.head()
    assert head.type == "retention.purged" and head.fields["last_hash"] == rows[10][6]
    chain = verify_chain(log.connection)
    assert chain.is_intact and chain.first_seq == 12 and chain.anchor == (11, rows[10][6])
    assert all(r.at >= cut for r in log.records(types=("decision",)))


def test_dry_run_changes_nothing(log, clock):
    """--dry-run reports what would be removed and leaves the log byte for byte as it was."""
    spread(log, clock, 5)
    before = log.rows()
    result = purge(log, START + timedelta(days=3), dry_run=True)
    assert result.records == 4 and result.dry_run
    assert log.rows() == before


def test_nothing_to_purge_writes_nothing(log, clock):
    """A purge with nothing old enough removes nothing and adds no record."""
    spread(log, clock, 3)
    count = log.count()
    assert purge(log, START - timedelta(days=1)).records == 0
    assert log.count() == count


def test_forging_the_cut_is_caught(log, clock):
    """Removing more records than the purge record accounts for breaks verification at the first kept record."""
    spread(log, clock, 10)
    purge(log, START + timedelta(days=3))
    log.connection.execute("DROP TRIGGER records_delete_only_by_purge")
    first_kept = verify_chain(log.connection).first_seq
    log.connection.execute("DELETE FROM records WHERE seq = ?", (first_kept,))
    broken = verify_chain(log.connection).first_break
    assert broken is not None and broken.seq == first_kept + 1


def test_checkpoints_before_the_cut_are_reported_not_failed(tmp_path, log, clock):
    """A checkpoint of purged records is 'before-cut' (not a failure); a later one still matches."""
    key, folder = tmp_path / "k.key", tmp_path / "cps"
    spread(log, clock, 3)
    _, early = checkpoints.write_checkpoint(log, key, folder)
    for day in range(3, 10):
        clock.set(START + timedelta(days=day, hours=1))
        log.append_decision(make_action(), make_decision())
    _, late = checkpoints.write_checkpoint(log, key, folder)
    purge(log, START + timedelta(days=5), key=checkpoints.load_key(key))
    public = checkpoints.load_public_key(folder / checkpoints.PUBLIC_KEY_NAME)
    result = verify(log, checkpoint_files=[early, late], public_key=public)
    assert result.is_ok
    assert [c.status for c in result.checkpoints] == ["before-cut", "ok"]


def test_purge_command_uses_retention_days(tmp_path, clock):
    """`audit purge` cuts at audit.retention_days before now; --dry-run says what it would do."""
    cfg_path = tmp_path / "config.yaml"
    write_config(tmp_path, "audit:\n  retention_days: 20\n")
    db = tmp_path / "data" / "audit.sqlite"
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        spread(log, clock, 30)
    clock.set(START + timedelta(days=40))  # 20 days' retention: the first 20 days go
    result, output = invoke(cfg_path, "audit", "purge", "--dry-run", clock=clock)
    assert result.exit_code == 0, output
    assert "would remove 21 record(s) (1 to 21)" in output
    result, output = invoke(cfg_path, "audit", "purge", "--before", "2026-12-01", clock=clock)
    assert result.exit_code == 0, output
    assert "removed 9 record(s) (1 to 9)" in output
    result, output = invoke(cfg_path, "audit", "verify", clock=clock)
    assert result.exit_code == 0, output
    assert "starting from the signed retention cut after record 9" in output
