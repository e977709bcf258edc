"""Tests for the signed retention purge: history cannot be deleted by writing a purge record by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit import retention
from dojoguard.audit.jobs import Jobs
from dojoguard.audit.log import AuditLog
from dojoguard.audit.verification import verify

from . import attacker
from .conftest import START, invoke, make_action, make_decision, write_config

RETENTION = "audit:\n  retention_days: 20\n"


def school_log(tmp_path, clock, days=40):
    """Settings with 20 days' retention and a log of ``days`` days: a decision, a consent change, an exemption."""
    cfg = write_config(tmp_path, RETENTION)
    db = cfg.path("audit", "database")
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        for day in range(days):
            clock.set(START + timedelta(days=day, hours=1))
            log.append_decision(make_action(), make_decision())
            if day == 2:
                log.append_event("exemption.granted", {"exemption": "ex-trip", "rules": ["r-1"],
                                                       "granted_by": "head"})
            if day == 3:
                log.append_event("consent.changed", {"pupil": "s-5", "purpose": "class_story",
                                                     "from": "given", "to": "refused"})
    return cfg, db


def signing_key(cfg) -> Ed25519PrivateKey:
    return checkpoints.load_or_create_key(cfg.path("audit", "signing_key"))


def test_a_forged_purge_of_the_first_records_is_refused(tmp_path, clock):
    """Deleting records 1-30 and appending an unsigned purge record fails verify, even with a checkpoint at 30."""
    cfg, db = school_log(tmp_path, clock, days=27)
    result, output = invoke(tmp_path / "config.yaml", "audit", "checkpoint", clock=clock)
    assert result.exit_code == 0, output
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        assert log.head().seq == 31 and log.head().type == "checkpoint.written"
        for _ in range(5):
            log.append_decision(make_action(), make_decision())
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", clock=clock)
    assert result.exit_code == 0, output

    attacker.forge_purge(db, 30)

    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", clock=clock)
    assert result.exit_code == 1, output
    assert "(record 30): ok: matches the retention cut" in output  # what used to pass as the whole answer
    assert "refused: it is not signed" in output
    assert "FAILED: the log starts from a retention purge that cannot be trusted" in output


def test_a_purge_signed_by_another_key_is_refused(tmp_path, clock):
    """A purge record signed with the attacker's own Ed25519 key is refused: it is not the trusted key."""
    cfg, db = school_log(tmp_path, clock)
    signing_key(cfg)  # the school's key exists (and its public half is what verify trusts)
    own = Ed25519PrivateKey.generate()
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        log_id = log.log_id
    fields = {"before": "2026-11-25T00:00:00.000000Z", "records": 10, "first_seq": 1, "last_seq": 10,
              "last_at": "2026-11-24T00:00:00.000000Z", "retention_days": 20,
              "purged_at": "2026-12-30T00:00:00.000000Z"}
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        fields["last_hash"] = log.rows()[9][6]
    fields.update(retention.sign_purge(own, log_id, fields))
    attacker.forge_purge(db, 10, fields)
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", clock=clock)
    assert result.exit_code == 1, output
    assert "signed by another key" in output


def test_an_edited_signed_purge_is_refused(tmp_path, clock):
    """Moving a real purge record's cut later (and re-sealing the chain) breaks its signature."""
    cfg, db = school_log(tmp_path, clock)
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        retention.purge(log, retention.cutoff(clock.now(), 20), retention_days=20, key=signing_key(cfg))
        purge_seq = log.head().seq
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", clock=clock)
    assert result.exit_code == 0, output
    attacker.edit_fields(db, purge_seq, {"retention_days": 2})
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", clock=clock)
    assert result.exit_code == 1, output
    assert "its signature does not match" in output


def test_a_signed_purge_of_records_younger_than_the_retention_is_refused(tmp_path, clock):
    """A purge made with the real key but a shorter retention than the one in force fails verify."""
    cfg, db = school_log(tmp_path, clock)
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        retention.purge(log, retention.cutoff(clock.now(), 3), retention_days=3, key=signing_key(cfg))
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", clock=clock)
    assert result.exit_code == 1, output
    assert "younger than the retention in force (20 days" in output
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", "--retention-days", "3", clock=clock)
    assert result.exit_code == 0, output


