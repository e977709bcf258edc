"""A real `dojoguard run` whose school keeps its exemptions on a real PostgreSQL server (storage:
postgresql://...): the headteacher's grant made on the office's machine lets the teacher's evening message
through within seconds, recorded in the proxy's own audit log as a grant (not a hand edit); with the server
stopped past consent.max_staleness_s every exemption is suspended and the message is blocked again."""

from __future__ import annotations

import sqlite3
import time

from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.clock import FixedClock
from dojoguard.environment import Environment
from dojoguard.proxy.addon import RELOAD_INTERVAL_S
from dojoguard.standin import data
from tests.proxy.conftest import MONDAY_18, running_proxy, signed_in
from tests.support.postgres import PostgresServer, require_server

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
STALE_S = 3


def _types(folder, *types: str) -> list[str]:
    db = sqlite3.connect(folder / "data" / "audit.sqlite")
    try:
        marks = ", ".join("?" for _ in types)
        return [t for (t,) in db.execute(f"SELECT type FROM records WHERE type IN ({marks}) ORDER BY seq", types)]
    finally:
        db.close()


def _until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_a_grant_on_the_server_reaches_the_proxy_and_is_suspended_while_the_server_is_away(tmp_path):
    server = PostgresServer(require_server()).init().start()
    try:
        dsn = server.create_database()
        office = tmp_path / "office"
        office.mkdir()
        office_settings = office / "config.yaml"
        office_settings.write_text(f"data_dir: {office / 'data'}\nstorage: {dsn}\ntrust:\n  school: oak\n")
        run = tmp_path / "run"
        run.mkdir()
        settings = {"storage": dsn, "trust": {"school": "oak"}, "consent": {"max_staleness_s": STALE_S},
                    "rules": {"reload": True}}
        with running_proxy(run, policy="builtin", at=MONDAY_18, settings=settings) as found:
            with signed_in(found["proxy"]) as client:
                before = client.post(MESSAGE, json={"body": "Concert tonight: doors at 6.30"})
                assert before.status_code == 403, before.text

                granted = CliRunner().invoke(cli, [
                    "--config", str(office_settings), "exempt", "grant", "--rule", "messaging-hours",
                    "--teacher", data.TEACHER["_id"], "--from", "2026-11-30T17:00", "--until", "2026-11-30T21:00",
                    "--reason", "Christmas concert", "--by", "Mrs Patel"], obj=Environment(clock=FixedClock(MONDAY_18)))
                assert granted.exit_code == 0, granted.output

                def goes() -> bool:
                    return client.post(MESSAGE, json={"body": "Concert tonight: doors at 6.30"}).status_code == 200

                _until(goes, 20, "the grant made on the server did not reach the proxy")
                # On the proxy's own record as a grant, never as a hand edit of its file.
                assert _types(run, "exemption.granted", "exemption.edited_by_hand") == ["exemption.granted"]

                server.stop()
                _until(lambda: "exemptions.suspended" in _types(run, "exemptions.suspended"), 20,
                       "the exemptions were not suspended while the server was away")
                after = client.post(MESSAGE, json={"body": "Concert tonight: doors at 6.30"})
                assert after.status_code == 403, after.text
                # Someone on the proxy's machine rewrites the exemptions file while the server is away, hoping
                # the proxy's watcher applies it: suspended means suspended.
                local = run / "data" / "exemptions.yaml"
                local.write_text(local.read_text() + "\n# edited while the server was away\n")
                time.sleep(RELOAD_INTERVAL_S + 2)
                again = client.post(MESSAGE, json={"body": "Concert tonight: doors at 6.30"})
                assert again.status_code == 403, again.text

                server.start()
                _until(goes, 30, "the exemptions were not applied again when the server came back")
                assert _types(run, "exemptions.suspended", "exemptions.resumed") == \
                    ["exemptions.suspended", "exemptions.resumed"]
    finally:
        server.destroy()
