"""A proxy's copy of its school's register on a real PostgreSQL server: changes arrive by NOTIFY, the copy
says how fresh it is, a stale or unmarked copy is refused, erasure reaches the copy's file, schools stay apart."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from dojoguard.consent_registry.registry import BIOMETRIC, Registry, RegistryUnavailable
from dojoguard.consent_registry.replica import Replica, check_fresh, freshness, open_central, refresh
from dojoguard.storage.location import Storage
from tests.consent_registry.conftest import add_pupil

PHOTO = {"class_story": "granted", BIOMETRIC: "granted"}


def eventually(check, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not within the time allowed")
        time.sleep(0.02)


@pytest.fixture
def storage(registers_dsn) -> Storage:
    return Storage(dsn=registers_dsn, school="oak-" + uuid.uuid4().hex[:8])


@pytest.fixture
def central(storage, clock):
    reg = open_central(storage, clock=clock)
    yield reg
    reg.close()


@pytest.fixture
def copier(storage, tmp_path):
    """A copier thread with a long heartbeat, so a change seen quickly was seen by its notification."""
    replica = Replica(storage, tmp_path / "copy" / "registry.sqlite", max_staleness_s=300)
    yield replica
    replica.stop()


def _copy(tmp_path) -> Registry:
    return Registry.open(tmp_path / "copy" / "registry.sqlite", create=False)


def test_the_copy_holds_what_the_register_holds_and_says_when_it_was_confirmed(central, copier, tmp_path):
    ada = add_pupil(central, "A1", "Ada", "Lovelace", consents=PHOTO)
    central.add_template(ada, np.linspace(-0.2, 0.2, 128), "a" * 64)
    central.learn_class("c1", "3O")
    central.learn_roster("c1", [("d1", "Ada", "Lovelace")])
    before = time.time()
    first = copier.turn()
    assert first.rows > 0
    with _copy(tmp_path) as copy:
        assert [p.name for p in copy.people()] == ["Ada Lovelace"]
        assert copy.is_permitted(ada, "class_story") and copy.template_count(ada) == 1
        assert np.allclose(copy.allow_list("class_story")[0].template, np.linspace(-0.2, 0.2, 128))
        assert copy.audience("class_story", class_id="c1", whole_school=False).all_permitted
        mark = freshness(copy.database)
        assert mark.version == first.version and mark.confirmed_at >= before
        check_fresh(copy.database, required=True)
    # Nothing changed: the next turn only confirms.
    assert copier.turn().rows == 0


def test_a_change_reaches_the_copy_by_its_notification(central, copier, tmp_path):
    ada = add_pupil(central, "A1", "Ada", "Lovelace", consents=PHOTO)
    copier.start()
    eventually(lambda: (tmp_path / "copy" / "registry.sqlite").exists() and copier.status.version is not None)
    with _copy(tmp_path) as copy:
        eventually(lambda: copy.is_permitted(ada, "class_story"))
        started = time.monotonic()
        central.set_consent(ada, "class_story", "refused", source="email", informed_by="office")
        eventually(lambda: not copy.is_permitted(ada, "class_story"), timeout_s=5)
        # Well inside the 30 s heartbeat: the notification, not the heartbeat, brought it.
        assert time.monotonic() - started < 5


def test_learning_an_unchanged_class_again_announces_nothing(central, storage):
    central.learn_class("c1", "Year 3 Oak")
    central.learn_roster("c1", [("d1", "Ada", "Lovelace"), ("d2", "Bo", "K")])
    from dojoguard.consent_registry.replica import central_version

    version = central_version(central.database)
    central.learn_class("c1", "Year 3 Oak")
    central.learn_roster("c1", [("d1", "Ada", "Lovelace"), ("d2", "Bo", "K")])
    assert central_version(central.database) == version
    central.learn_roster("c1", [("d1", "Ada", "Lovelace")])
    assert central_version(central.database) > version


def test_an_erased_pupil_leaves_the_copys_file(central, copier, tmp_path):
    pid = add_pupil(central, "Z1", "Zebedee", "Quartermaine", consents=PHOTO, upn="A123456789012")
    central.add_template(pid, np.linspace(-0.2, 0.2, 128), "a" * 64)
    copier.turn()
    central.erase(pid)
    copier.turn()
    with _copy(tmp_path) as copy:
        assert copy.people() == [] and copy.template_count() == 0
    raw = b"".join(p.read_bytes() for p in (tmp_path / "copy").iterdir() if p.is_file())
    assert b"Quartermaine" not in raw and b"Zebedee" not in raw


def test_a_copy_older_than_its_bound_is_refused(central, storage, tmp_path):
    add_pupil(central, "A1", "Ada", "Lovelace", consents=PHOTO)
    replica = Replica(storage, tmp_path / "copy" / "registry.sqlite", max_staleness_s=60)
    try:
        replica.turn()
    finally:
        replica.close()
    with _copy(tmp_path) as copy:
        confirmed = freshness(copy.database).confirmed_at
        check_fresh(copy.database, confirmed + 59, required=True)
        with pytest.raises(RegistryUnavailable, match="last confirmed .* 61 s ago"):
            check_fresh(copy.database, confirmed + 61, required=True)


def test_a_copy_that_lost_its_record_is_refused_when_the_settings_say_it_is_a_copy(central, copier, tmp_path):
    """Deleting the copy's record of its freshness does not make it pass as the school's own register."""
    copier.turn()
    with _copy(tmp_path) as copy:
        with copy.transaction():
            copy.db.execute("DROP TABLE replica_state")
        check_fresh(copy.database)  # a school's own register (storage: sqlite) has no such record
        with pytest.raises(RegistryUnavailable, match="not been copied"):
            check_fresh(copy.database, required=True)


@pytest.mark.parametrize("also_the_version", [False, True], ids=["rows-only", "rows-and-version"])
def test_a_copy_edited_by_hand_is_put_right_at_the_next_turn(central, copier, tmp_path, also_the_version):
    """A permission granted in the copy's file does not survive the next comparison, whether or not the editor
    also touched the version it records: the rows no longer hash to what was copied."""
    bo = add_pupil(central, "B1", "Bo", "K", consents={"class_story": "refused"})
    copier.turn()
    with _copy(tmp_path) as copy:
        with copy.transaction():
            copy.db.execute("UPDATE consents SET state = 'granted' WHERE person_id = ?", (bo,))
            if also_the_version:
                copy.db.execute("UPDATE replica_state SET version = version - 1")
        assert copy.is_permitted(bo, "class_story")
        assert copier.turn().rows > 0
        assert not copy.is_permitted(bo, "class_story")


def test_two_schools_registers_in_one_database_stay_apart(registers_dsn, clock, tmp_path):
    oak, elm = (Storage(dsn=registers_dsn, school=f"{name}-{uuid.uuid4().hex[:6]}") for name in ("oak", "elm"))
    with open_central(oak, clock=clock) as oak_register, open_central(elm, clock=clock) as elm_register:
        add_pupil(oak_register, "A1", "Ada", "Oak", consents=PHOTO)
        add_pupil(elm_register, "A1", "Ada", "Elm", consents=PHOTO)
        assert [p.name for p in oak_register.people()] == ["Ada Oak"]
        oak_copy = Replica(oak, tmp_path / "oak.sqlite", max_staleness_s=60)
        try:
            oak_copy.turn()
            version = oak_copy.status.version
            add_pupil(elm_register, "B1", "Bo", "Elm")
            assert oak_copy.turn().rows == 0 and oak_copy.status.version == version
        finally:
            oak_copy.close()
    with Registry.open(tmp_path / "oak.sqlite", create=False) as copy:
        assert [p.name for p in copy.people()] == ["Ada Oak"]


def test_the_copier_says_once_that_it_cannot_reach_the_server_and_again_when_it_can(clock, tmp_path):
    """The server stopped: one consent.copy_failing, the copy grows stale; started again: consent.copy_resumed."""
    from tests.support.postgres import PostgresServer, require_server, wait_until_up

    server = PostgresServer(require_server()).init().start()
    try:
        storage = Storage(dsn=server.create_database(), school="oak", connect_timeout_s=2)
        with open_central(storage, clock=clock) as register:
            add_pupil(register, "A1", "Ada", "Lovelace", consents=PHOTO)
        recorded = []
        replica = Replica(storage, tmp_path / "copy.sqlite", max_staleness_s=2,
                          record=lambda event, fields: recorded.append((event, fields)))
        replica.start()
        try:
            eventually(lambda: replica.status.version is not None)
            with Registry.open(tmp_path / "copy.sqlite", create=False) as copy:
                check_fresh(copy.database, required=True)
                server.stop()
                eventually(lambda: [e for e, _ in recorded] == ["consent.copy_failing"])
                eventually(lambda: _refused(copy), timeout_s=6)
                server.start()
                wait_until_up(server)
                eventually(lambda: [e for e, _ in recorded] == ["consent.copy_failing", "consent.copy_resumed"],
                           timeout_s=20)
                check_fresh(copy.database, required=True)
        finally:
            replica.stop()
    finally:
        server.destroy()


def _refused(copy: Registry) -> bool:
    try:
        check_fresh(copy.database, required=True)
    except RegistryUnavailable as exc:
        return "last confirmed" in str(exc)
    return False


def test_refresh_copies_one_snapshot(central, storage, tmp_path):
    """The copy is written from one repeatable-read snapshot: the version it records matches the rows it holds."""
    from dojoguard.consent_registry.replica import central_version, open_copy

    add_pupil(central, "A1", "Ada", "Lovelace", consents=PHOTO)
    copy = open_copy(tmp_path / "copy.sqlite")
    server = storage.open("registry")
    try:
        copied = refresh(server, copy.database, school=storage.school, max_staleness_s=60)
        assert copied.version == central_version(central.database)
        assert freshness(copy.database).version == copied.version
    finally:
        server.close()
        copy.close()


def test_what_the_proxy_learns_is_written_to_the_register_on_the_server(storage, central, tmp_path):
    """The proxy's learning (classes, rosters) goes to the school's register there, opened when first needed."""
    from dojoguard import config as config_module
    from dojoguard.consent_registry.opening import CentralLearner

    settings = config_module.load(_settings_file(storage, tmp_path))
    learner = CentralLearner(settings)
    try:
        learner.learn_class("c9", "3O")
        learner.learn_roster("c9", [("d9", "Ada", "Lovelace")])
    finally:
        learner.close()
    assert [c[0] for c in central.classes()] == ["c9"]
    assert [p.dojo_pupil_id for p in central.dojo_pupils()] == ["d9"]


def test_a_learner_whose_server_cannot_be_reached_says_so(tmp_path):
    from dojoguard import config as config_module
    from dojoguard.consent_registry.opening import CentralLearner

    unreachable = Storage(dsn="host=127.0.0.1 port=1 dbname=dg user=dg connect_timeout=1", school="oak")
    learner = CentralLearner(config_module.load(_settings_file(unreachable, tmp_path)))
    with pytest.raises(RegistryUnavailable, match="cannot reach"):
        learner.learn_class("c9", "3O")


def _settings_file(storage: Storage, folder):
    path = folder / "config.yaml"
    path.write_text(f"data_dir: {folder / 'data'}\nstorage: \"{storage.dsn}\"\ntrust:\n  school: {storage.school}\n")
    return path
