"""The registry's migrations: a registry made before the shared runner opens with its people and records kept."""

from __future__ import annotations

import sqlite3

from dojoguard.consent_registry import migrations
from dojoguard.consent_registry.registry import PersonKind, Registry
from dojoguard.storage.migrations import recorded

# The record table as the release before the shared runner created it (the runner kept its layout).
# The steps that release had; later ones are applied by the shared runner.
LEGACY_STEPS = 3
LEGACY_RECORD_TABLE = ("CREATE TABLE IF NOT EXISTS schema_migrations ("
                       "seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)")


def legacy_registry(path, applied: int) -> None:
    """A registry as the old code left it after ``applied`` migrations (released steps are never edited)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(LEGACY_RECORD_TABLE)
    for seq, step in enumerate(migrations.MIGRATIONS[:applied], start=1):
        db.execute("BEGIN")
        step(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (seq, step.__name__, f"2025-09-0{seq}T09:00:00"))
        db.execute("COMMIT")
    db.execute("INSERT INTO people (kind, mis_id, first_name, last_name, created_at, updated_at) "
               "VALUES ('pupil', 'A1', 'Ada', 'Lovelace', 'then', 'then')")
    db.execute("INSERT INTO consents (person_id, purpose, state, source, informed_by, recorded_at) "
               "VALUES (1, 'class_story', 'granted', 'paper form', 'office', 'then')")
    db.close()


def test_a_registry_from_before_the_shared_runner_runs_only_the_missing_step(tmp_path, clock):
    """Two recorded steps stay recorded with their times, the third is applied once, and nobody is lost."""
    path = tmp_path / "registry.sqlite"
    legacy_registry(path, applied=2)
    with Registry.open(path, clock=clock) as registry:
        assert registry.applied_migrations() == [m.__name__ for m in migrations.MIGRATIONS]
        times = registry.db.execute("SELECT applied_at FROM schema_migrations ORDER BY seq").fetchall()
        assert times[:2] == [("2025-09-01T09:00:00",), ("2025-09-02T09:00:00",)]
        assert times[2] == (clock.now().isoformat(),)
        (pupil,) = registry.people(kind=PersonKind.PUPIL)
        assert pupil.name == "Ada Lovelace" and registry.is_permitted(pupil.id, "class_story")
        assert registry.db.execute("PRAGMA user_version").fetchone()[0] == len(migrations.MIGRATIONS)


def test_an_up_to_date_registry_from_before_the_shared_runner_is_left_as_it_was(tmp_path, clock):
    """A registry with every step of its release recorded runs none of them again, only the newer ones."""
    path = tmp_path / "registry.sqlite"
    legacy_registry(path, applied=LEGACY_STEPS)
    Registry.open(path, clock=clock).close()
    db = sqlite3.connect(path)
    try:
        times = db.execute("SELECT applied_at FROM schema_migrations ORDER BY seq").fetchall()
        assert times[:LEGACY_STEPS] == [(f"2025-09-0{seq}T09:00:00",) for seq in range(1, LEGACY_STEPS + 1)]
        assert times[LEGACY_STEPS:] == [(clock.now().isoformat(),)] * (len(migrations.MIGRATIONS) - LEGACY_STEPS)
        assert db.execute("SELECT mis_id FROM people").fetchall() == [("A1",)]
    finally:
        db.close()


def test_the_recorded_names_are_the_registry_function_names(tmp_path, clock):
    """The runner records each registry step by its function's name, as the old registry did."""
    with Registry.open(tmp_path / "registry.sqlite", clock=clock) as registry:
        assert recorded(registry.database) == ["create_people_and_consents", "create_classdojo_links",
                                               "create_templates_and_erasures", "add_consent_given_at"]


def test_a_registry_of_the_previous_release_keeps_its_consents_and_gains_given_dates(tmp_path, clock):
    """Opening a registry made before response dates were kept adds the column; its consents stay as they were."""
    path = tmp_path / "registry.sqlite"
    legacy_registry(path, applied=LEGACY_STEPS)
    with Registry.open(path, clock=clock) as registry:
        (pupil,) = registry.people()
        held = registry.consents(pupil.id)["class_story"]
        assert (held.state, held.source, held.given_at, held.by_hand) == ("granted", "paper form", None, True)
