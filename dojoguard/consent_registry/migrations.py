"""The registry's schema, as named, ordered migrations recorded in the database.

A migration is never edited once released: a change to the schema is a new
function appended to ``MIGRATIONS``, named by the function. Each runs in its
own transaction and is recorded in ``schema_migrations`` in the same
transaction (see ``dojoguard.storage.migrations``), so a failure leaves the
database at the previous version, never half-changed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dojoguard.storage import Database, Migration, migrations
from dojoguard.storage.migrations import run_script


def create_people_and_consents(db: Database) -> None:
    run_script(db, """
        CREATE TABLE people (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('pupil', 'staff')),
            mis_id TEXT NOT NULL,
            upn TEXT,
            first_name TEXT NOT NULL,
            last_name TEXT NOT NULL,
            year TEXT,
            reg_group TEXT,
            -- The person's own objection to biometric processing: overrides
            -- any parental consent (Protection of Freedoms Act 2012 s.26).
            biometric_objection INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (kind, mis_id)
        );
        CREATE UNIQUE INDEX people_upn ON people (upn) WHERE upn IS NOT NULL;
        CREATE INDEX people_reg_group ON people (reg_group);

        CREATE TABLE consents (
            person_id INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
            purpose TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('granted', 'refused', 'requested', 'unknown')),
            source TEXT NOT NULL,
            informed_by TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (person_id, purpose)
        );

        CREATE TABLE consent_history (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
            purpose TEXT NOT NULL,
            state TEXT NOT NULL,
            source TEXT NOT NULL,
            informed_by TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX consent_history_person ON consent_history (person_id);
    """)


def create_classdojo_links(db: Database) -> None:
    run_script(db, """
        CREATE TABLE dojo_classes (
            class_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            reg_group TEXT,
            link_state TEXT NOT NULL DEFAULT 'none'
                CHECK (link_state IN ('none', 'proposed', 'doubtful', 'confirmed')),
            learned_at TEXT NOT NULL
        );

        CREATE TABLE dojo_pupils (
            dojo_pupil_id TEXT PRIMARY KEY,
            first_name TEXT NOT NULL,
            last_name TEXT NOT NULL,
            person_id INTEGER REFERENCES people (id) ON DELETE SET NULL,
            link_state TEXT NOT NULL DEFAULT 'none'
                CHECK (link_state IN ('none', 'proposed', 'doubtful', 'confirmed')),
            link_score REAL,
            learned_at TEXT NOT NULL
        );
        CREATE INDEX dojo_pupils_person ON dojo_pupils (person_id);

        CREATE TABLE dojo_roster (
            class_id TEXT NOT NULL REFERENCES dojo_classes (class_id) ON DELETE CASCADE,
            dojo_pupil_id TEXT NOT NULL REFERENCES dojo_pupils (dojo_pupil_id) ON DELETE CASCADE,
            PRIMARY KEY (class_id, dojo_pupil_id)
        );
    """)


def create_templates_and_erasures(db: Database) -> None:
    run_script(db, """
        CREATE TABLE templates (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE,
            -- Enrolment and checking must use the same landmark model: distances
            -- shift by about 0.12 between them.
            model TEXT NOT NULL,
            template BLOB NOT NULL,
            photo_sha256 TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (person_id, photo_sha256, model)
        );

        -- That an erasure happened, never what was erased.
        CREATE TABLE erasures (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL,
            erased_at TEXT NOT NULL
        );
    """)


def add_consent_given_at(db: Database) -> None:
    # When the consent was given (the MIS's own response date, or the day the
    # office was told), beside when it was recorded: an import must not undo a
    # later act recorded by hand (see importer.py).
    run_script(db, """
        ALTER TABLE consents ADD COLUMN given_at TEXT;
        ALTER TABLE consent_history ADD COLUMN given_at TEXT;
    """)


MIGRATIONS: tuple[Callable[[Database], None], ...] = (
    create_people_and_consents,
    create_classdojo_links,
    create_templates_and_erasures,
    add_consent_given_at,
)


def migrate(db: Database, now: datetime) -> list[str]:
    """Apply every migration not yet recorded, in order; returns the names applied."""
    return migrations.migrate(db, [Migration(m.__name__, m) for m in MIGRATIONS], what="the registry", now=now)
