"""A real `dojoguard run` whose school keeps its consent register on a real PostgreSQL server (storage:
postgresql://...): photos are judged from the proxy's copy, a change made on the server decides the next photo
within seconds (and what the proxy learns is kept in the school's state schema there), and with the server stopped past consent.max_staleness_s a photo with a face is blocked (fails
closed) while one without faces still goes; the copy catches up when the server is back.

The class of three is test_videos's: Ada is permitted and enrolled from the shipped portrait, Bo refused, so
every face in a class photo must be identified against the allow-list.
"""

from __future__ import annotations

import base64
import time

import pytest

from dojoguard.clock import FixedClock
from dojoguard.consent_registry import sample_photos
from dojoguard.consent_registry.registry import Registry
from dojoguard.consent_registry.replica import freshness, open_central
from dojoguard.standin import data
from dojoguard.storage.location import Storage
from dojoguard.trust.central import Central
from tests.proxy.conftest import MONDAY_10, audit_rows, running_proxy, signed_in
from tests.proxy.test_videos import clip, enrol_class
from tests.support.postgres import PostgresServer, require_server, wait_until_up

pytestmark = pytest.mark.slow

STORY = f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/storyFeed"
SCHOOL = "oak"
STALE_S = 3


def _seed(storage: Storage) -> int:
    with open_central(storage, clock=FixedClock(MONDAY_10)) as register:
        return enrol_class(register)


def _set(storage: Storage, person: int, state: str) -> None:
    with open_central(storage) as register:
        register.set_consent(person, "class_story", state, source="email", informed_by="office")


def _photo(client, name: str, marker: str):
    picture = sample_photos.encode_jpeg(sample_photos.open_sample(name))
    doc = {"body": marker, "attachments": [{"type": "photo",
                                            "data": "data:image/jpeg;base64," + base64.b64encode(picture).decode()}]}
    return client.post(STORY, json=doc)


def _arrived(found, marker: str) -> bool:
    return any(r.method == "POST" and marker.encode() in r.body for r in found["standin"].received)


def _copy_says(folder, check, timeout_s: float = 15.0) -> float:
    """Seconds until ``check(copy)`` holds for the proxy's copy of the register."""
    started = time.monotonic()
    while True:
        path = folder / "data" / "registry.sqlite"
        if path.exists():
            with Registry.open(path, create=False) as copy:
                if freshness(copy.database) is not None and check(copy):
                    return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError("the proxy's copy of the register did not change in time")
        time.sleep(0.05)


def _copy_events(folder) -> list[str]:
    """The audit log's records of the copier, in order."""
    import sqlite3

    db = sqlite3.connect(folder / "data" / "audit.sqlite")
    try:
        return [kind for (kind,) in db.execute("SELECT type FROM records WHERE type LIKE 'consent.copy%' "
                                               "ORDER BY seq")]
    finally:
        db.close()


def _shipped(storage: Storage) -> int:
    """The school's decisions in the central store on the storage server."""
    central = Central.open(storage.dsn, migrate=False)
    try:
        return central.db.execute("SELECT COUNT(*) FROM records WHERE school = ? AND type = 'decision'",
                                  (SCHOOL,)).fetchone()[0]
    finally:
        central.close()


def test_photos_follow_the_trusts_register_and_fail_closed_when_the_copy_is_stale(tmp_path):
    server = PostgresServer(require_server()).init().start()
    try:
        storage = Storage(dsn=server.create_database(), school=SCHOOL, connect_timeout_s=2)
        ada = _seed(storage)
        settings = {"storage": storage.dsn, "trust": {"school": SCHOOL}, "images": {"workers": 1},
                    "consent": {"max_staleness_s": STALE_S}}
        with running_proxy(tmp_path, policy="builtin", settings=settings) as found:
            folder = found["folder"]
            _copy_says(folder, lambda copy: copy.is_permitted(ada, "class_story"), timeout_s=60)
            with signed_in(found["proxy"], timeout=120) as client:
                answer = _photo(client, sample_photos.PORTRAIT, "Ada in the garden")
                assert answer.status_code == 200, answer.text
                assert _arrived(found, "Ada in the garden")

                # Her parents withdraw consent, recorded on the server: the copy has it within seconds.
                _set(storage, ada, "refused")
                took = _copy_says(folder, lambda copy: not copy.is_permitted(ada, "class_story"))
                assert took < 5, took
                answer = _photo(client, sample_photos.PORTRAIT, "Ada at lunch")
                assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_BLOCKED", answer.text
                assert not _arrived(found, "Ada at lunch")
                _set(storage, ada, "granted")
                _copy_says(folder, lambda copy: copy.is_permitted(ada, "class_story"))

                # The server stops. Within the bound the copy still decides; past it, a face fails closed.
                server.stop()
                time.sleep(STALE_S + 1.5)
                answer = _photo(client, sample_photos.PORTRAIT, "Ada during the outage")
                assert answer.status_code == 403, answer.text
                assert not _arrived(found, "Ada during the outage")
                decision = audit_rows(folder / "data" / "audit.sqlite")[-1]
                assert decision["verdict"] != "allow", decision
                # The same face in a video instead of a photo is judged from the same stale copy: not sent.
                video = clip((sample_photos.open_sample(sample_photos.PORTRAIT), 2))
                answer = client.post(STORY, json={"body": "Ada's video during the outage", "attachments": [
                    {"type": "video", "data": "data:video/mp4;base64," + base64.b64encode(video).decode()}]})
                assert answer.status_code == 403, answer.text
                assert not _arrived(found, "Ada's video during the outage")
                # A photo without a face does not need the register: it goes.
                answer = _photo(client, sample_photos.NO_FACE[0], "Coffee during the outage")
                assert answer.status_code == 200, answer.text
                assert _copy_events(folder) == ["consent.copy_failing"]

                # The server is back: the copy is confirmed again and Ada's photo goes.
                server.start()
                wait_until_up(server)
                deadline = time.monotonic() + 30
                while _copy_events(folder) != ["consent.copy_failing", "consent.copy_resumed"]:
                    assert time.monotonic() < deadline, "the copy was not confirmed again"
                    time.sleep(0.2)
                answer = _photo(client, sample_photos.PORTRAIT, "Ada after the outage")
                assert answer.status_code == 200, answer.text
                assert _arrived(found, "Ada after the outage")

            # What the proxy learned (the teacher's session, the class's names) is kept on the server too, in
            # the school's own state schema, and nothing in a state file here.
            state = storage.open("state")
            try:
                assert state.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] >= 1
                assert state.execute("SELECT COUNT(*) FROM names WHERE kind = 'teacher'").fetchone()[0] >= 1
            finally:
                state.close()
            assert not (folder / "data" / "proxy.sqlite").exists()
            # Without a trust.database of its own, the audit trail is shipped to the same server: all five
            # photo decisions, those made while it was away included.
            deadline = time.monotonic() + 30
            while _shipped(storage) < 5:
                assert time.monotonic() < deadline, _shipped(storage)
                time.sleep(0.5)
    finally:
        server.destroy()
