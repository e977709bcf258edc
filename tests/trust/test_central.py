"""The central store on a real PostgreSQL server: adding a node's records is ordered, idempotent and checked by
the database itself, so a batch that does not continue the stored chain is refused whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.record import GENESIS, canonical, format_time, seal
from dojoguard.storage.postgresql import to_format
from dojoguard.trust import schema
from dojoguard.trust.central import Central, ChainRefused, NodeMismatch, TrustError, TrustUnavailable

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def chain(count: int, *, start: int = 1, prev: str = GENESIS, type_: str = "decision") -> list[tuple]:
    """``count`` sealed records as a node's log stores them, from ``start`` after ``prev``."""
    rows = []
    for seq in range(start, start + count):
        body = canonical({"verdict": "block" if seq % 3 == 0 else "allow", "kind": "message.send",
                          "teacher": "t1", "class": "c1", "rules": ["r"] if seq % 3 == 0 else []})
        at = format_time(T0 + timedelta(seconds=seq))
        record_id = f"rec-{start}-{seq}"
        digest = seal(seq, record_id, at, type_, prev, body)
        rows.append((seq, record_id, at, type_, body, prev, digest))
        prev = digest
    return rows


def register(central: Central, name: str = "node-a", school: str = "school-a", key=None, log_id: str = "log-1"):
    key = key or checkpoints.Ed25519PrivateKey.generate()
    return central.register(name, school, log_id=log_id, public_key_pem=checkpoints.public_key_pem(key).decode(),
                            start_seq=1, start_prev=GENESIS), key


@pytest.fixture
def central(central_dsn):
    store = Central.open(central_dsn)
    yield store
    store.close()


def test_records_are_added_in_order_and_again_without_harm(central):
    node, _ = register(central)
    rows = chain(10)
    assert central.add(node, rows[:6]).records == 6
    # The same batch again (its commit's answer was lost, say), then one overlapping the rest.
    assert central.add(node, rows[:6]).records == 0
    added = central.add(node, rows[4:])
    assert (added.records, added.last_seq) == (4, 10)
    stored = central.connection.execute("SELECT seq, hash, verdict, kind, school FROM records ORDER BY seq").fetchall()
    assert [r[0] for r in stored] == list(range(1, 11))
    assert [r[1] for r in stored] == [r[6] for r in rows]
    assert {r[3] for r in stored} == {"message.send"} and {r[4] for r in stored} == {"school-a"}
    assert [r[2] for r in stored].count("block") == 3
    assert central.node("node-a").last_seq == 10


def test_a_gap_is_refused_whole(central):
    node, _ = register(central)
    rows = chain(10)
    central.add(node, rows[:3])
    with pytest.raises(ChainRefused, match="does not follow"):
        central.add(node, rows[4:])          # record 4 is missing
    assert central.node("node-a").last_seq == 3
    assert central.connection.execute("SELECT count(*) FROM records").fetchone()[0] == 3


