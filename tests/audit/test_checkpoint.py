"""Tests for signed checkpoints and `dojoguard audit verify`: rewrites, truncation and forged checkpoints are caught."""

from __future__ import annotations

import json
import stat

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.log import AuditLog
from dojoguard.audit.verification import verify
from dojoguard.cli import cli

from .conftest import make_action, make_decision, write_config


def fill(log, n=5):
    for _ in range(n):
        log.append_decision(make_action(), make_decision())


def test_signing_key_is_created_owner_only_and_public_key_exported(tmp_path, log):
    """The first checkpoint creates a 0600 Ed25519 key outside the database and exports its public half."""
    fill(log)
    key_path = tmp_path / "keys" / "audit-signing.key"
    checkpoint, path = checkpoints.write_checkpoint(log, key_path, tmp_path / "cps")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    public = checkpoints.load_public_key(tmp_path / "cps" / checkpoints.PUBLIC_KEY_NAME)
    assert checkpoints.is_signed_by(checkpoints.read(path), public)
    assert checkpoint.seq == 6 and checkpoint.hash == log.rows()[5][6]
    assert log.head().type == "checkpoint.written" and log.head().fields["seq"] == 6


def test_checkpoint_matches_the_untouched_log(tmp_path, log):
    """A checkpoint taken earlier verifies against the log as it grows."""
    fill(log)
    _, path = checkpoints.write_checkpoint(log, tmp_path / "k.key", tmp_path / "cps")
    fill(log)
    public = checkpoints.load_public_key(tmp_path / "cps" / checkpoints.PUBLIC_KEY_NAME)
    result = verify(log, checkpoint_files=[path], public_key=public)
    assert result.is_ok and [c.status for c in result.checkpoints] == ["ok"]


def test_a_rebuilt_chain_is_caught_by_the_checkpoint(tmp_path, log):
    """Rewriting a record and recomputing every later hash passes the chain but fails the signed checkpoint."""
    fill(log)
    _, path = checkpoints.write_checkpoint(log, tmp_path / "k.key", tmp_path / "cps")
    conn = log.connection
    conn.execute("DROP TRIGGER records_append_only")
    from dojoguard.audit.record import seal
    rows = log.rows()
    prev = rows[2][5]
    for seq, rid, at, type_, body, _prev, _hash in rows[2:]:
        if seq == 3:
            body = body.replace('"block"', '"allow"')
        new_hash = seal(seq, rid, at, type_, prev, body)
        conn.execute("UPDATE records SET body=?, prev=?, hash=? WHERE seq=?", (body, prev, new_hash, seq))
        prev = new_hash
    public = checkpoints.load_public_key(tmp_path / "cps" / checkpoints.PUBLIC_KEY_NAME)
    result = verify(log, checkpoint_files=[path], public_key=public)
    assert result.chain.is_intact
    assert not result.is_ok and "rewritten" in result.checkpoints[0].detail


def test_a_cut_short_log_is_caught_by_the_checkpoint(tmp_path, log):
    """Deleting the newest records leaves a valid chain, but a checkpoint beyond its end fails."""
    fill(log)
    _, path = checkpoints.write_checkpoint(log, tmp_path / "k.key", tmp_path / "cps")
    log.connection.execute("DROP TRIGGER records_delete_only_by_purge")
    log.connection.execute("DELETE FROM records WHERE seq >= 5")
    public = checkpoints.load_public_key(tmp_path / "cps" / checkpoints.PUBLIC_KEY_NAME)
    result = verify(log, checkpoint_files=[path], public_key=public)
    assert result.chain.is_intact and not result.is_ok
    assert "missing" in result.checkpoints[0].detail


def test_an_edited_or_foreign_checkpoint_fails(tmp_path, log):
    """A checkpoint whose content was edited, or that another key signed, is refused."""
    fill(log)
    _, path = checkpoints.write_checkpoint(log, tmp_path / "k.key", tmp_path / "cps")
    public = checkpoints.load_public_key(tmp_path / "cps" / checkpoints.PUBLIC_KEY_NAME)
    doc = json.loads(path.read_text())
    doc["seq"] = 3
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    other = checkpoints.sign(Ed25519PrivateKey.generate(), log_id=log.log_id, seq=2, hash_="00",
                             record_at=log.clock.now(), written_at=log.clock.now())
    foreign = checkpoints.write(other, tmp_path / "foreign")
    result = verify(log, checkpoint_files=[edited, foreign], public_key=public)
    details = {c.source: (c.status, c.detail) for c in result.checkpoints}
    assert details[str(edited)][0] == "failed" and "signature" in details[str(edited)][1]
    assert details[str(foreign)][0] == "failed" and "another key" in details[str(foreign)][1]


def test_verify_command_passes_then_names_the_first_bad_record(tmp_path):
    """`audit verify` exits 0 on a good log and 1 naming the first changed record."""
    cfg_path = tmp_path / "config.yaml"
    write_config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(cfg_path), "audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    db = tmp_path / "data" / "audit.sqlite"
    with AuditLog.open(db, emit_decisions=False) as log:
        fill(log, 4)
    result = runner.invoke(cli, ["--config", str(cfg_path), "audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "ok: 6 record(s) verified" in result.output and "1 checkpoint(s) match" in result.output
    with AuditLog.open(db, emit_decisions=False) as log:
        log.connection.execute("DROP TRIGGER records_append_only")
        log.connection.execute("UPDATE records SET body = replace(body, 'block', 'allow') WHERE seq = 4")
        bad_id = log.rows()[3][1]
    result = runner.invoke(cli, ["--config", str(cfg_path), "audit", "verify"])
    assert result.exit_code == 1, result.output
    assert f"FAILED: record 4 ({bad_id})" in result.output


def test_verify_with_an_outside_public_key_and_checkpoint(tmp_path):
    """A verifier holding only a checkpoint file and the public key can check a copy of the log."""
    cfg_path = tmp_path / "config.yaml"
    write_config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(cfg_path), "audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    key = runner.invoke(cli, ["--config", str(cfg_path), "audit", "public-key"])
    assert key.exit_code == 0 and "BEGIN PUBLIC KEY" in key.output
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "log.pub").write_text(key.output.split("fingerprint")[0])
    cp = next((tmp_path / "data" / "checkpoints").glob("checkpoint-*.json"))
    result = runner.invoke(cli, ["--config", str(cfg_path), "audit", "verify", "--checkpoint", str(cp),
                                 "--public-key", str(outside / "log.pub"),
                                 "--database", str(tmp_path / "data" / "audit.sqlite")])
    assert result.exit_code == 0, result.output
    assert "(record 1): ok" in result.output
