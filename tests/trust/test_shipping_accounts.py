"""A proxy's own shipping account on the real server: it ships its node and can do nothing else."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.log import AuditLog
from dojoguard.audit.record import seal
from dojoguard.cli import cli
from dojoguard.trust import accounts
from dojoguard.trust.central import Central, NodeMismatch, TrustError
from dojoguard.trust.shipper import Shipper, ShipSettings
from dojoguard.trust.verify import verify
from tests.support.postgres import as_account
from tests.trust.test_central import chain, register


@pytest.fixture
def store(postgres, central_dsn):
    central = Central.open(central_dsn)
    other, _ = register(central, "b-1", "school-b", log_id="log-b")
    central.add(other, chain(3))
    account = f"ship_{central_dsn.rsplit('/', 1)[1]}"
    postgres.create_login(account)
    accounts.allow_shipper(central, account, "a-1", "school-a")
    yield central, as_account(central_dsn, account), account
    central.close()


def _ship(tmp_path, dsn: str, node: str = "a-1", school: str = "school-a") -> Shipper:
    log = AuditLog.open(tmp_path / "audit.sqlite")
    for i in range(5):
        log.append_event("report.sent", {"period_from": "a", "period_to": "b", "file": f"r{i}", "recipients": 0})
    checkpoints.write_checkpoint(log, tmp_path / "signing.key", tmp_path / "checkpoints")
    log.close()
    return Shipper(ShipSettings(database=dsn, school=school, node=node, audit_database=tmp_path / "audit.sqlite",
                                checkpoint_dir=tmp_path / "checkpoints", signing_key=tmp_path / "signing.key"))


def test_a_proxys_own_account_ships_its_node(tmp_path, store):
    central, dsn, _account = store
    shipper = _ship(tmp_path, dsn)
    try:
        assert shipper.ship_all() == 7
        assert shipper.ship_all() == 0
    finally:
        shipper.close()
    checks = {c.node: c for c in verify(central)}
    assert checks["a-1"].is_ok and checks["a-1"].checkpoints == 1 and checks["a-1"].records == 7
    # What it reads is its own node only.
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT DISTINCT node FROM records").fetchall() == [("a-1",)]
        assert conn.execute("SELECT node FROM nodes").fetchall() == [("a-1",)]


def test_it_cannot_register_as_another_node_or_in_another_school(tmp_path, store):
    _central, dsn, _account = store
    for node, school in (("a-2", "school-a"), ("a-1", "school-b")):
        shipper = _ship(tmp_path / node / school, dsn, node, school)
        try:
            with pytest.raises(NodeMismatch, match="may not register"):
                shipper.ship_all()
        finally:
            shipper.close()


def test_it_cannot_write_into_another_nodes_chain_nor_change_anything(store):
    central, dsn, _account = store
    register_b = central.node("b-1")
    seq, at = register_b.last_seq + 1, "2026-12-07T09:00:10.000000Z"
    body = '{"verdict":"allow"}'
    forged = (seq, "forged", at, "decision", body, register_b.last_hash,
              seal(seq, "forged", at, "decision", register_b.last_hash, body))
    with psycopg.connect(dsn, autocommit=True) as conn:
        # It can read the other node's end of chain only through the owner; even given it, it cannot append.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO records (node, seq, id, at, type, body, prev, hash, school) "
                         "VALUES ('b-1', %s, %s, %s, %s, %s, %s, %s, 'school-b')", forged)
        for statement in ("UPDATE nodes SET last_hash = repeat('0', 64)", "DELETE FROM records",
                          "UPDATE records SET body = '{}'", "ALTER TABLE records DISABLE TRIGGER records_chain",
                          "INSERT INTO shippers VALUES (current_user, 'b-1', 'school-b')",
                          "DELETE FROM checkpoints"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert {c.node: c.is_ok for c in verify(central)} == {"b-1": True}
    assert central.node("b-1").last_seq == 3


def test_one_account_per_node_and_the_nodes_school_is_fixed(postgres, store):
    central, _dsn, account = store
    postgres.create_login(account + "_2")
    with pytest.raises(TrustError, match="already ships as"):
        accounts.allow_shipper(central, account + "_2", "a-1", "school-a")
    with pytest.raises(TrustError, match="registered in school 'school-b'"):
        accounts.allow_shipper(central, account + "_2", "b-1", "school-a")
    with pytest.raises(TrustError, match="superuser"):
        accounts.allow_shipper(central, central.connection.info.user, "a-9", "school-a")
    # A store owned by an ordinary account (as docs/trust.md sets it up): its owner cannot be scoped either.
    owner = account + "_owner"
    postgres.create_login(owner)
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{owner}" OWNER "{owner}"')
    owned = Central.open(postgres.dsn(owner, user=owner))
    try:
        with pytest.raises(TrustError, match="owns the central store"):
            accounts.allow_shipper(owned, owner, "a-9", "school-a")
    finally:
        owned.close()
    assert (account, "ships as a-1 (school-a)") in accounts.scopes(central)
    assert accounts.revoke(central, account, None) == 1
    assert all(a != account for a, _ in accounts.scopes(central))


def test_the_commands(postgres, store, tmp_path):
    central, _dsn, _account = store
    postgres.create_login("ship_cli")
    postgres.create_login("head_cli")
    config = tmp_path / "settings.yaml"
    config.write_text(f"trust:\n  database: {central.db.dsn}\n  school: school-a\n")
    runner = CliRunner()
    done = runner.invoke(cli, ["--config", str(config), "trust", "allow-shipper", "ship_cli", "--node", "a-3",
                               "--school", "school-a"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(cli, ["--config", str(config), "trust", "grant", "head_cli", "--school", "school-b"])
    assert done.exit_code == 0, done.output
    listed = runner.invoke(cli, ["--config", str(config), "trust", "readers"])
    assert "ship_cli" in listed.output and "ships as a-3 (school-a)" in listed.output
    assert "head_cli" in listed.output and "reads school-b" in listed.output
    status = runner.invoke(cli, ["--config", str(config), "trust", "status"])
    assert status.exit_code == 0 and "b-1" in status.output and "records 1-3" in status.output
    wrong = runner.invoke(cli, ["--config", str(config), "trust", "grant", "head_cli"])
    assert wrong.exit_code != 0 and "exactly one of" in wrong.output


def test_init_creates_the_store_and_readers_without_a_grant_are_told_so(postgres, tmp_path):
    dsn = postgres.create_database()
    config = tmp_path / "settings.yaml"
    config.write_text(f"trust:\n  database: {dsn}\n  school: school-a\n")
    runner = CliRunner()
    before = runner.invoke(cli, ["--config", str(config), "trust", "status"])
    assert before.exit_code == 1 and "dojoguard trust init" in before.output
    done = runner.invoke(cli, ["--config", str(config), "trust", "init"])
    assert done.exit_code == 0 and "The central store is ready (6 migrations; 6 applied now)" in done.output
    again = runner.invoke(cli, ["--config", str(config), "trust", "init"])
    assert "0 applied now" in again.output
    account = f"nobody_{dsn.rsplit('/', 1)[1]}"
    postgres.create_login(account)
    for command in (["status"], ["report"], ["verify"], ["readers"]):
        refused = runner.invoke(cli, ["--config", str(config), "trust", *command, "--database",
                                      as_account(dsn, account)])
        assert refused.exit_code == 1 and "may not read the central store" in refused.output, (command, refused.output)
