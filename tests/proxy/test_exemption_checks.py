"""Exemptions edited by hand: recorded with their changes before they apply, at reload and at start.

The attack is made as an intruder would make it: text appended to, or changed
in, the exemptions file with no `exempt` command. The first tests run the real
``dojoguard run`` process in front of the stand-in; the last drives the same
reload in-process to prove that an edit which cannot be recorded is not
applied.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import pytest

from dojoguard import config
from dojoguard.clock import FixedClock
from dojoguard.proxy.services import open_services, reload_changed
from dojoguard.proxy.settings import Settings
from dojoguard.rules.exemptions import load_exemptions
from dojoguard.standin import data
from tests.proxy.conftest import MONDAY_18, write_config
from tests.proxy.test_background import MESSAGE, MONDAY_1800, World, started_world, wait_for

HAND_ADDED = """
- id: ex-by-hand
  rules: [messaging-hours]
  everyone: true
  from: '{starts}'
  until: '{ends}'
  granted_by: nobody asked
  reason: added with an editor
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with started_world(tmp_path_factory.mktemp("handedits"), MONDAY_1800) as started:
        yield started


def exemptions_file(world: World):
    return world.folder / "data" / "exemptions.yaml"


def seq_of(world: World, kind: str, match) -> list[int]:
    db = sqlite3.connect(world.folder / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT seq, body FROM records WHERE type = ? ORDER BY seq", (kind,)).fetchall()
    finally:
        db.close()
    return [seq for seq, body in rows if match(json.loads(body))]


@pytest.mark.slow
def test_an_exemption_appended_by_hand_is_recorded_before_it_is_used(world):
    """An exemption appended to the file is recorded (exemption.edited_by_hand, added) before a decision uses it."""
    world.set_time(MONDAY_1800)
    path = exemptions_file(world)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(HAND_ADDED.format(starts=MONDAY_1800.isoformat(),
                                       ends=(MONDAY_1800 + timedelta(hours=1)).isoformat()))
    wait_for(lambda: world.events("exemption.edited_by_hand"), world=world)
    (record,) = world.events("exemption.edited_by_hand")
    assert (record["exemption"], record["change"], record["recorded"]) == ("ex-by-hand", "added", None)
    assert record["now"]["everyone"] is True and record["now"]["rules"] == ["messaging-hours"]
    assert record["honoured"] is True and not world.events("exemption.granted")

    with world.client() as client:
        answer = client.post(MESSAGE, json={"body": "Sent under a hand-made exemption"})
    assert answer.status_code == 200, answer.text
    used = seq_of(world, "decision", lambda d: "ex-by-hand" in (d.get("exemptions_used") or []))
    recorded = seq_of(world, "exemption.edited_by_hand", lambda e: e["exemption"] == "ex-by-hand")
    assert used and recorded[0] < used[0]


@pytest.mark.slow
def test_an_edit_made_while_the_proxy_was_down_is_recorded_at_start_once(world):
    """A granted exemption widened by hand while the proxy is stopped is recorded at start, and not again later."""
    world.set_time(MONDAY_1800)
    world.command("exempt", "grant", "--rule", "messaging-hours", "--teacher", data.TEACHER["_id"],
                  "--from", MONDAY_1800.isoformat(), "--until", (MONDAY_1800 + timedelta(hours=1)).isoformat(),
                  "--reason", "Parents evening", "--by", "Mrs Head", at=MONDAY_1800)
    granted = world.events("exemption.granted")[-1]["exemption"]
    old_end = f"until: '{(MONDAY_1800 + timedelta(hours=1)).isoformat()}'"
    new_end = f"until: '{(MONDAY_1800 + timedelta(hours=3)).isoformat()}'"

    def widen() -> None:
        path = exemptions_file(world)
        text = path.read_text("utf-8")
        assert old_end in text
        path.write_text(text.replace(old_end, new_end), "utf-8")

    starts = len(seq_of(world, "proxy.started", lambda e: True))
    world.restart(while_down=widen)
    changed = [e for e in world.events("exemption.edited_by_hand") if e["exemption"] == granted]
    assert [(e["change"], e["changed"]) for e in changed] == [("changed", ["ends"])]
    assert changed[0]["recorded"]["ends"] == (MONDAY_1800 + timedelta(hours=1)).isoformat()
    assert changed[0]["now"]["ends"] == (MONDAY_1800 + timedelta(hours=3)).isoformat()
    # proxy.started is recorded just after the proxy starts listening: wait for the restarted one's.
    wait_for(lambda: len(seq_of(world, "proxy.started", lambda e: True)) > starts, world=world)
    started = seq_of(world, "proxy.started", lambda e: True)
    assert seq_of(world, "exemption.edited_by_hand", lambda e: e["exemption"] == granted)[0] < started[-1]

    world.restart()
    assert len([e for e in world.events("exemption.edited_by_hand") if e["exemption"] == granted]) == 1


def test_a_hand_edit_that_cannot_be_recorded_is_not_applied_and_is_tried_again(tmp_path):
    """With the audit log refusing the record, the hand-added exemption is left out; once it can be, it applies."""
    settings = Settings.from_config(config.load(write_config(tmp_path)))
    services = open_services(settings, FixedClock(MONDAY_18), images=False)
    try:
        real = services.audit

        class Refusing:
            def __getattr__(self, name):
                return getattr(real, name)

            def append_event(self, event, fields, **kwargs):
                raise OSError("disk full")

        settings.exemptions.write_text(HAND_ADDED.format(starts=MONDAY_18.isoformat(),
                                                         ends=(MONDAY_18 + timedelta(hours=1)).isoformat()), "utf-8")
        assert len(load_exemptions(settings.exemptions)) == 1
        services.audit = Refusing()
        (result,) = reload_changed(services)
        assert result.what == "exemptions" and result.ok
        assert services.exemptions.get("ex-by-hand") is None  # not on record, so not applied
        services.audit = real
        (again,) = reload_changed(services)  # the file did not change, yet it is checked again
        assert again.what == "exemptions" and services.exemptions.get("ex-by-hand") is not None
        assert [r.fields["change"] for r in real.records(types=("exemption.edited_by_hand",))] == ["added"]
    finally:
        services.close()
