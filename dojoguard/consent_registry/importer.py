"""Importing pupils and consents from MIS exports (SIMS, Arbor, or any CSV with a column map).

All or nothing: every row is validated first and every problem reported with
its line; only a clean file is applied, in one transaction. Re-importing the
same file changes nothing. A dry run applies the file inside a transaction
and rolls it back, so its report is exactly what a real import would do.
"""

from __future__ import annotations

import csv
import enum
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Callable, Iterable

from dojoguard.clock import minute
from dojoguard.consent_registry.registry import BIOMETRIC, Consent, PersonKind, Registry, State
from dojoguard.yamlfile import FileProblems, Problem

MAX_BYTES = 20 * 1024 * 1024


class Format(enum.StrEnum):
    SIMS = "sims"
    ARBOR = "arbor"
    GENERIC = "generic"


@dataclass(frozen=True)
class Change:
    """One consent that changed: registry id and purpose only, fit for the audit trail."""

    person_id: int
    purpose: str
    state: State
    source: str
    before: State = State.UNKNOWN


@dataclass(frozen=True)
class Conflict:
    """A consent the file would change but the registry keeps: a later act recorded by hand wins."""

    purpose: str
    kept: State
    file_says: State
    reason: str


@dataclass
class PupilReport:
    """What the import did to one person, by name (for the DPO's eyes; never for the audit trail)."""

    line: int
    name: str
    mis_id: str
    person_id: int
    outcome: str  # "added", "updated" (name, year or class changed) or "unchanged"
    changes: list[Change] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    blanks: list[str] = field(default_factory=list)

    @property
    def worth_listing(self) -> bool:
        return self.outcome != "unchanged" or bool(self.changes or self.conflicts or self.blanks)


@dataclass
class Report:
    rows: int = 0
    pupils: list[PupilReport] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)
    dry_run: bool = False

    def _count(self, outcome: str) -> int:
        return sum(1 for p in self.pupils if p.outcome == outcome)

    @property
    def people_added(self) -> int:
        return self._count("added")

    @property
    def people_updated(self) -> int:
        return self._count("updated")

    @property
    def people_unchanged(self) -> int:
        return self._count("unchanged")

    @property
    def changes(self) -> list[Change]:
        return [c for p in self.pupils for c in p.changes]

    @property
    def conflicts(self) -> list[tuple[PupilReport, Conflict]]:
        return [(p, c) for p in self.pupils for c in p.conflicts]

    def summary(self) -> list[str]:
        """The report, pupil by pupil; every count above the list is a count of the list's lines."""
        blank = [p for p in self.pupils if p.blanks]
        lines = [f"{self.rows} row(s) read: {len(self.pupils)} person(s): {self.people_added} added, "
                 f"{self.people_updated} updated, {self.people_unchanged} unchanged",
                 f"{len(self.changes)} consent(s) changed, {len(self.conflicts)} conflict(s) left as they are, "
                 f"{len(blank)} person(s) with no consent recorded for something"]
        for pupil in self.pupils:
            if pupil.worth_listing:
                lines += self._describe(pupil)
        lines += [f"ignored {what!r}: {count} row(s)" for what, count in sorted(self.ignored.items())]
        if self.conflicts:
            lines.append("Conflicts are left as they are. To take the file's value for a person, import again with "
                         "--accept-mis MIS_ID, or record the consent with `dojoguard consent set`.")
        if self.dry_run:
            lines.append("dry run: nothing was saved")
        return lines

    def _describe(self, pupil: PupilReport) -> list[str]:
        who = f"{pupil.name} (MIS {pupil.mis_id}, line {pupil.line})"
        lines = []
        if pupil.outcome != "unchanged" or pupil.changes:
            head = pupil.outcome if pupil.outcome != "unchanged" else "changed"
            lines.append(f"  {head:<9}{who}")
            lines += [f"             {c.purpose}: {c.before} -> {c.state}" for c in pupil.changes]
        lines += [f"  conflict {who}: {c.purpose}: the file says {c.file_says}, kept {c.kept}: {c.reason}"
                  for c in pupil.conflicts]
        if pupil.blanks:
            lines.append(f"  blank    {who}: no consent recorded for {', '.join(pupil.blanks)} "
                         "(not permitted until a consent is recorded)")
        return lines


