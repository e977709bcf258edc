"""The consent registry: schema, consents, objections, templates, links, audiences and erasure."""

from __future__ import annotations

import sqlite3
import stat

import numpy as np
import pytest

from dojoguard.consent_registry import migrations
from dojoguard.consent_registry.registry import (BIOMETRIC, LinkState, PersonKind, Registry, RegistryError,
                                                 RegistryUnavailable, State)
from dojoguard.storage.migrations import run_script
from tests.consent_registry.conftest import add_pupil

ALL_PHOTO = {"class_story": "granted", "school_story": "granted", "portfolio": "granted"}
BIO = {"class_story": "granted", BIOMETRIC: "granted"}


@pytest.fixture
def registry(registry_both):
    """Every test here runs on a SQLite file and on a school's schema on PostgreSQL."""
    return registry_both


def test_file_is_private_and_migrations_recorded(tmp_path, clock):
    """A new registry file is owner-only and records every migration once, in order."""
    path = tmp_path / "reg" / "registry.sqlite"
    Registry.open(path, clock=clock).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with Registry.open(path, clock=clock) as again:
        assert again.applied_migrations() == [m.__name__ for m in migrations.MIGRATIONS]
        add_pupil(again, "1", "Ada", "Lovelace")
        # The write-ahead log and shared-memory files hold the same data: owner-only too.
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in path.parent.iterdir()} == {
            "registry.sqlite": 0o600, "registry.sqlite-wal": 0o600, "registry.sqlite-shm": 0o600}


def test_migration_failure_rolls_back(tmp_path, clock, monkeypatch):
    """A failing migration leaves neither its tables nor its record behind."""
    def broken(db):
        run_script(db, "CREATE TABLE half_done (x INTEGER);\nCREATE TABLE nonsense (;")
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + (broken,))
    with pytest.raises(RegistryUnavailable):
        Registry.open(tmp_path / "r.sqlite", clock=clock)
    db = sqlite3.connect(tmp_path / "r.sqlite")
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    recorded = {n for (n,) in db.execute("SELECT name FROM schema_migrations")}
    assert "half_done" not in names and "broken" not in recorded and "people" in names


def test_newer_registry_refused(tmp_path, clock):
    """A registry written by a newer version (unknown migration) is refused, not guessed at."""
    path = tmp_path / "r.sqlite"
    Registry.open(path, clock=clock).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations (seq, name, applied_at) VALUES (99, 'from_the_future', 'x')")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        Registry.open(path, clock=clock)


def test_anything_but_granted_is_not_permitted(registry):
    """Refused, requested, unknown and never-recorded consents all mean not permitted."""
    pid = add_pupil(registry, "1", "Ada", "Lovelace", consents={"class_story": "requested",
                                                                 "portfolio": "refused", "school_story": "granted"})
    assert not registry.is_permitted(pid, "class_story")
    assert not registry.is_permitted(pid, "portfolio")
    assert registry.is_permitted(pid, "school_story")
    assert registry.consents(pid)[BIOMETRIC].state is State.UNKNOWN
    with pytest.raises(RegistryError, match="unknown consent purpose"):
        registry.set_consent(pid, "website", "granted", source="form", informed_by="office")


def test_history_kept_and_no_op_not_recorded(registry):
    """Each change is kept in the history; recording the same state again changes nothing."""
    pid = add_pupil(registry, "1", "Ada", "Lovelace")
    assert registry.set_consent(pid, "class_story", "granted", source="form", informed_by="office")
    assert not registry.set_consent(pid, "class_story", "granted", source="form", informed_by="office")
    assert registry.set_consent(pid, "class_story", "refused", source="email", informed_by="head")
    assert [(h.purpose, h.state, h.source) for h in registry.history(pid)] == [
        ("class_story", State.GRANTED, "form"), ("class_story", State.REFUSED, "email")]


def test_pupil_objection_overrides_parental_consent(registry):
    """A pupil's own refusal of biometrics wins over the parents' consent, and lifting it restores it."""
    pid = add_pupil(registry, "1", "Ada", "Lovelace", consents=BIO)
    assert registry.has_biometric_consent(pid)
    registry.set_consent(pid, BIOMETRIC, "refused", source="pupil", informed_by="class teacher")
    assert registry.consents(pid)[BIOMETRIC].state is State.GRANTED  # the parents' record stands
    assert registry.person(pid).biometric_objection
    assert not registry.has_biometric_consent(pid)
    registry.set_consent(pid, BIOMETRIC, "granted", source="pupil", informed_by="class teacher")
    assert registry.has_biometric_consent(pid)


