"""Teachers' roles, from the settings' ``staff`` section: a list per role in the settings file, and a CSV.

A teacher is named by ClassDojo id (24 hexadecimal digits) or by name; a name
is compared only with the name the school imported for the teacher
(``dojoguard names import``), never with their ClassDojo profile name, which
the teacher can type themselves. Case, spacing, full stops and a leading
title aside: "mrs ann  jones" and "Ann Jones" both match "Mrs. Ann Jones".
A known teacher no
list names is a plain ``teacher``; a teacher the proxy does not know has no
roles at all (None), which the rules read as unknown.

The CSV has a header line naming its columns ``role`` and ``id`` or ``name``
(or both; an ``id`` given wins), one role per line: a teacher with two roles
has two lines. Any bad line stops the start with an error naming the file and
line, never skipped (see docs/install.md, "Staff roles").
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from dojoguard.names import CLASSDOJO_ID, normalise
from dojoguard.yamlfile import FileProblems, Problem

ROLE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DEFAULT_ROLE = "teacher"
# A leading title, left off when a name is compared ("Mrs. Ann Jones" is also "Ann Jones").
_TITLE = re.compile(r"^(mr|mrs|ms|miss|mx|dr|prof|sir|rev)\s+")


def _names(name: str) -> set[str]:
    plain = normalise(name)
    return {plain, _TITLE.sub("", plain)} - {""}


@dataclass
class Staff:
    """Role lists by id and by normalised name."""

    by_id: dict[str, set[str]] = field(default_factory=dict)
    by_name: dict[str, set[str]] = field(default_factory=dict)

    def add(self, teacher: str, role: str) -> None:
        teacher = teacher.strip()
        if CLASSDOJO_ID.match(teacher.lower()):
            self.by_id.setdefault(teacher.lower(), set()).add(role)
        else:
            for name in _names(teacher):
                self.by_name.setdefault(name, set()).add(role)

    def roles_of(self, teacher_id: str | None, *names: str | None) -> tuple[str, ...] | None:
        """The roles of a teacher, sorted; ("teacher",) when none is listed; None for an unknown teacher."""
        if not teacher_id:
            return None
        roles = set(self.by_id.get(teacher_id.lower(), ()))
        if self.by_name:
            for name in names:
                if name:
                    for plain in _names(name):
                        roles |= self.by_name.get(plain, set())
        return tuple(sorted(roles)) if roles else (DEFAULT_ROLE,)

    @property
    def wants_names(self) -> bool:
        return bool(self.by_name)


def load(roles: dict[str, list[str]], csv_path: Path | None) -> Staff:
    """The staff roles of the settings; raises ``FileProblems`` naming every bad line of the CSV."""
    staff = Staff()
    for role, teachers in roles.items():
        for teacher in teachers:
            staff.add(teacher, role)
    if csv_path is not None:
        for teacher, role in read_csv(csv_path):
            staff.add(teacher, role)
    return staff


def read_csv(path: Path) -> list[tuple[str, str]]:
    """(teacher id or name, role) for each line of a staff roles CSV."""
    where = str(path)
    try:
        text = Path(path).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileProblems([Problem("DG-CONFIG-STAFF", f"the staff roles file cannot be read: {exc}", where,
                                    hint="staff.file names a UTF-8 CSV file; see docs/install.md, "
                                         "\"Staff roles\".")]) from None
    return parse_csv(text, where)


def parse_csv(text: str, where: str = "<staff csv>") -> list[tuple[str, str]]:
    hint = "Columns: role, and id or name (see docs/install.md, \"Staff roles\")."
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise FileProblems([Problem("DG-CONFIG-STAFF", "the staff roles file is empty", where, 1, hint=hint)])
    heads = [h.strip().lower() for h in header]
    at = {name: heads.index(name) for name in ("id", "name", "role") if name in heads}
    unknown = [h for h in heads if h not in ("id", "name", "role")]
    if "role" not in at or not ({"id", "name"} & set(at)) or unknown:
        raise FileProblems([Problem("DG-CONFIG-STAFF", "the first line must name the columns role and id or name"
                                    f"; found {', '.join(repr(h) for h in header)}", where, 1, hint=hint)])
    rows, problems = [], []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(heads):
            problems.append(Problem("DG-CONFIG-STAFF", f"line {line} has {len(cells)} cells, the header "
                                    f"{len(heads)} (a name with a comma needs \"quotes\")", where, line, hint=hint))
            continue

        teacher_id, name, role = _cell(cells, at, "id").lower(), _cell(cells, at, "name"), _cell(cells, at, "role")
        if teacher_id and not CLASSDOJO_ID.match(teacher_id):
            problems.append(Problem("DG-CONFIG-STAFF", f"line {line}: {_cell(cells, at, 'id')!r} is not a ClassDojo id "
                                    "(24 hexadecimal digits)", where, line, hint=hint))
            continue
        if not teacher_id and not name:
            problems.append(Problem("DG-CONFIG-STAFF", f"line {line} names no teacher (no id, no name)", where, line,
                                    hint=hint))
            continue
        if not ROLE.match(role):
            problems.append(Problem("DG-CONFIG-STAFF", f"line {line}: role {role!r} is not a role name", where, line,
                                    hint="A role is a lower-case word (letters, digits, _), e.g. headteacher, "
                                         "senior_leader, pastoral, teacher, dsl."))
            continue
        rows.append((teacher_id or name, role))
    if problems:
        raise FileProblems(problems)
    return rows


def _cell(cells: list[str], at: dict[str, int], name: str) -> str:
    i = at.get(name)
    return " ".join(cells[i].split()) if i is not None and i < len(cells) else ""
