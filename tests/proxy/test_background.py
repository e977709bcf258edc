"""Held photos, deferred messages and exemptions through the real proxy, with restarts in the middle.

A real ``dojoguard run`` process, the HTTPS stand-in for ClassDojo, a real
HTTP client and the real ``held``/``exempt`` commands; the proxy's clock is
moved with --clock-file.
"""

from __future__ import annotations

import json
import sqlite3
import ssl
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.clock import FileClock, FixedClock
from dojoguard.environment import Environment
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import write_config

pytestmark = pytest.mark.slow

POLICY = Path(__file__).parent / "policy" / "defer-and-hold.yaml"
MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
UPLOAD = "https://teach.classdojo.com/api/upload"
STORY = f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/storyFeed"
# London is on GMT in these weeks, so UTC hours are school hours.
FRIDAY_1730 = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
MONDAY_0800 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
MONDAY_1000 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MONDAY_1800 = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
CHRISTMAS_EVE_1730 = datetime(2026, 12, 24, 17, 30, tzinfo=UTC)


class World:
    def __init__(self, folder, standin):
        self.folder, self.standin = folder, standin
        self.clock = folder / "clock"
        self.config = write_config(folder)
        doc = json.loads(self.config.read_text())
        doc["rules"] = {"policy": str(POLICY), "reload": True}
        doc["holds"] = {"check_every_s": 0.3, "release_attempts": 2}
        # The stand-in's client is this machine: it counts as a school device here.
        doc["proxy"]["device_groups"] = {"school-devices": ["127.0.0.0/8"]}
        self.config.write_text(json.dumps(doc))
        self.proxy: ProxyProcess | None = None

    def start(self) -> None:
        self.proxy = ProxyProcess(self.config, self.folder, self.standin.port, self.standin.ca_cert,
                                  clock_file=self.clock).start()

    def restart(self, *, while_down=None) -> float:
        """Stop the proxy, optionally change something while it is down, start it; seconds until serving."""
        self.proxy.stop()
        if while_down:
            while_down()
        started = time.monotonic()
        self.start()
        return time.monotonic() - started

    def set_time(self, at: datetime) -> None:
        FileClock.write(self.clock, at)

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """A teacher's browser through the proxy (trusting only its CA), logged in."""
        context = ssl.create_default_context(cafile=str(self.proxy.ca_cert))
        with httpx.Client(proxy=self.proxy.url, verify=context, timeout=60) as client:
            login = client.post("https://teach.classdojo.com/api/session?duration=long",
                                json={"login": "teacher@example.org", "password": data.PASSWORD})
            assert login.status_code == 200, login.text
            yield client

    def command(self, *args, at: datetime):
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args], obj=Environment(clock=FixedClock(at)))
        assert result.exit_code == 0, result.output
        return result.output

    def held(self) -> list[dict]:
        return [json.loads(line) for line in self.command("held", "list", "--json", at=MONDAY_1000).splitlines()]

    def arrived(self, marker: bytes, path: str = "/message") -> int:
        return sum(1 for r in self.standin.received if r.method == "POST" and path in r.path and marker in r.body)

    def events(self, kind: str) -> list[dict]:
        db = sqlite3.connect(self.folder / "data" / "audit.sqlite")
        try:
            rows = db.execute("SELECT body FROM records WHERE type = ? ORDER BY seq", (kind,)).fetchall()
        finally:
            db.close()
        return [json.loads(b) for (b,) in rows]


