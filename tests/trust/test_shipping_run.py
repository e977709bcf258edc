"""Real proxies (``dojoguard run`` over real TLS to the stand-in) shipping to one real PostgreSQL server.

Three proxies for two schools end in one trust report; the server stopped
for thirty seconds under load costs nothing (the proxies keep judging, the
shippers catch up); a proxy killed with SIGKILL mid-load loses no decision
it acknowledged (each one is found in the central store by its message's
keyed fingerprint).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import timedelta

import httpx
import psycopg

from dojoguard import config as config_module
from dojoguard.audit import fingerprints
from dojoguard.clock import FileClock
from dojoguard.standin import data
from dojoguard.standin.harness import ProxyProcess
from dojoguard.trust import accounts
from dojoguard.trust import report as trust_report
from dojoguard.trust.central import Central
from dojoguard.trust.verify import verify
from tests.proxy.conftest import MONDAY_10, running_proxy, signed_in
from tests.support.postgres import PostgresServer, as_account, require_server, wait_until_up
from tests.support.waiting import eventually

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"


def _trust(dsn: str, school: str, node: str) -> dict:
    # Checkpoints every few records, so that the store has some to check within a short test.
    return {"trust": {"database": dsn, "school": school, "node": node, "ship_every_s": 0.2},
            "audit": {"checkpoint_every_records": 5}}


def _local(found) -> list[tuple[int, str, str]]:
    import sqlite3

    path = found["folder"] / "data" / "audit.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT seq, id, hash FROM records ORDER BY seq").fetchall()


def _central(dsn: str, node: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT seq, id, hash FROM records WHERE node = %s ORDER BY seq", (node,)).fetchall()


def _fingerprint_key(found):
    loaded = config_module.load(found["config"])
    return fingerprints.load_or_create(fingerprints.key_path_for(loaded, loaded.path("audit", "database")))


def _all_shipped(dsn: str, found, node: str) -> bool:
    return _central(dsn, node) == _local(found)


def test_three_proxies_of_two_schools_end_in_one_trust_report(tmp_path, postgres, central_dsn):
    """Each proxy ships with its own account, as docs/trust.md recommends."""
    evening = MONDAY_10.replace(hour=19)   # outside school hours: the test policy blocks messages then
    plan = [("school-a", "a-1", MONDAY_10, 4), ("school-a", "a-2", MONDAY_10, 3), ("school-b", "b-1", evening, 5)]
    owner = Central.open(central_dsn)
    try:
        for school, node, _at, _count in plan:
            account = f"ship_{node.replace('-', '_')}_{central_dsn.rsplit('/', 1)[1]}"
            postgres.create_login(account)
            accounts.allow_shipper(owner, account, node, school)
    finally:
        owner.close()
    with ExitStack() as stack:
        running = []
        for school, node, at, _count in plan:
            folder = tmp_path / node
            folder.mkdir()
            dsn = as_account(central_dsn, f"ship_{node.replace('-', '_')}_{central_dsn.rsplit('/', 1)[1]}")
            running.append(stack.enter_context(running_proxy(folder, at=at, settings=_trust(dsn, school, node))))
        for found, (_school, node, _at, count) in zip(running, plan, strict=True):
            with signed_in(found["proxy"]) as client:
                for i in range(count):
                    client.post(MESSAGE, json={"body": f"{node} message {i}"})
        for found, (_school, node, _at, _count) in zip(running, plan, strict=True):
            eventually(lambda f=found, n=node: _all_shipped(central_dsn, f, n), timeout_s=30)
    central = Central.open(central_dsn)
    try:
        made = trust_report.gather(central, MONDAY_10 - timedelta(days=1), MONDAY_10 + timedelta(days=1))
        checks = verify(central)
    finally:
        central.close()
    schools = {s.school: s for s in made.schools}
    assert set(schools) == {"school-a", "school-b"}
    assert schools["school-a"].kinds.get("message.send") == 7
    assert schools["school-a"].verdicts.get("allow", 0) >= 7
    assert schools["school-b"].kinds.get("message.send") == 5
    assert schools["school-b"].verdicts.get("block") == 5
    assert dict(schools["school-b"].rules)["messages-in-school-hours"] == 5
    assert sorted(n["node"] for n in schools["school-a"].nodes) == ["a-1", "a-2"]
    assert [c.is_ok for c in checks] == [True, True, True], [c.summary() for c in checks]
    # Every proxy signed at least its shutdown checkpoint, and the store holds it, verified.
    assert all(c.checkpoints >= 1 for c in checks), [c.summary() for c in checks]
    text = trust_report.render_text(made)
    assert "school-a" in text and "school-b" in text
    html = trust_report.render_html(made)
    assert "messages-in-school-hours" in html and "message 0" not in html


class _Load:
    """Messages sent through a proxy one after another on a thread; remembers what was acknowledged."""

    def __init__(self, proxy, prefix: str):
        self.proxy, self.prefix = proxy, prefix
        self.acknowledged: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            with signed_in(self.proxy, timeout=10) as client:
                i = 0
                while not self._stop.is_set():
                    text = f"{self.prefix} message {i}"
                    i += 1
                    try:
                        answer = client.post(MESSAGE, json={"body": text})
                    except httpx.HTTPError:
                        self.failed += 1
                        continue
                    if answer.status_code == 200:
                        self.acknowledged.append(text)
                    time.sleep(0.02)
        except (httpx.HTTPError, AssertionError):
            self.failed += 1


def test_thirty_seconds_without_the_server_under_load_lose_nothing(tmp_path):
    server = PostgresServer(require_server()).init().start()
    try:
        dsn = server.create_database()
        with running_proxy(tmp_path, settings=_trust(dsn, "school-a", "a-1")) as found:
            with _Load(found["proxy"], "outage") as load:
                eventually(lambda: len(load.acknowledged) >= 10, timeout_s=30)
                eventually(lambda: len(_central(dsn, "a-1")) > 0, timeout_s=30)
                server.stop()
                during = len(load.acknowledged)
                time.sleep(30)
                answered_while_down = len(load.acknowledged) - during
                server.start()
                wait_until_up(server)
                time.sleep(2)
            # The proxy judged and answered all through the outage...
            assert answered_while_down >= 100, (answered_while_down, found["proxy"].log()[-3000:])
            assert load.failed == 0
            # ...and the shipper caught up: the store holds exactly the local log, in order.
            eventually(lambda: _all_shipped(dsn, found, "a-1"), timeout_s=60)
            key = _fingerprint_key(found)
            with psycopg.connect(dsn) as conn:
                shipped = {row[0] for row in conn.execute(
                    "SELECT body::jsonb -> 'hashes' ->> 'text_hmac' FROM records WHERE node = 'a-1' "
                    "AND type = 'decision'")}
                events = [row[0] for row in conn.execute(
                    "SELECT type FROM records WHERE node = 'a-1' AND type LIKE 'trust.%' ORDER BY seq")]
            assert {key.of_text(t) for t in load.acknowledged} <= shipped
            # The outage is on record, in the chain itself: once when it began, once when it ended.
            assert events == ["trust.unreachable", "trust.resumed"]
    finally:
        server.destroy()


def test_a_proxy_killed_mid_load_loses_no_acknowledged_decision(tmp_path, central_dsn):
    with running_proxy(tmp_path, settings=_trust(central_dsn, "school-a", "a-1")) as found:
        with _Load(found["proxy"], "killed") as load:
            eventually(lambda: len(load.acknowledged) >= 40, timeout_s=60)
            found["proxy"].process.kill()            # SIGKILL: no drain, no shutdown checkpoint
            found["proxy"].process.wait(10)
        acknowledged = list(load.acknowledged)
        # Started again on the same data folder, its shipper sends what the killed one had not.
        FileClock.write(found["clock"], MONDAY_10 + timedelta(minutes=5))
        again = ProxyProcess(found["config"], tmp_path, found["standin"].port, found["standin"].ca_cert,
                             clock_file=found["clock"]).start()
        try:
            eventually(lambda: _all_shipped(central_dsn, found, "a-1"), timeout_s=60)
        finally:
            again.stop()
        key = _fingerprint_key(found)
        with psycopg.connect(central_dsn) as conn:
            shipped = {row[0] for row in conn.execute(
                "SELECT body::jsonb -> 'hashes' ->> 'text_hmac' FROM records WHERE type = 'decision'")}
            types = [row[0] for row in conn.execute("SELECT type FROM records ORDER BY seq")]
        missing = [t for t in acknowledged if key.of_text(t) not in shipped]
        assert acknowledged and not missing, f"{len(missing)} of {len(acknowledged)} acknowledged decisions missing"
        assert "proxy.recovered" in types      # the restart after the kill is on record centrally too


def test_the_shipper_catches_up_from_the_command_line_while_the_proxy_is_stopped(tmp_path, central_dsn):
    """No central store while the proxy ran; `dojoguard trust ship --once` afterwards sends everything."""
    with running_proxy(tmp_path) as found:
        with signed_in(found["proxy"]) as client:
            for i in range(3):
                client.post(MESSAGE, json={"body": f"later {i}"})
    settings = json.loads(found["config"].read_text())
    settings.update(_trust(central_dsn, "school-c", "c-1"))
    found["config"].write_text(json.dumps(settings))
    done = subprocess.run([sys.executable, "-m", "dojoguard", "trust", "ship", "--once", "--config",
                           str(found["config"])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Shipped" in done.stdout
    assert _all_shipped(central_dsn, found, "c-1")
    again = subprocess.run([sys.executable, "-m", "dojoguard", "trust", "ship", "--once", "--config",
                            str(found["config"])], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Shipped 0 records" in again.stdout
    check = subprocess.run([sys.executable, "-m", "dojoguard", "trust", "verify", "--config", str(found["config"])],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "c-1" in check.stdout and "ok:" in check.stdout