def test_a_purge_record_claiming_a_cut_it_did_not_honour_is_refused(tmp_path, clock):
    """A signed purge whose own fields say it removed a record newer than its cut is refused."""
    cfg, db = school_log(tmp_path, clock)
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        fields = {"before": "2026-11-25T00:00:00.000000Z", "records": 10, "first_seq": 1, "last_seq": 10,
                  "last_hash": "0" * 64, "last_at": "2026-12-02T00:00:00.000000Z", "retention_days": 20,
                  "purged_at": "2026-12-30T00:00:00.000000Z"}
        fields.update(retention.sign_purge(signing_key(cfg), log.log_id, fields))
        problem = retention.check_purge(fields, log.log_id, signing_key(cfg).public_key(), now=clock.now(),
                                        retention_days=20)
    assert problem is not None and "after its own cut" in problem


def test_the_purge_refuses_to_cut_inside_the_retention(tmp_path, clock):
    """`audit purge --before` a day younger than retention_days is refused and removes nothing."""
    cfg, db = school_log(tmp_path, clock)
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        count = log.count()
        with pytest.raises(retention.PurgeRefused, match="retention_days is 20"):
            retention.purge(log, clock.now() - timedelta(days=5), retention_days=20, key=signing_key(cfg))
    result, output = invoke(tmp_path / "config.yaml", "audit", "purge", "--before", "2026-12-30", clock=clock)
    assert result.exit_code != 0
    assert "refusing to remove records written after" in output and "Hint:" in output
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        assert log.count() == count


def test_the_daily_purge_is_signed_and_verifies(tmp_path, clock):
    """The scheduled purge signs its record with the audit signing key; verify accepts it and names the cut."""
    cfg, db = school_log(tmp_path, clock)
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        Jobs(cfg, log, clock).purge(clock.now())
        head = log.head()
        assert head.type == "retention.purged"
        assert head.fields["retention_days"] == 20 and head.fields["signature"]
        public = signing_key(cfg).public_key()
        result = verify(log, public_key=public, retention_days=20)
    assert result.is_ok and [p.is_ok for p in result.purges] == [True]
    result, output = invoke(tmp_path / "config.yaml", "audit", "verify", clock=clock)
    assert result.exit_code == 0, output
    assert "starting from the signed retention cut after record" in output


def test_verify_without_a_public_key_refuses_a_purged_log(tmp_path, clock):
    """With no public key anywhere, a log that starts from a purge cannot be passed as verified."""
    cfg, db = school_log(tmp_path, clock)
    with AuditLog.open(db, clock=clock, emit_decisions=False) as log:
        retention.purge(log, retention.cutoff(clock.now(), 20), retention_days=20, key=signing_key(cfg))
        result = verify(log, public_key=None, retention_days=20)
    assert not result.is_ok and "no public key" in result.purges[0].problem


def test_the_leaders_report_calls_a_log_cut_by_a_forged_purge_broken(tmp_path, clock):
    """The report leaders read checks purges as ``audit verify`` does: a forged purge is not "intact"."""
    import json

    cfg, db = school_log(tmp_path, clock, days=27)
    result, output = invoke(tmp_path / "config.yaml", "audit", "checkpoint", clock=clock)
    assert result.exit_code == 0, output

    def report() -> dict:
        out = tmp_path / "report.json"
        result, output = invoke(tmp_path / "config.yaml", "audit", "report", "--from", "2026-11-01", "--to",
                                "2026-12-31", "--format", "json", "-o", out, clock=clock)
        assert result.exit_code == 0, output
        return json.loads(out.read_text())["audit_log"]

    before = report()
    assert before["intact"] is True and before["detail"].startswith("all ")
    attacker.forge_purge(db, 30)
    after = report()
    assert after["intact"] is False
    assert "retention purge" in after["detail"] and "not signed" in after["detail"]