@dataclass(frozen=True)
class _Cell:
    """One consent as the file gives it."""

    state: State
    informed_by: str
    given_at: datetime | None = None
    # "stated": the file says this state; "absent": SIMS lists codes, and this
    # purpose's code is missing (not granted); "blank": the cell is empty.
    how: str = "stated"


@dataclass(frozen=True)
class _Record:
    line: int
    kind: PersonKind
    mis_id: str
    first_name: str
    last_name: str
    upn: str | None
    year: str | None
    reg_group: str | None
    consents: dict  # purpose -> _Cell


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise FileProblems([Problem("DG-IMPORT-SIZE", f"the file is larger than {MAX_BYTES // 2**20} MB",
                                    str(path), hint="Export one year group at a time.")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")  # older SIMS exports are Windows-1252
    reader = csv.DictReader(io.StringIO(text, newline=""))
    headers = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = headers
    rows = []
    for row in reader:
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}))
    return headers, rows


_DATE_FORMATS = ("%d/%m/%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d", "%Y-%m-%d %H:%M",
                 "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%d-%m-%Y", "%d.%m.%Y")


def parse_date(text: str, tz: tzinfo) -> datetime | None:
    """A date (UK day-first, or ISO) with an optional time, in ``tz``; a date alone is the start of that day.

    The start of the day, so that a consent recorded by hand on the same day
    as the MIS's response counts as the later of the two (the safer reading).
    """
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    return None


def _column(headers: list[str], options: tuple[str, ...]) -> str | None:
    lowered = {h.casefold(): h for h in headers}
    for option in options:
        if option.casefold() in lowered:
            return lowered[option.casefold()]
    return None


class _Validator:
    def __init__(self, path: Path, tz: tzinfo, now: datetime):
        self.path = path
        self.tz = tz
        self.now = now
        self.problems: list[Problem] = []

    def error(self, line: int, code: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(code, message, str(self.path), line, 1, hint))

    def date(self, line: int, column: str, text: str) -> datetime | None:
        """A response date from the file, as the start of that day (or that minute) in the school's time zone."""
        found = parse_date(text, self.tz)
        if found is None:
            self.error(line, "DG-IMPORT-DATE", f"{column}: {text!r} is not a date",
                       "Use the MIS's date format, e.g. 04/12/2026 or 2026-12-04 (a time may follow).")
        elif found > self.now + timedelta(days=1):
            # A date in the future would outrank every later withdrawal recorded by hand.
            self.error(line, "DG-IMPORT-DATE", f"{column}: {text!r} is in the future",
                       "Check the export; a response cannot be dated after today.")
            return None
        return found

    def require(self, headers, name: str, options: tuple[str, ...]) -> str | None:
        column = _column(headers, options)
        if column is None:
            self.error(1, "DG-IMPORT-COLUMN", f"no {name} column (looked for {', '.join(map(repr, options))})",
                       f"Columns found: {', '.join(headers) or 'none'}.")
        return column


_SIMS = {"mis_id": ("Adno", "Admission Number", "MIS ID"), "upn": ("UPN",),
         "first_name": ("Legal Forename", "Forename", "First Name"),
         "last_name": ("Legal Surname", "Surname", "Last Name"),
         "year": ("Year", "NC Year", "Year Group"), "reg_group": ("Reg", "Reg Group", "Registration Group"),
         "codes": ("Parental Consent", "Parental Consents", "Consent")}
