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
from pathlib import Path
from typing import Callable

from dojoguard.consent_registry.registry import PersonKind, Registry, State
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


@dataclass
class Report:
    rows: int = 0
    people_added: int = 0
    people_updated: int = 0
    people_unchanged: int = 0
    changes: list[Change] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)
    dry_run: bool = False

    def summary(self) -> list[str]:
        by_purpose = Counter((c.purpose, str(c.state)) for c in self.changes)
        lines = [f"{self.rows} row(s) read: {self.people_added} added, {self.people_updated} updated, "
                 f"{self.people_unchanged} unchanged",
                 f"{len(self.changes)} consent(s) changed"]
        lines += [f"  {purpose}: {count} now {state}" for (purpose, state), count in sorted(by_purpose.items())]
        lines += [f"  ignored {what!r}: {count} row(s)" for what, count in sorted(self.ignored.items())]
        if self.dry_run:
            lines.append("dry run: nothing was saved")
        return lines


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
    # purpose -> (state, informed_by); for SIMS, purposes not listed are "withdrawn if granted".
    consents: dict
    withdrawn: frozenset = frozenset()


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


def _column(headers: list[str], options: tuple[str, ...]) -> str | None:
    lowered = {h.casefold(): h for h in headers}
    for option in options:
        if option.casefold() in lowered:
            return lowered[option.casefold()]
    return None


class _Validator:
    def __init__(self, path: Path):
        self.path = path
        self.problems: list[Problem] = []

    def error(self, line: int, code: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(code, message, str(self.path), line, 1, hint))

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
          "by": ("Responded By", "Given By", "Contact")}
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


def _parse_sims(v: _Validator, headers, rows, settings: dict, purposes) -> list[_Record]:
    cols = {k: _column(headers, opts) for k, opts in _SIMS.items()}
    for key in ("mis_id", "first_name", "last_name", "codes"):
        v.require(headers, key.replace("_", " "), _SIMS[key])
    if v.problems:
        return []
    code_map: dict[str, list[str]] = {}
    for entry in settings.get("codes", []):
        code_map[str(entry["code"]).upper()] = list(entry["purposes"])
    mapped = frozenset(p for ps in code_map.values() for p in ps)
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
        records.append(_Record(line, PersonKind.PUPIL, **fields,
                               consents={p: (State.GRANTED, "parent") for p in granted},
                               withdrawn=mapped - granted))
    return records


def _parse_arbor(v: _Validator, headers, rows, settings: dict, purposes) -> tuple[list[_Record], Counter]:
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
        by = row.get(cols["by"], "") if cols.get("by") else ""
        record = by_person.get(fields["mis_id"])
        consents = dict(record.consents) if record else {}
        consents[purpose] = (_ARBOR_STATES[status], by or "parent")
        by_person[fields["mis_id"]] = _Record(record.line if record else line, PersonKind.PUPIL, **fields,
                                              consents=consents)
    return list(by_person.values()), ignored


def _parse_generic(v: _Validator, headers, rows, settings: dict, purposes) -> list[_Record]:
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
            if word not in values:
                v.error(line, "DG-IMPORT-STATE", f"{column}: {word!r} is not a known consent value",
                        f"Known values: {', '.join(sorted(values))} (consent.import.generic.values).")
                continue
            consents[purpose] = (values[word], "parent")
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
        for purpose in set(r.consents) | set(r.withdrawn):
            if purpose not in purposes:
                v.error(r.line, "DG-IMPORT-PURPOSE", f"consent purpose {purpose!r} is not configured",
                        f"Add it to consent.purposes or fix the mapping; known: {', '.join(purposes)}.")
                return


class _DryRun(Exception):
    """Ends a dry run's transaction, so that what it applied is rolled back."""


def import_file(registry: Registry, path: str | Path, fmt: Format | str, settings: dict, *,
                dry_run: bool = False, progress: Callable[[int, int], None] | None = None) -> Report:
    """Validate then apply one export; raises ``FileProblems`` (every row problem) and changes nothing then.

    ``progress(done, total)`` is called after each person is applied (for a progress bar).
    """
    path = Path(path)
    fmt = Format(fmt)
    v = _Validator(path)
    headers, rows = _read_rows(path)
    ignored: Counter = Counter()
    if fmt is Format.SIMS:
        records = _parse_sims(v, headers, rows, settings.get("sims", {}), registry.purposes)
    elif fmt is Format.ARBOR:
        records, ignored = _parse_arbor(v, headers, rows, settings.get("arbor", {}), registry.purposes)
    else:
        records = _parse_generic(v, headers, rows, settings.get("generic", {}), registry.purposes)
    if not v.problems and not rows:
        v.error(1, "DG-IMPORT-EMPTY", "the file has no rows", "Export with a header row and one row per pupil.")
    _check_duplicates_and_purposes(v, records, registry.purposes)
    if v.problems:
        raise FileProblems(v.problems)
    report = Report(rows=len(rows), ignored=ignored, dry_run=dry_run)
    source = f"{fmt} import"
    try:
        with registry.transaction():
            for done, r in enumerate(records, start=1):
                existed = registry.db.execute("SELECT 1 FROM people WHERE kind = ? AND mis_id = ?",
                                              (str(r.kind), r.mis_id)).fetchone()
                person_id, changed = registry.upsert_person(r.kind, r.mis_id, r.first_name, r.last_name, upn=r.upn,
                                                            year=r.year, reg_group=r.reg_group)
                if not existed:
                    report.people_added += 1
                elif changed:
                    report.people_updated += 1
                else:
                    report.people_unchanged += 1
                for purpose, (state, by) in sorted(r.consents.items()):
                    if registry.record_consent(person_id, purpose, state, source=source, informed_by=by):
                        report.changes.append(Change(person_id, purpose, state, source))
                for purpose in sorted(r.withdrawn):
                    if registry.is_permitted(person_id, purpose):
                        registry.record_consent(person_id, purpose, State.UNKNOWN, source=source, informed_by="MIS")
                        report.changes.append(Change(person_id, purpose, State.UNKNOWN, source))
                if progress is not None:
                    progress(done, len(records))
            if dry_run:
                raise _DryRun  # everything above is rolled back
    except _DryRun:
        pass
    return report
