"""Tests for keyed message fingerprints: a copy of the database cannot be used to test a guessed message."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from dojoguard.audit import fingerprints
from dojoguard.audit.chain import verify_chain
from dojoguard.audit.entry import decision_fields
from dojoguard.audit.log import AuditLog, AuditWriteError

from .conftest import make_action, make_decision, write_config

GUESS = "Please remember Tom's inhaler tomorrow"  # the text make_action() sends


def database_bytes(path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_a_guessed_message_cannot_be_found_in_the_log(tmp_path, log):
    """Hashing a guessed message (SHA-256, as the log used to store it) finds nothing in the database file."""
    log.append_decision(make_action(text=GUESS), make_decision())
    log.checkpoint()
    stored = database_bytes(log.path)
    assert hashlib.sha256(GUESS.encode()).hexdigest().encode() not in stored
    assert GUESS.encode() not in stored
    # With the key (kept outside the database) the school can still match it.
    key = fingerprints.load(log.path.parent / "keys" / fingerprints.KEY_NAME)
    assert key.of_text(GUESS).encode() in stored
    fields = log.head().fields
    assert fields["hashes"]["text_hmac"] == key.of_text(GUESS) and fields["hashes"]["text_key"] == key.key_id
    assert "text_sha256" not in fields["hashes"]


def test_the_key_lives_beside_the_signing_key_owner_only(tmp_path, clock):
    """The key is made in the signing key's folder (0700), mode 0600, never inside the database."""
    cfg = write_config(tmp_path, "audit:\n  signing_key: elsewhere/keys/audit-signing.key\n")
    path = fingerprints.key_path_for(cfg, cfg.path("audit", "database"))
    assert path == cfg.path("audit", "signing_key").parent / fingerprints.KEY_NAME
    with AuditLog.open(cfg.path("audit", "database"), clock=clock, fingerprint_key=path) as log:
        assert path.exists()  # made at opening when asked for, not on the first decision
        log.append_decision(make_action(), make_decision())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    secret = bytes.fromhex(path.read_text().strip())
    assert secret not in database_bytes(cfg.path("audit", "database"))


def test_a_key_other_users_can_read_is_refused_and_nothing_is_recorded(tmp_path, clock):
    """A key file readable by others is not used: the decision is refused (the proxy then blocks the write)."""
    database = tmp_path / "data" / "audit.sqlite"
    path = database.parent / "keys" / fingerprints.KEY_NAME
    with AuditLog.open(database, clock=clock, emit_decisions=False) as log:
        fingerprints.load_or_create(path)
        os.chmod(path, 0o644)
        count = log.count()
        with pytest.raises(AuditWriteError, match="readable by other users"):
            log.append_decision(make_action(), make_decision())
        assert log.count() == count
    with pytest.raises(AuditWriteError, match="chmod 600"):
        AuditLog.open(database, clock=clock)  # the proxy would not start


def test_a_damaged_key_file_is_refused(tmp_path):
    """A key file that is not 64 hex digits is refused with the reason, not replaced."""
    path = tmp_path / "keys" / fingerprints.KEY_NAME
    path.parent.mkdir()
    path.write_text("not a key\n")
    os.chmod(path, 0o600)
    with pytest.raises(fingerprints.FingerprintKeyError, match="64 hex digits"):
        fingerprints.load_or_create(path)
    assert path.read_text() == "not a key\n"


def test_old_sha256_records_and_a_new_key_still_verify(log):
    """Records holding the old text_sha256, and records under a replaced key, all verify; the key id tells them apart."""
    old = decision_fields(make_action(), make_decision(), fingerprints.FingerprintKey(b"\0" * 32))
    old["hashes"] = {"text_sha256": hashlib.sha256(GUESS.encode()).hexdigest()}
    log.write_in_transaction(lambda log_, pending: log_.insert("decision", "old-record", old, pending))
    log.append_decision(make_action(), make_decision())
    first_id = log.head().fields["hashes"]["text_key"]
    log._fingerprint = fingerprints.FingerprintKey(os.urandom(32))  # a key replaced later
    log.append_decision(make_action(), make_decision())
    assert log.head().fields["hashes"]["text_key"] != first_id
    chain = verify_chain(log.connection)
    assert chain.is_intact and chain.records == 4


def test_fingerprints_differ_between_keys_and_ids_reveal_nothing():
    """The same text under two keys gives unrelated fingerprints; the key id is not the key or its hash."""
    a, b = fingerprints.FingerprintKey(os.urandom(32)), fingerprints.FingerprintKey(os.urandom(32))
    assert a.of_text(GUESS) != b.of_text(GUESS)
    assert a.secret.hex() not in a.key_id and hashlib.sha256(a.secret).hexdigest()[:16] not in a.key_id
    assert "secret" not in repr(a) and a.secret.hex() not in repr(a)
