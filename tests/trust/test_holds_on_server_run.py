"""A real `dojoguard run` whose school keeps its held and queued items on a real PostgreSQL server (storage:
postgresql://...): a message written after hours is queued in the school's holds schema there (nothing in a file
here; while the server was away a message that had to be queued was blocked, never sent), a leader's `held list` on another machine's settings reads it from
the server, and at 8am the proxy sends it from the server's store to ClassDojo, once."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.clock import FileClock, FixedClock
from dojoguard.environment import Environment
from dojoguard.rules.loader import builtin_calendar
from dojoguard.standin import data
from dojoguard.storage.location import Storage
from tests.proxy.conftest import MONDAY_18, running_proxy, signed_in
from tests.proxy.test_held_posts import deferring_policy
from tests.support.postgres import PostgresServer, require_server, wait_until_up

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"


def _held_list(config) -> list[dict]:
    result = CliRunner().invoke(cli, ["--config", str(config), "held", "list", "--json"],
                                obj=Environment(clock=FixedClock(MONDAY_18)))
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_a_queued_message_waits_on_the_server_and_is_sent_from_there(tmp_path):
    server = PostgresServer(require_server()).init().start()
    try:
        _queue_and_send(tmp_path, server)
    finally:
        server.destroy()


def _queue_and_send(tmp_path, server) -> None:
    central_dsn = server.create_database()
    school = "oak-" + uuid.uuid4().hex[:6]
    settings = {"storage": central_dsn, "trust": {"school": school}, "holds": {"check_every_s": 0.3},
                "rules": {"calendar": str(builtin_calendar())}}
    with running_proxy(tmp_path, policy=deferring_policy(tmp_path), at=MONDAY_18, settings=settings) as found:
        with signed_in(found["proxy"]) as client:
            # The server is away when a message must be queued: it cannot be kept, so it is blocked, never sent.
            server.stop()
            lost = client.post(MESSAGE, json={"body": "Bake sale on Friday"})
            assert lost.status_code == 403 and lost.json()["error"]["code"] == "DOJOGUARD_BLOCKED", lost.text
            assert "could not keep it safely" in lost.json()["error"]["detail"]
            # Back again (the proxy opened its stores before it went): they connect again.
            server.start()
            wait_until_up(server)
            time.sleep(1.5)
            answer = client.post(MESSAGE, json={"body": "PE kit tomorrow, please"})
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_DEFERRED", answer.text
        decision_id = answer.headers["x-dojoguard-decision"]

        # On the server, in the school's own schema; no hold store file on this machine.
        holds = Storage(dsn=central_dsn, school=school).open("holds")
        try:
            rows = holds.execute("SELECT kind, state, decision_id FROM items").fetchall()
        finally:
            holds.close()
        assert [(kind, decision_id_) for kind, _, decision_id_ in rows] == [("defer", decision_id)]
        assert not (tmp_path / "data" / "holds.sqlite").exists()

        # A leader's command with the same settings reads it from the server.
        [listed] = _held_list(found["config"])
        assert listed["decision_id"] == decision_id and listed["kind"] == "defer"

        # Tuesday 8am: the proxy's releaser sends it from the server's store, once.
        FileClock.write(found["clock"], MONDAY_18 + timedelta(hours=14, minutes=1))
        deadline = time.monotonic() + 20
        while not [r for r in found["standin"].received if r.method == "POST" and b"PE kit" in r.body]:
            assert time.monotonic() < deadline, "the queued message was not sent at 8am"
            time.sleep(0.2)
        time.sleep(1.0)
        assert len([r for r in found["standin"].received if r.method == "POST" and b"PE kit" in r.body]) == 1
        assert not [r for r in found["standin"].received if b"Bake sale" in r.body]
        # Sent: gone from the server's store, and from what leaders are shown.
        holds = Storage(dsn=central_dsn, school=school).open("holds")
        try:
            deadline = time.monotonic() + 10
            while holds.execute("SELECT COUNT(*) FROM items").fetchone()[0]:
                assert time.monotonic() < deadline, holds.execute("SELECT state FROM items").fetchall()
                time.sleep(0.2)
        finally:
            holds.close()
        assert _held_list(found["config"]) == []
