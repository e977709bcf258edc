"""The school's exemptions on a real PostgreSQL server (storage: postgresql://...): the commands change the
document there under its lock, every grant's record travels with it, a proxy's copy puts each on its own record
before rewriting its file, a hand edit of the copy is undone, and a copy that cannot be confirmed goes stale."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.clock import FixedClock
from dojoguard.environment import Environment
from dojoguard.rules import exemption_store
from dojoguard.rules.exemption_store import ExemptionsCopy
from dojoguard.rules.exemptions import load_exemptions
from dojoguard.storage.location import Storage

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T1 = "5f00000000000000000000a1"


@pytest.fixture
def school(tmp_path, central_dsn):
    """Two machines' settings for one school whose stores are on the server: the office's and the proxy's."""
    school = "oak-" + uuid.uuid4().hex[:6]
    machines = {}
    for name in ("office", "proxy"):
        folder = tmp_path / name
        folder.mkdir()
        path = folder / "config.yaml"
        path.write_text(f"data_dir: {folder / 'data'}\nstorage: {central_dsn}\ntrust:\n  school: {school}\n"
                        "proxy:\n  device_groups:\n    school-devices: [10.20.0.0/16]\n")
        machines[name] = path
    return Storage(dsn=central_dsn, school=school), machines


def run(settings, *args: str):
    return CliRunner().invoke(cli, ["--config", str(settings), *args], obj=Environment(clock=FixedClock(NOW)))


def _grant(settings, until: str = "2026-12-10T20:00"):
    return run(settings, "exempt", "grant", "--rule", "messaging-hours", "--teacher", T1,
               "--from", "2026-12-10T17:00", "--until", until, "--reason", "Christmas concert", "--by", "Mrs Patel")


def _server(storage) -> tuple[str | None, int, list[tuple[str, dict]]]:
    db = exemption_store.open_store(storage)
    try:
        text, version = exemption_store.read(db)
        trail = [(t, json.loads(f)) for t, f in db.execute("SELECT type, fields FROM exemptions_trail ORDER BY seq")]
    finally:
        db.close()
    return text, version, trail


def test_a_grant_on_one_machine_is_kept_on_the_server_and_listed_on_another(school, tmp_path):
    storage, machines = school
    granted = _grant(machines["office"])
    assert granted.exit_code == 0, granted.output
    text, version, trail = _server(storage)
    assert version == 1 and "ex-20261201-1" in text
    assert [(t, f["exemption"]) for t, f in trail] == [("exemption.granted", "ex-20261201-1")]
    # The proxy's machine has no file of its own yet; its commands read the server's document.
    listed = run(machines["proxy"], "exempt", "list")
    assert "ex-20261201-1  upcoming" in listed.output, listed.output
    # A second grant from the proxy's machine adds to the server's document; neither is lost.
    assert _grant(machines["proxy"], until="2026-12-10T19:00").exit_code == 0
    text, version, trail = _server(storage)
    assert version == 2 and "ex-20261201-1" in text and "ex-20261201-2" in text
    revoked = run(machines["office"], "exempt", "revoke", "ex-20261201-1", "--by", "Mrs Patel", "--reason", "Off")
    assert revoked.exit_code == 0, revoked.output
    assert [t for t, _ in _server(storage)[2]] == ["exemption.granted", "exemption.granted", "exemption.revoked"]
    assert "revoked" in run(machines["proxy"], "exempt", "list", "--all").output


def test_the_proxys_copy_records_each_grant_before_applying_it_and_undoes_hand_edits(school, tmp_path):
    storage, machines = school
    assert _grant(machines["office"]).exit_code == 0
    local = tmp_path / "proxy" / "data" / "exemptions.yaml"
    copy = ExemptionsCopy(storage, local, max_staleness_s=60)
    on_record: set[tuple[str, str]] = set()
    recorded: list[tuple[str, dict]] = []

    def record(event, fields):
        recorded.append((event, fields))
        on_record.add((event, fields["exemption"]))

    try:
        assert copy.sync(recorded=lambda: set(on_record), record=record)
        assert [e.id for e in load_exemptions(local).records] == ["ex-20261201-1"]
        # Recorded exactly as the command recorded it, before the file was written.
        assert recorded == [("exemption.granted", _server(storage)[2][0][1])]
        assert not copy.sync(recorded=lambda: set(on_record), record=record)
        # Someone widens the copy by hand: the next look puts the server's document back.
        local.write_text(local.read_text().replace("2026-12-10T20:00:00+00:00", "2026-12-31T20:00:00+00:00"))
        assert copy.sync(recorded=lambda: set(on_record), record=record)
        assert "2026-12-31" not in local.read_text() and len(recorded) == 1
    finally:
        copy.close()


def test_a_copy_that_cannot_reach_the_server_goes_stale_after_its_bound(tmp_path):
    storage = Storage(dsn="host=127.0.0.1 port=1 dbname=dg user=dg connect_timeout=1", school="oak")
    copy = ExemptionsCopy(storage, tmp_path / "exemptions.yaml", max_staleness_s=0.5)
    with pytest.raises(exemption_store.ExemptionStoreUnavailable):
        copy.sync(recorded=set, record=lambda *a: None)
    time.sleep(0.6)
    assert copy.stale
