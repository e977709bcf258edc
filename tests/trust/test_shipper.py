"""The shipper between a real audit log (SQLite) and the real central store (PostgreSQL)."""

from __future__ import annotations

import sqlite3

import pytest

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.log import AuditLog
from dojoguard.trust.central import Central, NodeMismatch, TrustUnavailable
from dojoguard.trust.shipper import Shipper, ShipError, ShipSettings
from dojoguard.trust.verify import verify
from tests.support.waiting import eventually


def _settings(tmp_path, dsn: str, **more) -> ShipSettings:
    return ShipSettings(database=dsn, school="school-a", node="a-1", audit_database=tmp_path / "audit.sqlite",
                        checkpoint_dir=tmp_path / "checkpoints", signing_key=tmp_path / "keys" / "signing.key",
                        every_s=0.05, batch_records=7, **more)


def _write(log: AuditLog, count: int) -> None:
    for i in range(count):
        log.append_event("report.sent", {"period_from": "a", "period_to": "b", "file": f"r{i}", "recipients": 0})


@pytest.fixture
def log(tmp_path):
    opened = AuditLog.open(tmp_path / "audit.sqlite")
    yield opened
    opened.close()


def _stored(dsn: str) -> list[tuple[int, str]]:
    central = Central.open(dsn)
    try:
        return central.connection.execute("SELECT seq, hash FROM records ORDER BY seq").fetchall()
    finally:
        central.close()


def _local(tmp_path) -> list[tuple[int, str]]:
    with sqlite3.connect(tmp_path / "audit.sqlite") as conn:
        return conn.execute("SELECT seq, hash FROM records ORDER BY seq").fetchall()


def test_a_log_is_shipped_in_batches_with_its_checkpoints_and_only_once(tmp_path, central_dsn, log):
    settings = _settings(tmp_path, central_dsn)
    _write(log, 20)
    checkpoints.write_checkpoint(log, settings.signing_key, settings.checkpoint_dir)
    _write(log, 3)
    shipper = Shipper(settings)
    try:
        assert shipper.ship_all() == len(_local(tmp_path))
    finally:
        shipper.close()
    assert _stored(central_dsn) == _local(tmp_path)
    # A new shipper (a restart) asks the store where to start: nothing is sent twice.
    again = Shipper(settings)
    try:
        assert again.ship_all() == 0
        assert again.ship_all() == 0   # idle turns
        # A checkpoint signed after the shipper caught up is shipped with its `checkpoint.written` record.
        checkpoints.write_checkpoint(log, settings.signing_key, settings.checkpoint_dir)
        assert again.ship_all() == 1
    finally:
        again.close()
    central = Central.open(central_dsn)
    try:
        [check] = verify(central)
    finally:
        central.close()
    assert check.is_ok and check.checkpoints == 2 and check.covered_seq == 25, check.summary()


def test_only_what_the_log_made_durable_is_shipped(tmp_path, central_dsn, log):
    _write(log, 10)
    durable = {"up_to": 4}
    shipper = Shipper(_settings(tmp_path, central_dsn), limit=lambda: durable["up_to"])
    try:
        shipper.ship_all()
        assert [seq for seq, _ in _stored(central_dsn)] == [1, 2, 3, 4]
        durable["up_to"] = 8
        shipper.ship_all()
        assert len(_stored(central_dsn)) == 8
    finally:
        shipper.close()


def test_a_replaced_log_is_refused_and_recorded_once(tmp_path, central_dsn, log):
    settings = _settings(tmp_path, central_dsn)
    _write(log, 3)
    first = Shipper(settings)
    first.ship_all()
    first.close()
    log.close()
    (tmp_path / "audit.sqlite").unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / f"audit.sqlite{extra}").unlink(missing_ok=True)
    replaced = AuditLog.open(tmp_path / "audit.sqlite")
    _write(replaced, 2)
    recorded = []
    shipper = Shipper(settings, record=lambda event, fields: recorded.append((event, fields)))
    with pytest.raises(NodeMismatch, match="registered with audit log"):
        shipper.turn()
    shipper.close()
    shipper.start()
    try:
        eventually(lambda: recorded, timeout_s=10)
    finally:
        shipper.stop()
        replaced.close()
    assert [event for event, _ in recorded] == ["trust.refused"]
    assert "audit log" in recorded[0][1]["error"] and recorded[0][1]["shipped_up_to"] == 0
    assert len(_stored(central_dsn)) == 4   # the old log's records stay


def test_records_purged_before_they_were_shipped_stop_the_shipper(tmp_path, central_dsn, log):
    settings = _settings(tmp_path, central_dsn)
    _write(log, 5)
    shipper = Shipper(settings)
    shipper.ship_all()
    _write(log, 5)
    with sqlite3.connect(tmp_path / "audit.sqlite") as conn:
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('purging', '1')")
        conn.execute("DELETE FROM records WHERE seq BETWEEN 7 AND 8")
    with pytest.raises(ShipError, match="records 7 to 8 .* were removed"):
        shipper.ship_all()
    shipper.close()
    assert len(_stored(central_dsn)) == 6


def test_an_unreachable_store_is_recorded_once_and_the_end_of_it_too(tmp_path, postgres, log):
    from tests.support.postgres import PostgresServer, require_server

    server = PostgresServer(require_server()).init().start()
    try:
        dsn = server.create_database()
        _write(log, 3)
        recorded = []
        shipper = Shipper(_settings(tmp_path, dsn), record=lambda event, fields: recorded.append(event))
        shipper.start()
        eventually(lambda: len(_stored(dsn)) == 4, timeout_s=10)
        server.stop()
        _write(log, 3)
        eventually(lambda: recorded == ["trust.unreachable"], timeout_s=10)
        with pytest.raises(TrustUnavailable):
            Central.open(dsn, connect_timeout_s=1)
        server.start()
        eventually(lambda: recorded == ["trust.unreachable", "trust.resumed"], timeout_s=20)
        eventually(lambda: len(_stored(dsn)) == 7, timeout_s=10)
        assert shipper.status.error is None and shipper.status.behind == 0
        assert shipper.stop()
    finally:
        server.destroy()
