"""The hold store edited with sqlite3 under a running proxy: nothing leaves, and the audit log says why.

A real ``dojoguard run`` process, the HTTPS stand-in for ClassDojo, a teacher's
client trusting only the proxy's CA, and the real ``held`` commands.
"""

from __future__ import annotations

import base64
import sqlite3
import stat
import time
from importlib import resources

import pytest
from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.clock import FixedClock
from dojoguard.environment import Environment
from tests.proxy.test_background import (FRIDAY_1730, MESSAGE, MONDAY_0800, MONDAY_1000, STORY, World,
                                         started_world, wait_for)

pytestmark = pytest.mark.slow

PHOTOS = resources.files("dojoguard.samples").joinpath("photos")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with started_world(tmp_path_factory.mktemp("tampering"), MONDAY_1000) as started:
        yield started


def intrude(world: World, statement: str, *args) -> None:
    """Write the hold store as someone with the file and sqlite3, not dojoguard, would."""
    db = sqlite3.connect(world.folder / "data" / "holds.sqlite")
    try:
        db.execute(statement, args)
        db.commit()
    finally:
        db.close()


def post_photo(client, photo: bytes, caption: str):
    """A class story post carrying the photo itself: the post is what is held."""
    return client.post(STORY, json={"body": caption, "attachments": [
        {"type": "photo", "data": "data:image/jpeg;base64," + base64.b64encode(photo).decode()}]})


def item_for(world: World, answer) -> dict:
    return next(i for i in world.held() if i["decision_id"] == answer.headers["X-Dojoguard-Decision"])


def test_a_hold_approved_in_the_file_is_refused_recorded_and_never_sent(world):
    """UPDATE ... SET state='approved' on a held photo post: nothing reaches ClassDojo, hold.tampered is recorded."""
    world.set_time(MONDAY_1000)
    rocket = PHOTOS.joinpath("rocket.jpg").read_bytes()
    with world.client() as client:
        held = post_photo(client, rocket, "Rocket (tampered)")
    assert held.status_code == 403 and held.json()["error"]["code"] == "DOJOGUARD_HELD", held.text
    item = item_for(world, held)

    intrude(world, "UPDATE items SET state = 'approved' WHERE id = ?", item["id"])
    wait_for(lambda: [e for e in world.events("hold.tampered") if e["hold"] == item["id"]], world=world)
    time.sleep(1.5)  # several release passes (every 0.3 s)
    assert world.arrived(b"Rocket (tampered)", "/storyFeed") == 0
    assert not [e for e in world.events("hold.released") + world.events("hold.approved") if e["hold"] == item["id"]]
    assert next(i for i in world.held() if i["id"] == item["id"])["state"] == "tampered"
    (record,) = [e for e in world.events("hold.tampered") if e["hold"] == item["id"]]
    assert record["state"] == "approved" and "seal" in record["found"]

    # A leader cannot approve it now either; rejecting it is what is left.
    refused = CliRunner().invoke(cli, ["--config", str(world.config), "held", "approve", item["id"], "--by", "Head"],
                                 obj=Environment(clock=FixedClock(MONDAY_1000)))
    assert refused.exit_code == 1 and "changed outside dojoguard" in refused.output
    world.command("held", "reject", item["id"], "--reason", "changed by hand", "--by", "Head", at=MONDAY_1000)
    assert world.arrived(b"Rocket (tampered)", "/storyFeed") == 0


def test_a_genuine_approval_through_the_command_still_goes(world):
    """The command and the proxy share the sealing key: `held approve` is sent on, byte for byte, once."""
    world.set_time(MONDAY_1000)
    coffee = PHOTOS.joinpath("coffee.jpg").read_bytes()
    with world.client() as client:
        held = post_photo(client, coffee, "Coffee (approved)")
    item = item_for(world, held)
    world.command("held", "approve", item["id"], "--by", "Mrs Head", at=MONDAY_1000)
    wait_for(lambda: world.arrived(b"Coffee (approved)", "/storyFeed") == 1, world=world)
    assert world.arrived(held.request.content, "/storyFeed") == 1  # byte for byte
    approved = [e for e in world.events("hold.approved") if e["hold"] == item["id"]]
    assert approved and [e["hold"] for e in world.events("hold.released")].count(item["id"]) == 1
    key = world.folder / "data" / "keys" / "holds-seal.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700


def test_a_deferred_message_moved_forward_in_the_file_is_not_sent_early_or_later(world):
    """A Friday-evening message whose release time is set to the past is refused, recorded, and never sent."""
    world.set_time(FRIDAY_1730)
    with world.client() as client:
        queued = client.post(MESSAGE, json={"body": "Cake sale moved to Tuesday"})
    assert queued.json()["error"]["code"] == "DOJOGUARD_DEFERRED", queued.text
    item = item_for(world, queued)

    intrude(world, "UPDATE items SET release_at = '2026-11-27T17:00:00+00:00' WHERE id = ?", item["id"])
    wait_for(lambda: [e for e in world.events("hold.tampered") if e["hold"] == item["id"]], world=world)
    world.set_time(MONDAY_0800)
    time.sleep(1.5)
    assert world.arrived(b"Cake sale") == 0
    assert not [e for e in world.events("defer.released") if e["hold"] == item["id"]]
    world.command("held", "reject", item["id"], "--reason", "changed by hand", "--by", "Office", at=MONDAY_1000)