_ARBOR = {"mis_id": ("Student ID", "Arbor ID", "MIS ID"), "upn": ("UPN",),
          "first_name": ("First Name", "Legal First Name"), "last_name": ("Last Name", "Legal Last Name"),
          "year": ("Year Group", "Year"), "reg_group": ("Registration Form", "Reg Form", "Form"),
          "type": ("Consent Type",), "status": ("Consent Status", "Status"),
          "by": ("Responded By", "Given By", "Contact"),
          "responded": ("Date Responded", "Response Date", "Responded On")}
_ARBOR_STATES = {"given": State.GRANTED, "yes": State.GRANTED, "granted": State.GRANTED,
                 "refused": State.REFUSED, "no": State.REFUSED, "declined": State.REFUSED,
                 "pending": State.REQUESTED, "requested": State.REQUESTED, "sent": State.REQUESTED,
                 "not asked": State.UNKNOWN, "no response": State.UNKNOWN, "": State.UNKNOWN}
_UPN = re.compile(r"^[A-Z]\d{11}[0-9A-Z]$")


def _person_fields(v: _Validator, line: int, row: dict, cols: dict) -> dict | None:
    fields = {key: (row.get(cols[key]) or None) if cols.get(key) else None
              for key in ("mis_id", "upn", "first_name", "last_name", "year", "reg_group")}
    ok = True
    for key in ("mis_id", "first_name", "last_name"):
        if not fields[key]:
            v.error(line, "DG-IMPORT-MISSING", f"{cols.get(key) or key} is empty", "Every row needs it.")
            ok = False
    if fields["upn"] and not _UPN.match(fields["upn"].upper()):
        v.error(line, "DG-IMPORT-UPN", f"{fields['upn']!r} is not a unique pupil number",
                "A UPN is a letter, 11 digits and a check character, e.g. A123456789012.")
        ok = False
    elif fields["upn"]:
        fields["upn"] = fields["upn"].upper()
    return fields if ok else None


def _parse_sims(v: _Validator, headers, rows, settings: dict, purposes,
                given_at: datetime | None) -> list[_Record]:
    cols = {k: _column(headers, opts) for k, opts in _SIMS.items()}
    for key in ("mis_id", "first_name", "last_name", "codes"):
        v.require(headers, key.replace("_", " "), _SIMS[key])
    if v.problems:
        return []
    code_map: dict[str, list[str]] = {}
    for entry in settings.get("codes", []):
        code_map[str(entry["code"]).upper()] = list(entry["purposes"])
    mapped = sorted({p for ps in code_map.values() for p in ps})
    records = []
    for line, row in rows:
        fields = _person_fields(v, line, row, cols)
        codes = [c.strip().upper() for c in re.split(r"[,;/ ]+", row.get(cols["codes"], "")) if c.strip()]
        unknown = [c for c in codes if c not in code_map]
        if unknown:
            v.error(line, "DG-IMPORT-CODE", f"unknown consent code(s) {', '.join(unknown)}",
                    f"Known codes: {', '.join(sorted(code_map))} (set consent.import.sims.codes).")
            continue
        if fields is None:
            continue
        granted = {p for c in codes for p in code_map[c]}
        # SIMS's consent codes are the parents' answers. A purpose whose code
        # is missing is not granted; an empty cell means nothing is recorded.
        how = "absent" if codes else "blank"
        consents = {p: _Cell(State.GRANTED, "parent", given_at) if p in granted
                    else _Cell(State.UNKNOWN, "parent", given_at, how) for p in mapped}
        records.append(_Record(line, PersonKind.PUPIL, **fields, consents=consents))
    return records


