"""`dojoguard console user ...` and the console's certificate, with real files and a real audit log."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dojoguard import config as config_module
from dojoguard.audit.log import AuditLog
from dojoguard.cli import cli
from dojoguard.clock import FixedClock
from dojoguard.console import tls
from dojoguard.console.accounts import Accounts, LoginRefused
from dojoguard.environment import Environment

from .conftest import NOW, PASSWORD, write_config


def run(config, *args, input=None):
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj=Environment(clock=FixedClock(NOW)),
                              input=input)


def events(tmp_path):
    log = AuditLog.open(tmp_path / "data" / "audit.sqlite")
    try:
        return [(r.type, r.fields.get("account")) for r in log.records() if r.type.startswith("console.")]
    finally:
        log.close()


def test_accounts_are_added_listed_disabled_given_a_password_and_unlocked_with_audit(tmp_path):
    config = write_config(tmp_path)
    added = run(config, "console", "user", "add", "j.patel", "--role", "headteacher", "--password-stdin",
                input=PASSWORD + "\n")
    assert added.exit_code == 0 and "added j.patel (headteacher)" in added.output
    assert "j.patel" in run(config, "console", "user", "list").output
    again = run(config, "console", "user", "add", "j.patel", "--role", "leader", "--password-stdin", input=PASSWORD)
    assert again.exit_code == 1 and "there is already an account 'j.patel'" in again.output
    weak = run(config, "console", "user", "add", "k.lee", "--role", "leader", "--password-stdin", input="short\n")
    assert weak.exit_code == 1 and "at least 12 characters" in weak.output

    accounts = Accounts(tmp_path / "data" / "console.sqlite")
    for _ in range(5):
        with pytest.raises(LoginRefused):
            accounts.login("j.patel", "wrong", NOW, failures_allowed=5, lock_for=timedelta(minutes=15))
    accounts.close()
    assert "locked until" in run(config, "console", "user", "list").output
    assert run(config, "console", "user", "unlock", "j.patel").exit_code == 0
    assert "active" in run(config, "console", "user", "list").output
    assert run(config, "console", "user", "password", "j.patel", "--password-stdin",
               input="another three words\n").exit_code == 0
    assert run(config, "console", "user", "disable", "j.patel").exit_code == 0
    assert "disabled" in run(config, "console", "user", "list").output
    assert run(config, "console", "user", "disable", "nobody").exit_code == 1
    assert events(tmp_path) == [("console.account_added", "j.patel"), ("console.account_unlocked", "j.patel"),
                                ("console.password_set", "j.patel"), ("console.account_disabled", "j.patel")]


def test_the_console_refuses_to_serve_on_a_port_in_use_and_says_so(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(write_config(tmp_path), "console", "--listen", f"127.0.0.1:{port}")
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output


def test_a_certificate_is_made_once_owner_only_and_kept(tmp_path):
    cfg = config_module.load(write_config(tmp_path))
    made = tls.ensure(cfg, "console.school.example")
    assert made.made_now and made.key_file.stat().st_mode & 0o077 == 0
    cert = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "console.school.example" in names.get_values_for_type(x509.DNSName)
    again = tls.ensure(cfg, "console.school.example")
    assert not again.made_now and again.fingerprint == made.fingerprint


def _pair(folder, *, expired=False):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "school")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=10))
            .not_valid_after(now - timedelta(days=1) if expired else now + timedelta(days=10))
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "school.crt", folder / "school.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_file, 0o600)
    return cert_file, key_file


@pytest.mark.parametrize(("problem", "says"), [
    ("readable", "can be read by other users"),
    ("mismatched", "does not belong to the certificate"),
    ("expired", "expired on"),
    ("only-one", "set both console.certificate and console.key"),
])
def test_the_schools_own_certificate_is_checked_before_use(tmp_path, problem, says):
    cert_file, key_file = _pair(tmp_path, expired=problem == "expired")
    if problem == "readable":
        os.chmod(key_file, 0o644)
    if problem == "mismatched":
        other = tmp_path / "other"
        other.mkdir()
        _, key_file = _pair(other)
    console = {"certificate": str(cert_file)} if problem == "only-one" else \
        {"certificate": str(cert_file), "key": str(key_file)}
    cfg = config_module.load(write_config(tmp_path, **console))
    with pytest.raises(tls.CertificateProblem, match=says):
        tls.ensure(cfg, "localhost")


def test_an_accounts_trust_scope_is_set_listed_checked_and_audited(tmp_path):
    config = write_config(tmp_path)
    run(config, "console", "user", "add", "ceo", "--role", "headteacher", "--password-stdin", input=PASSWORD + "\n")
    done = run(config, "console", "user", "scope", "ceo", "--school", "st-wilfrids")
    assert done.exit_code == 0 and "ceo sees st-wilfrids of the trust" in done.output
    assert "trust: st-wilfrids" in run(config, "console", "user", "list").output
    assert run(config, "console", "user", "scope", "ceo", "--trust-wide").exit_code == 0
    assert "trust: every school" in run(config, "console", "user", "list").output
    bad = run(config, "console", "user", "scope", "ceo", "--school", "St Wilfrid's")
    assert bad.exit_code == 1 and "not a school id" in bad.output
    both = run(config, "console", "user", "scope", "ceo", "--school", "a", "--trust-wide")
    assert both.exit_code == 2 and "exactly one of" in both.output
    assert run(config, "console", "user", "scope", "nobody", "--none").exit_code == 1
    assert run(config, "console", "user", "scope", "ceo", "--none").exit_code == 0
    assert "trust:" not in run(config, "console", "user", "list").output
    log = AuditLog.open(tmp_path / "data" / "audit.sqlite")
    try:
        scoped = [r.fields["trust_scope"] for r in log.records() if r.type == "console.account_scoped"]
    finally:
        log.close()
    assert scoped == ["st-wilfrids", "*", "none"]