def wait_for(check, timeout_s: float = 20.0, world: "World | None" = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting" + (f"; the proxy said:\n{world.proxy.log()}" if world else ""))


@contextmanager
def started_world(folder, at: datetime):
    """A World in ``folder`` with its proxy running and its clock at ``at``; the proxy stops afterwards."""
    with StandIn(folder / "standin") as standin:
        world = World(folder, standin)
        world.set_time(at)
        world.start()
        try:
            yield world
        finally:
            world.proxy.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with started_world(tmp_path_factory.mktemp("background"), MONDAY_1000) as started:
        yield started


def test_deferred_message_is_sent_at_eight_on_monday_even_across_a_restart(world):
    """Friday 17:30 is queued with a clear notice, a retry is not queued twice, and it goes at Monday 08:00."""
    world.set_time(FRIDAY_1730)
    with world.client() as client:
        first = client.post(MESSAGE, json={"body": "Library books back on Monday please"})
        again = client.post(MESSAGE, json={"body": "Library books back on Monday please"})
    assert first.status_code == 403, first.text
    notice = first.json()["error"]["fallbackMessage"]
    assert first.json()["error"]["code"] == "DOJOGUARD_DEFERRED"
    assert notice.startswith("Queued until 8.00am on Monday 30 November: it will be sent then, by itself. "
                             "The message function will only operate within the stated hours.")
    assert again.json()["error"]["fallbackMessage"].startswith("This was already queued until 8.00am on Monday "
                                                               "30 November: it will be sent then, once.")
    queued = [i for i in world.held() if i["kind"] == "defer"]
    assert len(queued) == 1 and queued[0]["release_at"] == MONDAY_0800.isoformat()

    world.set_time(MONDAY_0800 - timedelta(seconds=30))
    time.sleep(2)
    assert world.arrived(b"Library books") == 0  # not a moment early

    # The proxy is down at 08:00; what fell due meanwhile is sent when it comes back.
    world.restart(while_down=lambda: world.set_time(MONDAY_0800 + timedelta(minutes=40)))
    wait_for(lambda: world.arrived(b"Library books") == 1, world=world)
    sent = next(r for r in world.standin.received if b"Library books" in r.body)
    assert any(k.lower() == "cookie" and "dojo_login.sid" in v for k, v in sent.headers)  # the teacher's session
    wait_for(lambda: not [i for i in world.held() if i["kind"] == "defer"])
    assert any(e.get("hold") == queued[0]["id"] for e in world.events("defer.released"))
    time.sleep(1)
    assert world.arrived(b"Library books") == 1  # sent once, never again


def test_the_day_before_a_bank_holiday_waits_for_the_next_school_day(world):
    """Christmas Eve at 17:30 waits past Christmas Day and the Boxing Day bank holiday to Tuesday 29th."""
    world.set_time(CHRISTMAS_EVE_1730)
    with world.client() as client:
        queued = client.post(MESSAGE, json={"body": "Happy Christmas from Year 3"})
    assert "8.00am on Tuesday 29 December" in queued.json()["error"]["fallbackMessage"]
    item = next(i for i in world.held() if i["kind"] == "defer")
    world.command("held", "reject", item["id"], "--reason", "sent by email instead", "--by", "Office",
                  at=CHRISTMAS_EVE_1730)
    assert world.held() == []


def test_a_release_refused_for_a_login_waits_for_the_teachers_next_login_and_survives_a_restart(world):
    """The teacher's ClassDojo login ended over the weekend: the release is refused (401) once, the item waits
    (not retried into failure), survives a restart, and goes, once, with the new login as soon as the teacher
    uses ClassDojo through the proxy again."""
    world.set_time(FRIDAY_1730)
    with world.client() as client:
        client.post(MESSAGE, json={"body": "Swimming on Tuesday"})
    world.standin.expire_sessions()  # the teacher's ClassDojo login ends over the weekend
    world.set_time(MONDAY_0800)
    wait_for(lambda: world.events("defer.waiting_for_login"), world=world)
    (waiting,) = [i for i in world.held() if i["state"] == "waiting-for-login"]
    assert "401" in waiting["last_error"]
    world.set_time(MONDAY_0800 + timedelta(hours=1))
    time.sleep(1.5)
    assert world.arrived(b"Swimming") == 1  # the refused attempt only: nothing retried without a login

    world.restart()
    assert [i["id"] for i in world.held() if i["state"] == "waiting-for-login"] == [waiting["id"]]
    with world.client() as client:  # logs in again: a new session
        assert client.get("https://teach.classdojo.com/api/session").status_code == 200
        wait_for(lambda: world.arrived(b"Swimming") == 2, world=world)
        new_cookie = client.cookies.get("dojo_login.sid")
    sent = [r for r in world.standin.received if b"Swimming" in r.body][-1]
    assert any(k.lower() == "cookie" and new_cookie in v for k, v in sent.headers)
    wait_for(lambda: waiting["id"] in [e["hold"] for e in world.events("defer.released")])
    assert world.held() == []


def upload_and_post(client: httpx.Client, photo: bytes, caption: str) -> tuple[httpx.Response, httpx.Response]:
    """The app's two steps: upload the photo (ClassDojo answers with its id), then post naming that id."""
    uploaded = client.post(UPLOAD, files={"file": ("photo.jpg", photo, "image/jpeg")})
    assert uploaded.status_code == 200, uploaded.text
    posted = client.post(STORY, json={"body": caption, "attachments": [{"_id": uploaded.json()["_id"]}]})
    return uploaded, posted


def test_held_photos_wait_for_a_leader_across_a_restart_then_approved_one_goes_and_rejected_one_not(world):
    """Both uploads reach storage at once (they publish nothing); the two posts naming them are held, survive
    a restart, and the approved post reaches ClassDojo byte for byte, the rejected one never."""
    world.set_time(MONDAY_1000)
    photos = resources.files("dojoguard.samples").joinpath("photos")
    rocket, coffee = photos.joinpath("rocket.jpg").read_bytes(), photos.joinpath("coffee.jpg").read_bytes()
    with world.client() as client:
        rocket_upload, held_rocket = upload_and_post(client, rocket, "Rocket launch")
        _, held_coffee = upload_and_post(client, coffee, "Coffee morning")
    assert world.arrived(rocket, "/api/upload") == 1 and world.arrived(coffee, "/api/upload") == 1
    for answer in (held_rocket, held_coffee):
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_HELD", answer.text
    by_decision = {i["decision_id"]: i for i in world.held()}
    rocket_item = by_decision[held_rocket.headers["X-Dojoguard-Decision"]]
    coffee_item = by_decision[held_coffee.headers["X-Dojoguard-Decision"]]
    assert rocket_item["action"] == coffee_item["action"] == "story.post"
    assert world.events("hold.created")

    world.restart()
    world.command("held", "approve", rocket_item["id"], "--by", "Mrs Head", at=MONDAY_1000)
    world.command("held", "reject", coffee_item["id"], "--reason", "Not for the class page", "--by", "Mrs Head",
                  at=MONDAY_1000)
    wait_for(lambda: world.arrived(b"Rocket launch", "/storyFeed") == 1)
    time.sleep(1.5)
    assert world.arrived(rocket_upload.json()["_id"].encode(), "/storyFeed") == 1
    assert world.arrived(b"Coffee morning", "/storyFeed") == 0
    assert not [i for i in world.held() if i["id"] in (rocket_item["id"], coffee_item["id"])]
    assert [e["hold"] for e in world.events("hold.released")] == [rocket_item["id"]]
    assert coffee_item["id"] in [e["hold"] for e in world.events("hold.rejected")]


def test_exemption_granted_while_running_applies_at_once_survives_a_restart_and_ends_on_time(world):
    """The headteacher's exemption is picked up without a restart, still applies after one, and expires on time."""
    world.set_time(MONDAY_1800)
    world.command("exempt", "grant", "--rule", "messaging-hours", "--teacher", data.TEACHER["_id"],
                  "--from", MONDAY_1800.isoformat(), "--until", (MONDAY_1800 + timedelta(hours=1)).isoformat(),
                  "--reason", "Winter fair: parking reminder", "--by", "Mrs Head", at=MONDAY_1800)
    with world.client() as client:
        def sent_now() -> bool:
            return client.post(MESSAGE, json={"body": "Fair parking: use the top gate"}).status_code == 200
        wait_for(sent_now, timeout_s=15)
    decision = world.events("decision")[-1]
    assert decision["verdict"] == "allow" and decision["exemptions_used"]

    world.restart(while_down=lambda: world.set_time(MONDAY_1800 + timedelta(minutes=30)))
    with world.client() as client:
        assert client.post(MESSAGE, json={"body": "Fair parking: still the top gate"}).status_code == 200
        world.set_time(MONDAY_1800 + timedelta(hours=1))
        after = client.post(MESSAGE, json={"body": "Fair is over, thank you"})
    assert after.status_code == 403 and after.json()["error"]["code"] == "DOJOGUARD_DEFERRED"
    assert world.events("exemption.used")
    leftover = next(i for i in world.held() if i["kind"] == "defer")
    world.command("held", "reject", leftover["id"], "--reason", "test over", "--by", "Office", at=MONDAY_1800)
