"""`trust verify` finds what someone with the owner's access changed in the central copy behind the trigger."""

from __future__ import annotations

import pytest

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.trust.central import Central
from dojoguard.trust.verify import verify
from tests.trust.test_central import T0, chain, register


@pytest.fixture
def stored(central_dsn):
    central = Central.open(central_dsn)
    node, key = register(central)
    rows = chain(8)
    signed = checkpoints.sign(key, log_id="log-1", seq=6, hash_=rows[5][6], record_at=T0, written_at=T0)
    central.add(node, rows, [signed])
    yield central
    central.close()


def _behind_the_trigger(central: Central, statement: str, params=()) -> None:
    with central.connection.transaction():
        central.connection.execute("ALTER TABLE records DISABLE TRIGGER records_append_only")
        central.connection.execute(statement, params)
        central.connection.execute("ALTER TABLE records ENABLE TRIGGER records_append_only")


def test_an_untouched_store_verifies(stored):
    [check] = verify(stored)
    assert check.is_ok and check.records == 8 and check.checkpoints == 1 and check.tail == 2
    assert check.summary().startswith("ok: 8 records (1-8), 1 checkpoints, 2 records after the newest")


def test_a_changed_body_is_found(stored):
    _behind_the_trigger(stored, "UPDATE records SET body = replace(body, 'block', 'allow') WHERE seq = 3")
    [check] = verify(stored)
    assert not check.is_ok and check.first_break.seq == 3
    assert "changed since it was written" in check.summary()


def test_a_record_removed_from_the_middle_or_the_end_is_found(stored):
    _behind_the_trigger(stored, "DELETE FROM records WHERE seq = 4")
    [check] = verify(stored)
    assert not check.is_ok and "missing" in check.summary()


def test_a_cut_off_end_is_found(stored):
    _behind_the_trigger(stored, "DELETE FROM records WHERE seq >= 7")
    [check] = verify(stored)
    assert not check.is_ok and "removed from its end" in check.summary()


def test_a_rebuilt_chain_does_not_match_its_checkpoint(stored):
    """Every record re-sealed consistently after an edit: the chain holds, the signed checkpoint does not."""
    from dojoguard.audit.record import seal

    rows = stored.connection.execute("SELECT seq, id, at, type, body FROM records ORDER BY seq").fetchall()
    prev = "0" * 64
    with stored.connection.transaction():
        stored.connection.execute("ALTER TABLE records DISABLE TRIGGER records_append_only")
        for seq, record_id, at, type_, body in rows:
            body = body.replace("block", "allow")
            digest = seal(seq, record_id, at, type_, prev, body)
            stored.connection.execute("UPDATE records SET body = %s, prev = %s, hash = %s WHERE seq = %s",
                                      (body, prev, digest, seq))
            prev = digest
        stored.connection.execute("UPDATE nodes SET last_hash = %s", (prev,))
        stored.connection.execute("ALTER TABLE records ENABLE TRIGGER records_append_only")
    [check] = verify(stored)
    assert not check.is_ok and "checkpoint at record 6 vouches for a hash" in check.summary()


def test_a_forged_checkpoint_is_found(stored):
    with pytest.raises(Exception, match="append-only"):
        stored.connection.execute("DELETE FROM checkpoints")
    with stored.connection.transaction():
        stored.connection.execute("ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_append_only")
        stored.connection.execute("UPDATE checkpoints SET signature = %s", (checkpoints.sign(
        checkpoints.Ed25519PrivateKey.generate(), log_id="log-1", seq=6, hash_="0" * 64, record_at=T0,
            written_at=T0).signature,))
        stored.connection.execute("ALTER TABLE checkpoints ENABLE TRIGGER checkpoints_append_only")
    [check] = verify(stored)
    assert not check.is_ok and "not signed by the node's key" in check.summary()


def test_a_purge_keeps_the_rest_verifiable_and_shipping_goes_on(stored):
    """The trust's retention: records before the cut go, with their checkpoints; the chain anchors after it."""
    from datetime import timedelta

    from tests.trust.test_central import chain

    done = stored.purge(T0 + timedelta(seconds=5, milliseconds=500))    # records 1-5 were written before
    assert [(p.node, p.first_seq, p.last_seq, p.records) for p in done] == [("node-a", 1, 5, 5)]
    [check] = verify(stored)
    assert check.is_ok and check.records == 3 and check.first_seq == 6 and check.checkpoints == 1, check.summary()
    assert check.summary().endswith("the chain starts after record 5 (purged, or not shipped)")
    node = stored.node("node-a")
    assert (node.start_seq, node.last_seq) == (6, 8)
    # The node goes on shipping after the cut, and sending again what was purged does no harm.
    later = chain(12)
    assert stored.add(node, later).records == 4
    assert verify(stored)[0].is_ok
    row = stored.connection.execute("SELECT first_seq, last_seq, records, purged_by FROM purges").fetchone()
    assert row[:3] == (1, 5, 5) and row[3] == stored.connection.info.user
    # Nothing else may delete: the guards hold outside a purge.
    with pytest.raises(Exception, match="append-only"):
        stored.connection.execute("DELETE FROM records WHERE seq = 6")
    assert stored.purge(T0) == []


def test_only_the_owner_may_purge(postgres, stored):
    from click.testing import CliRunner

    from dojoguard.cli import cli
    from dojoguard.trust import accounts
    from tests.support.postgres import as_account

    account = f"reader_{stored.db.dsn.rsplit('/', 1)[1]}"
    postgres.create_login(account)
    accounts.grant(stored, account, None)
    refused = CliRunner().invoke(cli, ["trust", "purge", "--older-than-days", "1", "--database",
                                       as_account(stored.db.dsn, account)])
    assert refused.exit_code == 1 and "only the central store's owner" in refused.output
    assert stored.connection.execute("SELECT count(*) FROM records").fetchone()[0] == 8