def _parse_arbor(v: _Validator, headers, rows, settings: dict, purposes,
                 given_at: datetime | None) -> tuple[list[_Record], Counter]:
    cols = {k: _column(headers, opts) for k, opts in _ARBOR.items()}
    for key in ("mis_id", "first_name", "last_name", "type", "status"):
        v.require(headers, key.replace("_", " "), _ARBOR[key])
    ignored: Counter = Counter()
    if v.problems:
        return [], ignored
    type_map = {str(e["type"]).casefold(): e["purpose"] for e in settings.get("types", [])}
    by_person: dict[str, _Record] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, row in rows:
        fields = _person_fields(v, line, row, cols)
        purpose = type_map.get(row.get(cols["type"], "").casefold())
        status = row.get(cols["status"], "").casefold()
        if status not in _ARBOR_STATES:
            v.error(line, "DG-IMPORT-STATE", f"unknown consent status {row.get(cols['status'])!r}",
                    "Use Given, Refused, Pending or Not Asked.")
            continue
        if fields is None:
            continue
        if purpose is None:
            ignored[row.get(cols["type"], "")] += 1
            continue
        key = (fields["mis_id"], purpose)
        if key in seen:
            v.error(line, "DG-IMPORT-DUPLICATE", f"a second {purpose} consent for the same pupil "
                                                 f"(first on line {seen[key]})", "Keep one row per consent type.")
            continue
        seen[key] = line
        # Nobody named as responding is "unknown", never assumed to be a parent.
        by = (row.get(cols["by"], "") if cols.get("by") else "") or "unknown"
        responded = row.get(cols["responded"], "") if cols.get("responded") else ""
        when = v.date(line, cols.get("responded") or "", responded) if responded else given_at
        if responded and when is None:
            continue
        record = by_person.get(fields["mis_id"])
        consents = dict(record.consents) if record else {}
        consents[purpose] = _Cell(_ARBOR_STATES[status], by, when, "stated" if status else "blank")
        by_person[fields["mis_id"]] = _Record(record.line if record else line, PersonKind.PUPIL, **fields,
                                              consents=consents)
    return list(by_person.values()), ignored


def _parse_generic(v: _Validator, headers, rows, settings: dict, purposes,
                   given_at: datetime | None) -> list[_Record]:
    columns = settings.get("columns", {})
    cols = {key: _column(headers, (name,)) if name else None for key, name in columns.items()}
    for key in ("mis_id", "first_name", "last_name"):
        if columns.get(key):
            v.require(headers, key.replace("_", " "), (columns[key],))
        else:
            v.error(1, "DG-IMPORT-MAPPING", f"consent.import.generic.columns.{key} is not set",
                    "Name the CSV column that holds it in the settings file.")
    consent_cols = [(e["column"], e["purpose"]) for e in settings.get("consent_columns", [])]
    for column, _ in consent_cols:
        v.require(headers, f"consent column {column!r}", (column,))
    if v.problems:
        return []
    values = {str(word).casefold(): State(state) for state, words in settings.get("values", {}).items()
              for word in words}
    records = []
    for line, row in rows:
        fields = _person_fields(v, line, row, cols)
        kind = PersonKind.PUPIL
        if cols.get("kind"):
            raw_kind = row.get(cols["kind"], "").casefold() or "pupil"
            if raw_kind not in ("pupil", "staff"):
                v.error(line, "DG-IMPORT-KIND", f"{raw_kind!r} is neither pupil nor staff")
                continue
            kind = PersonKind(raw_kind)
        consents = {}
        for column, purpose in consent_cols:
            word = row.get(_column(headers, (column,)), "").casefold()
            if not word:
                consents[purpose] = _Cell(State.UNKNOWN, "unknown", given_at, "blank")
                continue
            if word not in values:
                v.error(line, "DG-IMPORT-STATE", f"{column}: {word!r} is not a known consent value",
                        f"Known values: {', '.join(sorted(w for w in values if w))} (consent.import.generic.values).")
                continue
            # The export does not say who answered: unknown, not assumed to be a parent.
            consents[purpose] = _Cell(values[word], "unknown", given_at)
        if fields is not None:
            records.append(_Record(line, kind, **fields, consents=consents))
    return records