def test_templates_only_with_photo_permission_and_biometric_consent(registry):
    """A template is refused without biometric consent, without photo permission, or with an objection."""
    vector = np.linspace(-0.2, 0.2, 128)
    no_bio = add_pupil(registry, "1", "Ada", "Lovelace", consents={"class_story": "granted"})
    no_photo = add_pupil(registry, "2", "Alan", "Turing", consents={BIOMETRIC: "granted"})
    ok = add_pupil(registry, "3", "Grace", "Hopper", consents=BIO)
    for pid in (no_bio, no_photo):
        with pytest.raises(RegistryError, match="no template"):
            registry.add_template(pid, vector, "a" * 64)
    assert registry.add_template(ok, vector, "b" * 64)
    assert not registry.add_template(ok, vector, "b" * 64)  # same photo again: kept once
    assert registry.template_count() == 1
    registry.set_consent(ok, BIOMETRIC, "refused", source="pupil", informed_by="teacher")
    with pytest.raises(RegistryError):
        registry.add_template(ok, vector, "c" * 64)


def test_withdrawing_biometric_consent_deletes_templates_at_once(registry):
    """Parents withdrawing biometric consent (or the pupil objecting) removes every template immediately."""
    vector = np.linspace(-0.2, 0.2, 128)
    a = add_pupil(registry, "1", "Ada", "Lovelace", consents=BIO)
    b = add_pupil(registry, "2", "Alan", "Turing", consents=BIO)
    registry.add_template(a, vector, "a" * 64)
    registry.add_template(b, vector, "b" * 64)
    registry.set_consent(a, BIOMETRIC, "refused", source="email", informed_by="office")
    registry.set_consent(b, BIOMETRIC, "refused", source="pupil", informed_by="teacher")
    assert registry.template_count(a) == 0 and registry.template_count(b) == 0


def test_allow_list_needs_channel_permission_biometrics_and_no_objection(registry):
    """The allow-list holds only people permitted for the channel with biometric consent and no objection."""
    vector = np.linspace(-0.2, 0.2, 128)
    cs = add_pupil(registry, "1", "Ada", "Lovelace", consents=BIO)
    ss = add_pupil(registry, "2", "Alan", "Turing", consents={"school_story": "granted", BIOMETRIC: "granted"})
    staff = registry.add_person(PersonKind.STAFF, "T1", "Jo", "Teacher")
    registry.set_consent(staff, "class_story", "granted", source="staff form", informed_by="hr")
    registry.set_consent(staff, BIOMETRIC, "granted", source="staff form", informed_by="hr")
    for pid in (cs, ss, staff):
        registry.add_template(pid, vector, f"{pid:064d}")
    assert sorted(t.person_id for t in registry.allow_list("class_story")) == sorted([cs, staff])
    assert [t.person_id for t in registry.allow_list("school_story")] == [ss]
    assert np.allclose(registry.allow_list("school_story")[0].template, vector)


def test_roster_links_proposed_doubtful_and_confirmed(registry):
    """Roster names propose clear links, list doubtful ones, and a person's correction sticks."""
    alfred = add_pupil(registry, "1", "Alfred", "Smith")
    olivia = add_pupil(registry, "2", "Olivia", "Jones")
    add_pupil(registry, "3", "Amelia", "Brown")
    add_pupil(registry, "4", "Amelia", "Brennan")
    registry.learn_class("c1", "3O")
    registry.learn_roster("c1", [("d1", "Alfie", "S."), ("d2", "Olivia", "Jones"), ("d3", "Amelia", "B."),
                                 ("d4", "Zed", "Quux")])
    links = {p.dojo_pupil_id: p for p in registry.dojo_pupils()}
    assert (links["d1"].person_id, links["d1"].link_state) == (alfred, LinkState.PROPOSED)
    assert (links["d2"].person_id, links["d2"].link_state) == (olivia, LinkState.PROPOSED)
    assert links["d3"].link_state is LinkState.DOUBTFUL  # Amelia Brown or Amelia Brennan: a person decides
    assert links["d4"].link_state is LinkState.NONE and links["d4"].person_id is None
    registry.set_link("d4", "2")
    registry.confirm_link("d3")
    registry.learn_roster("c1", [("d4", "Zed", "Quux"), ("d3", "Amelia", "B.")])
    links = {p.dojo_pupil_id: p for p in registry.dojo_pupils()}
    assert (links["d4"].person_id, links["d4"].link_state) == (olivia, LinkState.CONFIRMED)
    assert links["d3"].link_state is LinkState.CONFIRMED
    assert registry.classes()[0][2:] == ("3O", LinkState.PROPOSED)


