"""Queued and approved items through the real proxy when things go wrong: killed mid-send, rejected mid-send,
queued over the Easter holiday.

A real ``dojoguard run`` process, the HTTPS stand-in for ClassDojo with its
slow-reply switch, a teacher's client trusting only the proxy's CA, SIGKILL,
and the real ``held`` commands.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.environment import Environment
from dojoguard.rules.policy import builtin_path
from tests.proxy.test_background import FRIDAY_1730, MESSAGE, MONDAY_0800, World, started_world, wait_for

pytestmark = pytest.mark.slow

QUEUE_OVER_HOLIDAYS = Path(__file__).parent / "policy" / "queue-over-holidays.yaml"
# The example calendar's Easter holiday runs from Monday 29 March to Friday 9 April 2027.
EASTER_FRIDAY_1730 = datetime(2027, 3, 26, 17, 30, tzinfo=UTC)  # GMT
AFTER_EASTER_0800 = datetime(2027, 4, 12, 7, 0, tzinfo=UTC)    # 8.00am BST


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with started_world(tmp_path_factory.mktemp("releases"), FRIDAY_1730) as started:
        yield started


def queue(world: World, text: str, at: datetime = FRIDAY_1730) -> dict:
    """A message sent out of hours, queued; its item."""
    world.set_time(at)
    with world.client() as client:
        answer = client.post(MESSAGE, json={"body": text})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_DEFERRED", answer.text
    return next(i for i in world.held() if i["decision_id"] == answer.headers["X-Dojoguard-Decision"])


def state_of(world: World, item_id: str) -> str | None:
    return next((i["state"] for i in world.held() if i["id"] == item_id), None)


def held(world: World, *args: str):
    """A `held` command as a leader runs it: the real clock of their terminal (no clock given)."""
    return CliRunner().invoke(cli, ["--config", str(world.config), "held", *args], obj=Environment())


def test_killed_while_sending_the_message_is_uncertain_never_sent_twice_until_a_person_resends(world):
    """SIGKILL after ClassDojo received the message but before it answered: after the restart the item is
    `uncertain` (recorded, listed, with when the send began), it is not sent again on any later pass, and only
    `held resend` sends it again."""
    item = queue(world, "Harvest festival boxes by Wednesday")
    world.standin.slow_replies(60, "/message")
    try:
        world.set_time(MONDAY_0800)
        wait_for(lambda: world.arrived(b"Harvest festival") == 1, world=world)
        world.proxy.process.kill()
        world.proxy.process.wait(10)
        world.start()
        wait_for(lambda: [e for e in world.events("defer.uncertain") if e["hold"] == item["id"]], world=world)
    finally:
        world.standin.slow_replies(0)
    (record,) = [e for e in world.events("defer.uncertain") if e["hold"] == item["id"]]
    assert record["sent_at"].startswith("2026-11-30T08:00")
    world.set_time(MONDAY_0800 + timedelta(hours=3))
    time.sleep(2)  # several release passes
    assert world.arrived(b"Harvest festival") == 1
    assert not [e for e in world.events("defer.released") if e["hold"] == item["id"]]
    listed = held(world, "list", "--failed")
    assert item["id"] in listed.output and "uncertain" in listed.output and "proxy stopped" in listed.output

    resent = held(world, "resend", item["id"], "--by", "IT office")
    assert resent.exit_code == 0, resent.output
    wait_for(lambda: world.arrived(b"Harvest festival") == 2, world=world)
    wait_for(lambda: [e for e in world.events("defer.released") if e["hold"] == item["id"]])
    assert state_of(world, item["id"]) is None


def test_a_leader_cannot_reject_what_is_being_sent_and_a_rejection_is_never_followed_by_a_send(world):
    """`held reject` while the message is on its way is refused, saying so; it is then released and recorded as
    released only. A rejection made before the send stops it for good."""
    sending = queue(world, "Reading records in bags please")
    rejected = queue(world, "Non-uniform day on Friday")
    refused = held(world, "reject", rejected["id"], "--reason", "Wrong date", "--by", "Mrs Head")
    assert refused.exit_code == 0, refused.output
    world.standin.slow_replies(4, "/message")
    try:
        world.set_time(MONDAY_0800 + timedelta(minutes=5))
        wait_for(lambda: world.arrived(b"Reading records") == 1, world=world)
        during = held(world, "reject", sending["id"], "--reason", "Too late", "--by", "Mrs Head")
        assert during.exit_code == 1 and "being sent to ClassDojo right now" in during.output, during.output
        wait_for(lambda: [e for e in world.events("defer.released") if e["hold"] == sending["id"]], world=world)
    finally:
        world.standin.slow_replies(0)
    assert not [e for e in world.events("hold.rejected") if e["hold"] == sending["id"]]
    assert world.arrived(b"Non-uniform day") == 0
    assert [e["hold"] for e in world.events("hold.rejected")].count(rejected["id"]) == 1


def test_a_clean_stop_lets_a_release_in_progress_finish(world):
    """SIGTERM while ClassDojo is slow to answer a release: the proxy waits for the answer (within
    proxy.drain_s), records the release and stops; nothing is left uncertain, nothing is sent again."""
    item = queue(world, "Cake sale after school")
    world.standin.slow_replies(3, "/message")
    try:
        world.set_time(MONDAY_0800 + timedelta(minutes=10))
        wait_for(lambda: world.arrived(b"Cake sale") == 1, world=world)
        assert world.proxy.stop() == 0
    finally:
        world.standin.slow_replies(0)
    assert [e["hold"] for e in world.events("defer.released")].count(item["id"]) == 1
    world.start()
    time.sleep(1.5)
    assert not [e for e in world.events("defer.uncertain") if e["hold"] == item["id"]]
    assert state_of(world, item["id"]) is None and world.arrived(b"Cake sale") == 1


@pytest.fixture(scope="module")
def easter(tmp_path_factory):
    folder = tmp_path_factory.mktemp("easter")
    with started_world(folder, EASTER_FRIDAY_1730) as started:
        doc = json.loads(started.config.read_text())
        doc["rules"] = {"policy": str(QUEUE_OVER_HOLIDAYS), "reload": False,
                        "calendar": str(builtin_path().parent / "example.calendar.yaml")}
        started.config.write_text(json.dumps(doc))
        started.restart()
        yield started


def test_a_message_queued_before_easter_waits_through_the_holiday_and_goes_once(easter):
    """Friday 26 March 2027, 17:30: queued until 8.00am on Monday 12 April (two weeks of holiday and Easter
    Monday later). It is still waiting on 2 April, when the old queue-time expiry discarded it, and on 9 April;
    it goes once at 08:00 on the 12th."""
    easter.set_time(EASTER_FRIDAY_1730)
    with easter.client() as client:
        answer = client.post(MESSAGE, json={"body": "Easter egg hunt photos next term"})
    assert answer.json()["error"]["code"] == "DOJOGUARD_DEFERRED", answer.text
    notice = answer.json()["error"]["fallbackMessage"]
    assert "8.00am on Monday 12 April" in notice and "not sent" not in notice
    item = next(i for i in easter.held() if i["decision_id"] == answer.headers["X-Dojoguard-Decision"])
    assert item["waiting_since"] == AFTER_EASTER_0800.isoformat()
    for day in (datetime(2027, 4, 2, 12, tzinfo=UTC), datetime(2027, 4, 9, 12, tzinfo=UTC),
                AFTER_EASTER_0800 - timedelta(minutes=1)):
        easter.set_time(day)
        time.sleep(1.2)  # several release passes at each
        assert state_of(easter, item["id"]) == "pending", day
    assert easter.arrived(b"Easter egg hunt") == 0
    assert not easter.events("defer.expired") and not easter.events("hold.expired")
    easter.set_time(AFTER_EASTER_0800)
    wait_for(lambda: easter.arrived(b"Easter egg hunt") == 1, world=easter)
    wait_for(lambda: state_of(easter, item["id"]) is None)
    time.sleep(1)
    assert easter.arrived(b"Easter egg hunt") == 1


def test_the_commands_stamp_their_records_with_the_proxys_clock(easter):
    """In staging the proxy's clock is a file; `held` commands on the same data folder follow it, so their records
    sit in time order with the proxy's (not at today's real date among records of 2027)."""
    at = datetime(2027, 4, 16, 18, 0, tzinfo=UTC)
    easter.set_time(at)
    with easter.client() as client:
        answer = client.post(MESSAGE, json={"body": "Sports day kit list"})
    item = next(i for i in easter.held() if i["decision_id"] == answer.headers["X-Dojoguard-Decision"])
    rejected = held(easter, "reject", item["id"], "--reason", "sent as a letter", "--by", "Office")
    assert rejected.exit_code == 0, rejected.output
    db = sqlite3.connect(easter.folder / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT at, type FROM records ORDER BY seq").fetchall()
    finally:
        db.close()
    stamp = next(datetime.fromisoformat(a) for a, t in rows if t == "hold.rejected")
    assert abs(stamp - at) < timedelta(minutes=5), stamp
    times = [datetime.fromisoformat(a) for a, _ in rows]
    assert times[-1] >= times[-2] - timedelta(seconds=1)