def _check_duplicates_and_purposes(v: _Validator, records: list[_Record], purposes) -> None:
    first: dict[tuple, int] = {}
    upns: dict[str, int] = {}
    for r in records:
        if r.upn and r.upn in upns:
            v.error(r.line, "DG-IMPORT-DUPLICATE", f"UPN {r.upn!r} appears twice (first on line {upns[r.upn]})",
                    "A UPN belongs to one pupil.")
        if r.upn:
            upns.setdefault(r.upn, r.line)
        key = (r.kind, r.mis_id)
        if key in first:
            v.error(r.line, "DG-IMPORT-DUPLICATE", f"MIS id {r.mis_id!r} appears twice (first on line {first[key]})",
                    "Each person must appear once.")
        first.setdefault(key, r.line)
        for purpose in r.consents:
            if purpose not in purposes:
                v.error(r.line, "DG-IMPORT-PURPOSE", f"consent purpose {purpose!r} is not configured",
                        f"Add it to consent.purposes or fix the mapping; known: {', '.join(purposes)}.")
                return


class _DryRun(Exception):
    """Ends a dry run's transaction, so that what it applied is rolled back."""


def import_file(registry: Registry, path: str | Path, fmt: Format | str, settings: dict, *,
                dry_run: bool = False, progress: Callable[[int, int], None] | None = None,
                exported_on: date | None = None, accept_mis: Iterable[str] = (),
                timezone: tzinfo | None = None) -> Report:
    """Validate then apply one export; raises ``FileProblems`` (every row problem) and changes nothing then.

    ``exported_on``: the day the file was exported, for rows without their
    own response date. ``accept_mis``: MIS ids (or UPNs) whose file values are
    taken even over a later consent recorded by hand. ``progress(done, total)``
    is called after each person is applied (for a progress bar).
    """
    path = Path(path)
    fmt = Format(fmt)
    tz = timezone or registry.clock.now().astimezone().tzinfo
    v = _Validator(path, tz, registry.clock.now())
    file_date = None
    if exported_on is not None:
        file_date = datetime.combine(exported_on, time(0, 0), tzinfo=tz)
        if file_date > v.now + timedelta(days=1):
            v.error(1, "DG-IMPORT-DATE", f"--exported-on {exported_on.isoformat()} is in the future",
                    "Give the day the file was exported from the MIS.")
    headers, rows = _read_rows(path)
    ignored: Counter = Counter()
    if fmt is Format.SIMS:
        records = _parse_sims(v, headers, rows, settings.get("sims", {}), registry.purposes, file_date)
    elif fmt is Format.ARBOR:
        records, ignored = _parse_arbor(v, headers, rows, settings.get("arbor", {}), registry.purposes, file_date)
    else:
        records = _parse_generic(v, headers, rows, settings.get("generic", {}), registry.purposes, file_date)
    if not v.problems and not rows:
        v.error(1, "DG-IMPORT-EMPTY", "the file has no rows", "Export with a header row and one row per pupil.")
    _check_duplicates_and_purposes(v, records, registry.purposes)
    accept = {ref.strip().upper() for ref in accept_mis}
    named = {r.mis_id.upper() for r in records} | {r.upn for r in records if r.upn}
    for ref in sorted(accept - named):
        v.error(1, "DG-IMPORT-ACCEPT", f"--accept-mis {ref}: nobody in the file has that MIS id or UPN",
                "Give the MIS id (or UPN) of a person in this file.")
    if v.problems:
        raise FileProblems(v.problems)
    report = Report(rows=len(rows), ignored=ignored, dry_run=dry_run)
    source = f"{fmt} import"
    try:
        with registry.transaction():
            for done, r in enumerate(records, start=1):
                taken = r.mis_id.upper() in accept or (r.upn or "") in accept
                report.pupils.append(_apply(registry, r, source, taken, tz))
                if progress is not None:
                    progress(done, len(records))
            if dry_run:
                raise _DryRun  # everything above is rolled back
    except _DryRun:
        pass
    return report