def test_audience_unknown_is_never_everyone_permitted(registry):
    """An unseen class, an unlinked roster pupil, or no class at all is never "everyone permitted"."""
    a = add_pupil(registry, "1", "Ada", "Lovelace", group="X", consents=ALL_PHOTO)
    assert not registry.audience("class_story", class_id="never-seen", whole_school=False).all_permitted
    assert not registry.audience("class_story", class_id=None, whole_school=False).is_known
    registry.learn_roster("c1", [("d1", "Ada", "Lovelace"), ("d2", "Nobody", "Known")])
    audience = registry.audience("class_story", class_id="c1", whole_school=False)
    assert audience.person_ids == (a,) and not audience.is_known and not audience.all_permitted
    registry.set_link("d2", "1")
    assert registry.audience("class_story", class_id="c1", whole_school=False).all_permitted


def test_audience_class_and_school(registry):
    """Class Story needs every linked pupil of the class permitted; School Story every pupil of the school."""
    a = add_pupil(registry, "1", "Ada", "Lovelace", group="3O", consents=ALL_PHOTO)
    b = add_pupil(registry, "2", "Alan", "Turing", group="4T", consents={"class_story": "granted"})
    registry.learn_class("c3", "3O")
    registry.learn_roster("c3", [("d1", "Ada", "Lovelace")])
    assert registry.audience("class_story", class_id="c3", whole_school=False).all_permitted
    school = registry.audience("school_story", class_id=None, whole_school=True)
    assert school.person_ids == (a, b) and school.is_known and not school.all_permitted
    registry.set_consent(b, "school_story", "granted", source="form", informed_by="office")
    assert registry.audience("school_story", class_id=None, whole_school=True).all_permitted


def test_erase_removes_everything_and_records_only_that_it_happened(registry, tmp_path, request):
    """Erasure deletes the person, consents, history, links and templates; only id and time remain."""
    pid = add_pupil(registry, "1", "Zebedee", "Quartermaine", consents=BIO, upn="A123456789012")
    registry.add_template(pid, np.linspace(-0.2, 0.2, 128), "a" * 64)
    registry.learn_roster("c1", [("d1", "Zebedee", "Quartermaine")])
    registry.erase(pid)
    with pytest.raises(RegistryError):
        registry.find("A123456789012")
    assert registry.template_count() == 0 and registry.dojo_pupils() == []
    assert registry.history(pid) == []
    assert registry.erasures() == [(pid, "2026-11-30T10:00:00+00:00")]
    if registry.database.dialect == "postgresql":
        # The server's table files: VACUUM FULL wrote the registry's tables anew without the erased rows,
        # and a checkpoint removes the old files. (Its write-ahead log is the trust's to expire: docs/dpo.md.)
        registry.database.execute("CHECKPOINT")
        folder = request.getfixturevalue("postgres").data / "base"
    else:
        folder = tmp_path / "data"
    registry.close()
    files = [p for p in folder.rglob("*") if p.is_file()]
    raw = b"".join(p.read_bytes() for p in files)
    assert b"Quartermaine" not in raw and b"Zebedee" not in raw


def test_find_by_registry_id_mis_id_or_upn(registry):
    """A person is found by registry id, MIS id or UPN; an unknown reference is an error."""
    pid = add_pupil(registry, "M77", "Ada", "Lovelace", upn="B123456789012")
    assert registry.find(str(pid)).id == registry.find("M77").id == registry.find("B123456789012").id == pid
    with pytest.raises(RegistryError, match="no person"):
        registry.find("nobody")