def test_a_changed_record_is_refused_by_the_database_itself(central):
    """Straight to the table, as a shipper with a bug (or a rewritten node) would: the trigger refuses it."""
    node, _ = register(central)
    seq, record_id, at, type_, body, prev, digest = chain(1)[0]
    forged = body.replace("allow", "block")
    with pytest.raises(psycopg.DatabaseError, match="does not hash"):
        central.connection.execute("INSERT INTO records (node, seq, id, at, type, body, prev, hash, school) "
                                   "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                                   ("node-a", seq, record_id, at, type_, forged, prev, digest, "school-a"))
    # Re-sealed with the forged body, it still does not follow the stored chain's end once one is there.
    central.add(node, chain(2))
    resealed = seal(3, "x", at, type_, "f" * 64, forged)
    with pytest.raises(psycopg.DatabaseError, match="does not follow"):
        central.connection.execute("INSERT INTO records (node, seq, id, at, type, body, prev, hash, school) "
                                   "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                                   ("node-a", 3, "x", at, type_, forged, "f" * 64, resealed, "school-a"))


def test_a_record_cannot_claim_another_school(central):
    register(central)
    seq, record_id, at, type_, body, prev, digest = chain(1)[0]
    with pytest.raises(psycopg.DatabaseError, match="another school"):
        central.connection.execute("INSERT INTO records (node, seq, id, at, type, body, prev, hash, school) "
                                   "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                                   ("node-a", seq, record_id, at, type_, body, prev, digest, "school-b"))


def test_a_rewritten_history_is_refused_not_merged(central):
    node, _ = register(central)
    central.add(node, chain(5))
    other = chain(5, type_="decision")
    other = [(s, f"other-{s}", *rest) for s, _id, *rest in other]  # same seqs, different records
    rebuilt, prev = [], GENESIS
    for seq, record_id, at, type_, body, _prev, _hash in other:
        digest = seal(seq, record_id, at, type_, prev, body)
        rebuilt.append((seq, record_id, at, type_, body, prev, digest))
        prev = digest
    with pytest.raises(ChainRefused, match="differs from the record"):
        central.add(node, rebuilt)


def test_records_are_append_only(central):
    node, _ = register(central)
    central.add(node, chain(3))
    for statement in ("UPDATE records SET body = '{}'", "DELETE FROM records", "TRUNCATE records"):
        with pytest.raises(psycopg.DatabaseError, match="append-only"):
            central.connection.execute(statement)
    assert central.connection.execute("SELECT count(*) FROM records").fetchone()[0] == 3


def test_a_node_cannot_come_back_with_another_key_log_or_school(central):
    node, key = register(central)
    with pytest.raises(NodeMismatch, match="signing key"):
        register(central)                                  # a new key
    with pytest.raises(NodeMismatch, match="audit log"):
        register(central, key=key, log_id="log-2")
    with pytest.raises(NodeMismatch, match="belongs to school"):
        register(central, key=key, school="school-b")
    assert register(central, key=key)[0].node == "node-a"  # the same again is fine


def test_retiring_a_node_keeps_its_records_and_frees_its_name(central):
    node, _ = register(central)
    central.add(node, chain(3))
    central.retire("node-a")
    names = [n.node for n in central.nodes()]
    assert len(names) == 1 and names[0].startswith("node-a.retired-")
    assert central.connection.execute("SELECT count(*) FROM records WHERE node = %s", (names[0],)).fetchone()[0] == 3
    again, _ = register(central, log_id="log-2")
    assert again.last_seq == 0


def test_checkpoints_are_kept_only_when_signed_by_the_nodes_key_and_matching_the_chain(central):
    node, key = register(central)
    rows = chain(4)
    good = checkpoints.sign(key, log_id="log-1", seq=4, hash_=rows[3][6], record_at=T0, written_at=T0)
    assert central.add(node, rows, [good]).checkpoints == 1
    stranger = checkpoints.sign(checkpoints.Ed25519PrivateKey.generate(), log_id="log-1", seq=3,
                                hash_=rows[2][6], record_at=T0, written_at=T0)
    with pytest.raises(ChainRefused, match="not signed by the node's registered key"):
        central.add(node, [], [stranger])
    wrong_hash = checkpoints.sign(key, log_id="log-1", seq=2, hash_="0" * 64, record_at=T0, written_at=T0)
    with pytest.raises(ChainRefused, match="vouches for a hash"):
        central.add(node, [], [wrong_hash])
    assert central.last_checkpoint("node-a") == 4


def test_names_are_checked(central):
    with pytest.raises(TrustError, match="not a valid name"):
        register(central, school="St Wilfrid's")


def test_an_unreachable_server_is_said_plainly(postgres):
    dsn = f"postgresql://nobody@127.0.0.1:{postgres.port + 1}/none"
    with pytest.raises(TrustUnavailable, match="cannot reach the central store"):
        Central.open(dsn, connect_timeout_s=1)


def test_placeholders_are_translated_outside_quoted_text():
    assert to_format("SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE '%a'") == \
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE '%%a'"


def test_many_processes_opening_a_new_store_at_once_migrate_it_once(central_dsn):
    """Every shipper migrates at connect: started together (a trust's proxies after an upgrade), none fails."""
    import threading

    errors, opened = [], []

    def open_one():
        try:
            opened.append(Central.open(central_dsn))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for store in opened:
        store.close()
    assert errors == [] and len(opened) == 8
    check = Central.open(central_dsn)
    try:
        assert check.connection.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == \
            len(schema.MIGRATIONS) == 6
    finally:
        check.close()


def test_a_batch_that_waits_too_long_gives_up_instead_of_hanging(central_dsn):
    """Another session holds the node's batch lock (a stuck shipper, a long administrator's transaction): the
    shipper's statement ends at its timeout as "unavailable", and it tries again later."""
    import time

    owner = Central.open(central_dsn)
    node, _ = register(owner)
    shipper = Central.open(central_dsn, statement_timeout_s=0.5)
    try:
        with owner.connection.transaction():
            owner.connection.execute("SELECT pg_advisory_xact_lock(hashtextextended('node-a', 0))")
            started = time.monotonic()
            with pytest.raises(TrustUnavailable):
                shipper.add(node, chain(3))
            assert time.monotonic() - started < 5
    finally:
        shipper.close()
    again = Central.open(central_dsn, statement_timeout_s=0.5)
    try:
        assert again.add(node, chain(3)).records == 3
        assert again.connection.execute("SHOW statement_timeout").fetchone()[0] == "500ms"
    finally:
        again.close()
        owner.close()
