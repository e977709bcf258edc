"""The consent registry: pupils, staff, consent per purpose, ClassDojo links and face templates.

One SQLite file, readable by the service user alone (it holds children's
names and, for those with written biometric consent, face templates), or,
for a trust (``storage: postgresql://...``), one school's schema on the
trust's PostgreSQL server, of which each proxy reads a local copy
(``replica.py``). Every statement here runs on both.
Anything but an explicit "granted" means not permitted, and a person's own
objection to biometric processing overrides any parental consent.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dojoguard.clock import Clock, SystemClock
from dojoguard.consent_registry import migrations, names
from dojoguard.storage import Database, SQLiteDatabase
from dojoguard.storage import migrations as schema_migrations

BIOMETRIC = "biometric_matching"
DEFAULT_PURPOSES = ("class_story", "school_story", "portfolio", BIOMETRIC)
# Consent recorded with this source is the person's own word: for biometrics
# it is an objection (or its withdrawal) that overrides the parents.
OWN_WORD = "pupil"
# The source of a consent recorded by an import ends with this ("sims import").
IMPORT_SUFFIX = " import"
TEMPLATE_MODEL = "dlib_face_recognition_resnet_model_v1/small"


class State(enum.StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    REQUESTED = "requested"
    UNKNOWN = "unknown"


class PersonKind(enum.StrEnum):
    PUPIL = "pupil"
    STAFF = "staff"


class LinkState(enum.StrEnum):
    NONE = "none"
    PROPOSED = "proposed"
    DOUBTFUL = "doubtful"
    CONFIRMED = "confirmed"


class RegistryError(Exception):
    """A request the registry cannot carry out (unknown pupil, unknown purpose, refused enrolment)."""


class RegistryUnavailable(RegistryError):
    """The registry cannot be opened or read, or its copy is too old to trust: every check that needs it fails
    closed."""


@dataclass(frozen=True)
class Person:
    id: int
    kind: PersonKind
    mis_id: str
    upn: str | None
    first_name: str
    last_name: str
    year: str | None
    reg_group: str | None
    biometric_objection: bool

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class Consent:
    purpose: str
    state: State
    source: str
    informed_by: str
    recorded_at: str
    # When it was given, where known (an MIS response date); None: not known.
    given_at: str | None = None

    @property
    def by_hand(self) -> bool:
        """Recorded by a person at the school (a paper form, an email, the pupil's word), not by an MIS import."""
        return bool(self.source) and not is_import(self.source)

    @property
    def effective_at(self) -> str:
        """When the decision was made, as far as the registry knows: given if known, else recorded."""
        return self.given_at or self.recorded_at


def check_hand_source(source: str) -> None:
    """Refuse a hand entry whose source names an import: it would then count as an import, and the next
    import would overwrite it without a conflict."""
    if is_import(source.strip()):
        raise RegistryError(f"the source {source!r} is kept for MIS imports; say where this consent came from "
                            '(e.g. "paper form", "email", "parent")')


def is_import(source: str) -> bool:
    """Whether a consent source names an MIS import ("sims import", "arbor import", ...)."""
    return source.endswith(IMPORT_SUFFIX)


@dataclass(frozen=True)
class DojoPupil:
    dojo_pupil_id: str
    first_name: str
    last_name: str
    person_id: int | None
    link_state: LinkState
    link_score: float | None
    class_ids: tuple[str, ...]


@dataclass(frozen=True)
class Audience:
    """Who a post reaches, and whether every one of them is permitted for its purpose.

    ``is_known`` is False when the registry cannot say who is in the audience
    (class never seen, roster pupils not linked): that is never "everyone permitted".
    """

    purpose: str
    person_ids: tuple[int, ...]
    is_known: bool
    all_permitted: bool


@dataclass(frozen=True)
class AllowedTemplate:
    person_id: int
    template: np.ndarray


class Registry:
    """Open with ``Registry.open(path)`` (a SQLite file) or ``Registry.on(database)``; every write is one
    transaction."""

    def __init__(self, database: Database, path: Path, clock: Clock, purposes: tuple[str, ...]):
        self.database = database
        # What the registry's queries (and the importer's) run on: the database itself, either backend.
        self.db = database
        self.path = path
        self.clock = clock
        self.purposes = purposes

    @classmethod
    def open(cls, path: str | Path, *, clock: Clock | None = None, purposes: Iterable[str] | None = None,
             create: bool = True) -> "Registry":
        """Open (creating with owner-only permissions, and migrating) the registry at ``path``."""
        path = Path(path)
        clock = clock or SystemClock()
        try:
            if not path.exists() and not create:
                raise RegistryUnavailable(f"no consent registry at {path}")
            # Erased rows are overwritten in the file, not just unlinked.
            db = SQLiteDatabase.open(path, busy_timeout_s=10, pragmas=("foreign_keys = ON", "secure_delete = ON"))
        except sqlite3.Error as exc:
            raise RegistryUnavailable(f"cannot open the consent registry {path}: {exc}") from exc
        return cls.on(db, clock=clock, purposes=purposes)

    @classmethod
    def on(cls, db: Database, *, clock: Clock | None = None, purposes: Iterable[str] | None = None) -> "Registry":
        """The registry in an open database (migrated first); it is closed with the registry, or on failure."""
        clock = clock or SystemClock()
        try:
            migrations.migrate(db, clock.now())
        except db.errors as exc:
            db.close()
            raise RegistryUnavailable(f"cannot open the consent registry {db.path}: {exc}") from exc
        except BaseException:
            db.close()
            raise
        return cls(db, Path(db.path), clock, tuple(purposes or DEFAULT_PURPOSES))

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction; other threads sharing the connection wait until it ends."""
        with self.database.transaction():
            yield self.db

    def _now(self) -> str:
        return self.clock.now().isoformat()

    def applied_migrations(self) -> list[str]:
        return schema_migrations.recorded(self.database)

    # -- people -------------------------------------------------------------

    def upsert_person(self, kind: PersonKind, mis_id: str, first_name: str, last_name: str, *,
                      upn: str | None = None, year: str | None = None, reg_group: str | None = None) -> tuple[int, bool]:
        """Add or update one person by (kind, MIS id); returns (registry id, changed). Caller holds the transaction."""
        row = self.db.execute("SELECT id, upn, first_name, last_name, year, reg_group FROM people "
                              "WHERE kind = ? AND mis_id = ?", (str(kind), mis_id)).fetchone()
        if row is None:
            (new_id,) = self.db.execute(
                "INSERT INTO people (kind, mis_id, upn, first_name, last_name, year, reg_group, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (str(kind), mis_id, upn, first_name, last_name, year, reg_group, self._now(), self._now())).fetchone()
            return new_id, True
        if tuple(row[1:]) == (upn, first_name, last_name, year, reg_group):
            return row[0], False
        self.db.execute("UPDATE people SET upn = ?, first_name = ?, last_name = ?, year = ?, reg_group = ?, "
                        "updated_at = ? WHERE id = ?",
                        (upn, first_name, last_name, year, reg_group, self._now(), row[0]))
        return row[0], True

    def add_person(self, kind: PersonKind, mis_id: str, first_name: str, last_name: str, **fields) -> int:
        with self.transaction():
            return self.upsert_person(kind, mis_id, first_name, last_name, **fields)[0]

    def person(self, person_id: int) -> Person:
        row = self.db.execute("SELECT id, kind, mis_id, upn, first_name, last_name, year, reg_group, "
                              "biometric_objection FROM people WHERE id = ?", (person_id,)).fetchone()
        if row is None:
            raise RegistryError(f"no person with registry id {person_id}")
        return _person(row)

    def find(self, ref: str, *, kind: PersonKind | None = None) -> Person:
        """A person by registry id, MIS id or UPN; an ambiguous or unknown reference is an error."""
        ref = ref.strip()
        rows = self.db.execute(
            "SELECT id, kind, mis_id, upn, first_name, last_name, year, reg_group, biometric_objection FROM people "
            "WHERE CAST(id AS TEXT) = ? OR mis_id = ? OR upn = ?", (ref, ref, ref)).fetchall()
        people = [_person(r) for r in rows if kind is None or r[1] == str(kind)]
        if not people:
            raise RegistryError(f"no {kind or 'person'} with registry id, MIS id or UPN {ref!r}")
        if len(people) > 1:
            raise RegistryError(f"{ref!r} names {len(people)} people; use the registry id "
                                f"({', '.join(str(p.id) for p in people)})")
        return people[0]

    def people(self, kind: PersonKind | None = None) -> list[Person]:
        sql = ("SELECT id, kind, mis_id, upn, first_name, last_name, year, reg_group, biometric_objection "
               "FROM people")
        args: tuple = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (str(kind),)
        return [_person(r) for r in self.db.execute(sql + " ORDER BY id", args)]

    # -- consent ------------------------------------------------------------

    def check_purpose(self, purpose: str) -> None:
        if purpose not in self.purposes:
            raise RegistryError(f"unknown consent purpose {purpose!r}; known: {', '.join(self.purposes)}")

    def record_consent(self, person_id: int, purpose: str, state: State | str, *, source: str,
                       informed_by: str, given_at: str | None = None, restate: bool = False) -> bool:
        """Record one consent (caller holds the transaction); returns whether anything changed.

        ``given_at``: when it was given (ISO 8601), where known, e.g. the MIS's response date.
        ``restate``: record it even if the state is the same, when it comes from
        a different source (a parent confirming by hand what an import said).
        """
        self.check_purpose(purpose)
        state = State(state)
        if not source.strip() or not informed_by.strip():
            raise RegistryError("a consent needs its source and who informed it")
        now = self._now()
        changed = False
        if purpose == BIOMETRIC and source == OWN_WORD:
            # The person's own word sets or lifts the objection; the parents'
            # consent record is kept as it is, and the objection wins over it.
            objection = 0 if state is State.GRANTED else 1
            cur = self.db.execute("UPDATE people SET biometric_objection = ? WHERE id = ? "
                                  "AND biometric_objection != ?", (objection, person_id, objection))
            changed = cur.rowcount > 0
        else:
            row = self.db.execute("SELECT state, source FROM consents WHERE person_id = ? AND purpose = ?",
                                  (person_id, purpose)).fetchone()
            if row is None or row[0] != str(state) or (restate and row[1] != source):
                self.db.execute(
                    "INSERT INTO consents (person_id, purpose, state, source, informed_by, recorded_at, given_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (person_id, purpose) DO UPDATE SET "
                    "state = excluded.state, source = excluded.source, informed_by = excluded.informed_by, "
                    "recorded_at = excluded.recorded_at, given_at = excluded.given_at",
                    (person_id, purpose, str(state), source, informed_by, now, given_at))
                changed = True
        if changed:
            self.db.execute("INSERT INTO consent_history (person_id, purpose, state, source, informed_by, "
                            "recorded_at, given_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (person_id, purpose, str(state), source, informed_by, now, given_at))
            if purpose == BIOMETRIC and not self._may_hold_template(person_id):
                # Withdrawal deletes templates at once, in the same transaction.
                self.db.execute("DELETE FROM templates WHERE person_id = ?", (person_id,))
        return changed

    def set_consent(self, person_id: int, purpose: str, state: State | str, *, source: str,
                    informed_by: str, given_at: str | None = None) -> bool:
        """Record one consent by hand (a form, an email, the pupil's word), in its own transaction."""
        check_hand_source(source)
        with self.transaction():
            self.person(person_id)
            return self.record_consent(person_id, purpose, state, source=source, informed_by=informed_by,
                                       given_at=given_at)

    def consents(self, person_id: int) -> dict[str, Consent]:
        """Every configured purpose for one person; never-recorded ones are "unknown"."""
        found = {row[0]: Consent(row[0], State(row[1]), *row[2:]) for row in self.db.execute(
            "SELECT purpose, state, source, informed_by, recorded_at, given_at FROM consents WHERE person_id = ?",
            (person_id,))}
        return {p: found.get(p, Consent(p, State.UNKNOWN, "", "", "")) for p in self.purposes} | found

    def history(self, person_id: int) -> list[Consent]:
        return [Consent(r[0], State(r[1]), *r[2:]) for r in self.db.execute(
            "SELECT purpose, state, source, informed_by, recorded_at, given_at FROM consent_history "
            "WHERE person_id = ? ORDER BY id", (person_id,))]

    def objection(self, person_id: int) -> Consent | None:
        """The person's own standing objection to biometric processing (with when it was recorded), if any."""
        if not self.person(person_id).biometric_objection:
            return None
        said = [h for h in self.history(person_id) if h.purpose == BIOMETRIC and h.source == OWN_WORD]
        # An objection set before history kept the person's word still stands; its time is then unknown.
        return said[-1] if said else Consent(BIOMETRIC, State.REFUSED, OWN_WORD, "", "")

    def is_permitted(self, person_id: int, purpose: str) -> bool:
        row = self.db.execute("SELECT state FROM consents WHERE person_id = ? AND purpose = ?",
                              (person_id, purpose)).fetchone()
        return row is not None and row[0] == State.GRANTED

    def has_biometric_consent(self, person_id: int) -> bool:
        """Written biometric consent and no objection from the person themself."""
        return self._may_hold_template(person_id)

    def _may_hold_template(self, person_id: int) -> bool:
        row = self.db.execute(
            "SELECT p.biometric_objection, c.state FROM people p LEFT JOIN consents c "
            "ON c.person_id = p.id AND c.purpose = ? WHERE p.id = ?", (BIOMETRIC, person_id)).fetchone()
        return row is not None and row[0] == 0 and row[1] == State.GRANTED

    def has_photo_permission(self, person_id: int) -> bool:
        """Granted for at least one photo purpose (anything but biometric matching)."""
        return any(self.is_permitted(person_id, p) for p in self.purposes if p != BIOMETRIC)

    # -- face templates -----------------------------------------------------

    def add_template(self, person_id: int, template: np.ndarray, photo_sha256: str) -> bool:
        """Store one template; refused unless the person has photo permission and biometric consent."""
        vector = np.asarray(template, dtype=np.float64)
        if vector.shape != (128,) or not np.all(np.isfinite(vector)):
            raise RegistryError("a face template is 128 finite numbers")
        with self.transaction():
            if not (self._may_hold_template(person_id) and self.has_photo_permission(person_id)):
                raise RegistryError(f"registry id {person_id} has no photo permission with biometric consent "
                                    "and no objection: no template may be kept")
            cur = self.db.execute("INSERT INTO templates (person_id, model, template, photo_sha256, "
                                  "created_at) VALUES (?, ?, ?, ?, ?) "
                                  "ON CONFLICT (person_id, photo_sha256, model) DO NOTHING",
                                  (person_id, TEMPLATE_MODEL, vector.tobytes(), photo_sha256, self._now()))
            return cur.rowcount > 0

    def template_count(self, person_id: int | None = None) -> int:
        if person_id is None:
            return self.db.execute("SELECT COUNT(*) FROM templates").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM templates WHERE person_id = ?", (person_id,)).fetchone()[0]

    def delete_templates(self, person_id: int) -> int:
        with self.transaction():
            return self.db.execute("DELETE FROM templates WHERE person_id = ?", (person_id,)).rowcount

    def allow_list(self, purpose: str) -> list[AllowedTemplate]:
        """Templates of everyone permitted for ``purpose`` with biometric consent and no objection."""
        rows = self.db.execute(
            "SELECT t.person_id, t.template FROM templates t JOIN people p ON p.id = t.person_id "
            "JOIN consents photo ON photo.person_id = p.id AND photo.purpose = ? AND photo.state = 'granted' "
            "JOIN consents bio ON bio.person_id = p.id AND bio.purpose = ? AND bio.state = 'granted' "
            "WHERE p.biometric_objection = 0 AND t.model = ?", (purpose, BIOMETRIC, TEMPLATE_MODEL))
        return [AllowedTemplate(pid, np.frombuffer(blob, dtype=np.float64).copy()) for pid, blob in rows]

    # -- ClassDojo links ----------------------------------------------------

    def learn_class(self, class_id: str, name: str) -> None:
        """Record a ClassDojo class seen by the proxy, proposing a registration-group link by name."""
        with self.transaction():
            self.db.execute("INSERT INTO dojo_classes (class_id, name, learned_at) VALUES (?, ?, ?) "
                            "ON CONFLICT (class_id) DO UPDATE SET name = excluded.name",
                            (class_id, name, self._now()))
            row = self.db.execute("SELECT link_state FROM dojo_classes WHERE class_id = ?", (class_id,)).fetchone()
            if row[0] == LinkState.CONFIRMED:
                return
            groups = [g for (g,) in self.db.execute(
                "SELECT DISTINCT reg_group FROM people WHERE kind = 'pupil' AND reg_group IS NOT NULL")]
            wanted = names.normalise(name)
            exact = [g for g in groups if names.normalise(g) == wanted]
            if len(exact) == 1:
                self.db.execute("UPDATE dojo_classes SET reg_group = ?, link_state = 'proposed' WHERE class_id = ?",
                                (exact[0], class_id))
            else:
                # Names like "Year 3 Oak" for group "3O" need a person to confirm.
                self.db.execute("UPDATE dojo_classes SET reg_group = NULL, link_state = 'none' WHERE class_id = ?",
                                (class_id,))

    def learn_roster(self, class_id: str, pupils: list[tuple[str, str, str]]) -> None:
        """Record a class roster (dojo pupil id, first name, last name) and propose links by name."""
        now = self._now()
        with self.transaction():
            self.db.execute("INSERT INTO dojo_classes (class_id, name, learned_at) VALUES (?, ?, ?) "
                            "ON CONFLICT (class_id) DO NOTHING", (class_id, class_id, now))
            # Only pupils no longer in the class leave it: rewriting an unchanged roster would announce a
            # change to every proxy copying a trust's register (replica.py) each time a teacher opens the class.
            listed = {dojo_id for dojo_id, _, _ in pupils}
            for (gone,) in self.db.execute("SELECT dojo_pupil_id FROM dojo_roster WHERE class_id = ?",
                                           (class_id,)).fetchall():
                if gone not in listed:
                    self.db.execute("DELETE FROM dojo_roster WHERE class_id = ? AND dojo_pupil_id = ?",
                                    (class_id, gone))
            candidates = self._link_candidates(class_id)
            for dojo_id, first, last in pupils:
                row = self.db.execute("SELECT first_name, last_name, link_state FROM dojo_pupils "
                                      "WHERE dojo_pupil_id = ?", (dojo_id,)).fetchone()
                if row is None:
                    self.db.execute("INSERT INTO dojo_pupils (dojo_pupil_id, first_name, last_name, learned_at) "
                                    "VALUES (?, ?, ?, ?)", (dojo_id, first or "", last or "", now))
                elif (row[0], row[1]) != (first or "", last or ""):
                    self.db.execute("UPDATE dojo_pupils SET first_name = ?, last_name = ? WHERE dojo_pupil_id = ?",
                                    (first or "", last or "", dojo_id))
                self.db.execute("INSERT INTO dojo_roster (class_id, dojo_pupil_id) VALUES (?, ?) "
                                "ON CONFLICT (class_id, dojo_pupil_id) DO NOTHING", (class_id, dojo_id))
                if row is None or row[2] != LinkState.CONFIRMED:
                    proposal = names.propose(first or "", last or "", candidates)
                    state = LinkState.NONE if proposal.person_id is None else \
                        LinkState.DOUBTFUL if proposal.is_doubtful else LinkState.PROPOSED
                    self.db.execute("UPDATE dojo_pupils SET person_id = ?, link_state = ?, link_score = ? "
                                    "WHERE dojo_pupil_id = ?", (proposal.person_id, str(state), proposal.score, dojo_id))

    def _link_candidates(self, class_id: str) -> list[tuple[int, str, str]]:
        # Prefer the linked registration group; fall back to the whole school.
        row = self.db.execute("SELECT reg_group FROM dojo_classes WHERE class_id = ? AND link_state IN "
                              "('proposed', 'confirmed')", (class_id,)).fetchone()
        sql = "SELECT id, first_name, last_name FROM people WHERE kind = 'pupil'"
        if row and row[0]:
            group = self.db.execute(sql + " AND reg_group = ?", (row[0],)).fetchall()
            if group:
                return group
        return self.db.execute(sql).fetchall()

    def dojo_pupils(self, *, states: Iterable[LinkState] | None = None) -> list[DojoPupil]:
        rows = self.db.execute("SELECT dojo_pupil_id, first_name, last_name, person_id, link_state, link_score "
                               "FROM dojo_pupils ORDER BY last_name, first_name, dojo_pupil_id").fetchall()
        wanted = {str(s) for s in states} if states is not None else None
        result = []
        for r in rows:
            if wanted is not None and r[4] not in wanted:
                continue
            classes = tuple(c for (c,) in self.db.execute(
                "SELECT class_id FROM dojo_roster WHERE dojo_pupil_id = ? ORDER BY class_id", (r[0],)))
            result.append(DojoPupil(r[0], r[1], r[2], r[3], LinkState(r[4]), r[5], classes))
        return result

    def confirm_link(self, dojo_pupil_id: str) -> DojoPupil:
        with self.transaction():
            cur = self.db.execute("UPDATE dojo_pupils SET link_state = 'confirmed' WHERE dojo_pupil_id = ? "
                                  "AND person_id IS NOT NULL", (dojo_pupil_id,))
            if cur.rowcount == 0:
                raise RegistryError(f"ClassDojo pupil {dojo_pupil_id!r} is unknown or has no proposed link; "
                                    "set one with --set")
        return self._dojo_pupil(dojo_pupil_id)

    def set_link(self, dojo_pupil_id: str, person_ref: str | None) -> DojoPupil:
        """Link a ClassDojo pupil to a registry pupil (confirmed), or to nobody when ``person_ref`` is None."""
        person_id = self.find(person_ref, kind=PersonKind.PUPIL).id if person_ref else None
        with self.transaction():
            cur = self.db.execute("UPDATE dojo_pupils SET person_id = ?, link_state = ?, link_score = NULL "
                                  "WHERE dojo_pupil_id = ?",
                                  (person_id, "confirmed" if person_id else "none", dojo_pupil_id))
            if cur.rowcount == 0:
                raise RegistryError(f"ClassDojo pupil {dojo_pupil_id!r} has not been seen in a roster")
        return self._dojo_pupil(dojo_pupil_id)

    def set_class_link(self, class_id: str, reg_group: str | None) -> None:
        with self.transaction():
            cur = self.db.execute("UPDATE dojo_classes SET reg_group = ?, link_state = ? WHERE class_id = ?",
                                  (reg_group, "confirmed" if reg_group else "none", class_id))
            if cur.rowcount == 0:
                raise RegistryError(f"ClassDojo class {class_id!r} has not been seen by the proxy")

    def classes(self) -> list[tuple[str, str, str | None, LinkState]]:
        return [(r[0], r[1], r[2], LinkState(r[3])) for r in self.db.execute(
            "SELECT class_id, name, reg_group, link_state FROM dojo_classes ORDER BY name")]

    def _dojo_pupil(self, dojo_pupil_id: str) -> DojoPupil:
        for p in self.dojo_pupils():
            if p.dojo_pupil_id == dojo_pupil_id:
                return p
        raise RegistryError(f"ClassDojo pupil {dojo_pupil_id!r} has not been seen in a roster")

    # -- audiences ----------------------------------------------------------

    def audience(self, purpose: str, *, class_id: str | None, whole_school: bool) -> Audience:
        """The pupils a post reaches and whether all are permitted; unknown audiences are never all-permitted."""
        if whole_school:
            ids = tuple(i for (i,) in self.db.execute("SELECT id FROM people WHERE kind = 'pupil' ORDER BY id"))
            unlinked = self.db.execute("SELECT COUNT(*) FROM dojo_pupils WHERE link_state IN "
                                       "('none', 'doubtful')").fetchone()[0]
            is_known = bool(ids) and unlinked == 0
        elif class_id:
            roster = self.db.execute(
                "SELECT d.person_id, d.link_state FROM dojo_roster r JOIN dojo_pupils d "
                "ON d.dojo_pupil_id = r.dojo_pupil_id WHERE r.class_id = ?", (class_id,)).fetchall()
            linked = {pid for pid, state in roster if pid is not None and state in ("proposed", "confirmed")}
            group = self.db.execute("SELECT reg_group FROM dojo_classes WHERE class_id = ? AND link_state IN "
                                    "('proposed', 'confirmed')", (class_id,)).fetchone()
            if group and group[0]:
                linked |= {i for (i,) in self.db.execute(
                    "SELECT id FROM people WHERE kind = 'pupil' AND reg_group = ?", (group[0],))}
            ids = tuple(sorted(linked))
            is_known = bool(ids) and all(pid is not None and state in ("proposed", "confirmed")
                                         for pid, state in roster)
        else:
            ids, is_known = (), False
        all_permitted = is_known and all(self.is_permitted(i, purpose) for i in ids)
        return Audience(purpose, ids, is_known, all_permitted)

    # -- erasure ------------------------------------------------------------

    def erase(self, person_id: int) -> None:
        """Remove a person's personal data, consents, history, links and templates; keep only that it happened."""
        with self.transaction():
            self.person(person_id)
            self.db.execute("DELETE FROM templates WHERE person_id = ?", (person_id,))
            self.db.execute("DELETE FROM dojo_pupils WHERE person_id = ?", (person_id,))
            self.db.execute("DELETE FROM people WHERE id = ?", (person_id,))
            self.db.execute("INSERT INTO erasures (person_id, erased_at) VALUES (?, ?)", (person_id, self._now()))
        forget_erased(self.database)

    def erasures(self) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in self.db.execute("SELECT person_id, erased_at FROM erasures ORDER BY id")]


def forget_erased(db: Database) -> None:
    """After an erasure, leave no copy of the erased rows in the database's own files.

    SQLite (``secure_delete``) has overwritten them in the file; copying the
    change out of the write-ahead log and truncating it leaves no erased page
    there. PostgreSQL keeps deleted rows in its table files until they are
    rewritten: ``VACUUM FULL`` writes every registry table anew without them.
    (Its write-ahead log and the trust's backups are the trust's to expire:
    docs/dpo.md.)
    """
    if db.dialect == "sqlite":
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with db.lock:
            db.execute("VACUUM FULL people, consents, consent_history, templates, dojo_pupils, dojo_roster")


def _person(row) -> Person:
    return Person(row[0], PersonKind(row[1]), row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]))