def _apply(registry: Registry, r: _Record, source: str, accept: bool, tz: tzinfo) -> PupilReport:
    """Apply one person's row (the caller holds the transaction) and say what happened."""
    existed = registry.db.execute("SELECT 1 FROM people WHERE kind = ? AND mis_id = ?",
                                  (str(r.kind), r.mis_id)).fetchone()
    person_id, changed = registry.upsert_person(r.kind, r.mis_id, r.first_name, r.last_name, upn=r.upn,
                                                year=r.year, reg_group=r.reg_group)
    outcome = "updated" if existed and changed else "unchanged" if existed else "added"
    pupil = PupilReport(r.line, f"{r.first_name} {r.last_name}", r.mis_id, person_id, outcome)
    current = registry.consents(person_id)
    for purpose, cell in sorted(r.consents.items()):
        if cell.how == "blank":
            pupil.blanks.append(purpose)
        held = current[purpose]
        # The pupil's own objection matters only to a file granting biometric matching: looked up then alone.
        objection = registry.objection(person_id) if purpose == BIOMETRIC and cell.state is State.GRANTED else None
        conflict = _conflict(held, cell, objection, tz)
        if conflict is not None and not accept:
            pupil.conflicts.append(Conflict(purpose, held.state, cell.state, conflict))
            continue
        if cell.how != "stated" and held.state is not State.GRANTED:
            continue  # missing or blank: only a grant needs ending; a refusal stays a refusal
        given = cell.given_at.isoformat() if cell.given_at else None
        if registry.record_consent(person_id, purpose, cell.state, source=source, informed_by=cell.informed_by,
                                   given_at=given):
            pupil.changes.append(Change(person_id, purpose, cell.state, source, held.state))
    return pupil


def _conflict(held: Consent, cell: _Cell, objection: Consent | None, tz: tzinfo) -> str | None:
    """Why the file's value must not replace what the registry holds, or None if it may.

    A state recorded by hand (a paper form, a parent's email, the pupil's own
    word) outranks the file unless the file's response is dated after it: an
    export made before a withdrawal must never undo it (Protection of Freedoms
    Act 2012 s.27). A file without dates never outranks a hand-recorded state.
    """
    if cell.how != "stated" and held.state is not State.GRANTED:
        return None
    if held.state is cell.state:
        return None
    if objection is not None and cell.state is State.GRANTED and not _file_is_later(cell, objection):
        return f"the pupil objected ({_said(objection, tz)}); their own objection outranks the file"
    if held.by_hand and not _file_is_later(cell, held):
        what = "withdrawn" if held.state is State.REFUSED else str(held.state)
        return f"{what} by hand ({_said(held, tz)}), {_dated(cell, tz)}"
    if held.given_at and cell.given_at is not None and cell.given_at < datetime.fromisoformat(held.given_at):
        # An older export imported after a newer one must not undo the newer answer either.
        return f"the registry's answer ({_said(held, tz)}, given {minute(datetime.fromisoformat(held.given_at), tz)}) " \
               f"is newer than the file's answer of {minute(cell.given_at, tz)}"
    return None


def _file_is_later(cell: _Cell, held: Consent) -> bool:
    if cell.given_at is None or not held.effective_at:
        return False
    return cell.given_at > datetime.fromisoformat(held.effective_at)


def _said(held: Consent, tz: tzinfo) -> str:
    parts = [held.source]
    if held.informed_by:
        parts.append(f"by {held.informed_by}")
    if held.effective_at:
        parts.append(minute(datetime.fromisoformat(held.effective_at), tz))
    return ", ".join(parts)


def _dated(cell: _Cell, tz: tzinfo) -> str:
    if cell.given_at is None:
        return ("and the file's answer has no date, so it cannot be the newer "
                "(give --exported-on YYYY-MM-DD, or export the response dates)")
    return f"after the file's answer of {minute(cell.given_at, tz)}"
