"""Display names of teachers and classes, so that people read names, not ClassDojo ids.

Learned from ClassDojo's own answers the proxy already reads (who a session
belongs to, the class list and its collaborators) or imported from the
school's staff list (``dojoguard names import``). Kept in the proxy's state
database, never in the audit log: the log holds ids, and a name can be
forgotten (``names forget``) without touching the sealed chain.

A name imported by the school is never replaced by one learned from
ClassDojo: the school's list is the one a headteacher recognises.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dojoguard.state import State

KINDS = ("teacher", "class")
LEARNED = "classdojo"
IMPORTED = "import"
UNSEEN = "unseen"
# ClassDojo's ids are MongoDB object ids: 24 hexadecimal digits.
CLASSDOJO_ID = re.compile(r"^[0-9a-f]{24}$")
MAX_NAME_CHARS = 120


class NameProblem(ValueError):
    """A name that cannot be used: unknown, ambiguous or malformed; the message lists what would match."""


@dataclass(frozen=True)
class Named:
    kind: str
    id: str
    name: str
    source: str
    updated_at: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id})"


def normalise(text: str) -> str:
    """Case, spacing and full stops do not matter: "mrs  jones" is "Mrs. Jones"."""
    return " ".join(text.replace(".", " ").split()).casefold()


class Names:
    """The names in one state database. Calls are serialised by the state's lock (use from any thread)."""

    def __init__(self, state: State):
        self.state = state
        # With the state on a server, the school's imported names are read from this snapshot (kept fresh by
        # ``refresh_imported`` on a worker thread), because decisions ask for them on the proxy's event loop,
        # which must never wait on the network. None: read the (local) database each time.
        self._imported: dict[tuple[str, str], str] | None = None
        if state.database.dialect != "sqlite":
            self.refresh_imported()

    @classmethod
    def open(cls, path: Path) -> "Names":
        return cls(State(path))

    def close(self) -> None:
        self.state.close()

    # -- writing ---------------------------------------------------------

    def learn(self, kind: str, id_: str, name: str | None, at: datetime) -> None:
        """A name ClassDojo gave (blocking: call from a worker thread); the school's imported name wins."""
        name = _clean(name)
        if kind not in KINDS or not name or not isinstance(id_, str) or not id_:
            return
        with self.state.database.transaction():
            self.state.database.execute(
                "INSERT INTO names (kind, id, name, source, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at "
                "WHERE names.source != ? AND names.name != excluded.name",
                (kind, id_, name, LEARNED, at.isoformat(), IMPORTED))

    def set(self, rows: list[tuple[str, str, str]], at: datetime) -> None:
        """The school's own names (kind, id, name), in one transaction."""
        with self.state.database.transaction():
            self.state.database.executemany(
                "INSERT INTO names (kind, id, name, source, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET name = excluded.name, source = excluded.source, "
                "updated_at = excluded.updated_at",
                [(kind, id_, name, IMPORTED, at.isoformat()) for kind, id_, name in rows])
        if self._imported is not None:
            self.refresh_imported()

    def forget(self, id_: str) -> int:
        """Remove every name held for ``id_``; returns how many were removed."""
        with self.state.database.transaction():
            removed = self.state.database.execute("DELETE FROM names WHERE id = ?", (id_,)).rowcount
        if self._imported is not None:
            self.refresh_imported()
        return removed

    # -- reading ---------------------------------------------------------

    def all(self, kind: str | None = None) -> list[Named]:
        sql = "SELECT kind, id, name, source, updated_at FROM names"
        args: tuple = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (kind,)
        with self.state.lock:
            rows = self.state.database.execute(sql, args).fetchall()
        # Sorted here: SQLite's NOCASE collation has no PostgreSQL counterpart.
        return sorted((Named(*row) for row in rows), key=lambda n: (n.kind, _nocase(n.name), n.id))

    def table(self) -> dict[tuple[str, str], str]:
        """(kind, id) -> name, for readers that name many ids at once (reports, lists)."""
        with self.state.lock:
            rows = self.state.database.execute("SELECT kind, id, name FROM names").fetchall()
        return {(k, i): n for k, i, n in rows}

    def name(self, kind: str, id_: str | None) -> str | None:
        if not id_:
            return None
        with self.state.lock:
            row = self.state.database.execute("SELECT name FROM names WHERE kind = ? AND id = ?",
                                              (kind, id_)).fetchone()
        return row[0] if row else None

    def imported(self, kind: str, id_: str | None) -> str | None:
        """The name the school itself gave ``id_`` (``dojoguard names import``), never one learned from ClassDojo:
        for decisions that must not rest on what a teacher can type into their own ClassDojo profile."""
        if not id_:
            return None
        if self._imported is not None:
            return self._imported.get((kind, id_))
        with self.state.lock:
            row = self.state.database.execute("SELECT name FROM names WHERE kind = ? AND id = ? AND source = ?",
                                              (kind, id_, IMPORTED)).fetchone()
        return row[0] if row else None

    def refresh_imported(self) -> None:
        """Read the school's imported names again into the snapshot (blocking: call from a worker thread)."""
        with self.state.lock:
            rows = self.state.database.execute("SELECT kind, id, name FROM names WHERE source = ?",
                                               (IMPORTED,)).fetchall()
        self._imported = {(kind, id_): name for kind, id_, name in rows}

    @property
    def snapshots_imported(self) -> bool:
        """Whether imported names come from the snapshot (the state is on a server)."""
        return self._imported is not None

    def resolve(self, kind: str, text: str) -> Named:
        """The one teacher or class ``text`` means: a known id, a name matching exactly one, or a well-formed
        ClassDojo id not seen yet (``source`` "unseen", no name).

        Anything else is refused with the candidates, so nothing is ever granted
        to a name that no request can carry.
        """
        known = self.all(kind)
        wanted = text.strip()
        by_id = [n for n in known if n.id == wanted.lower()]
        if by_id:
            return by_id[0]
        matching = [n for n in known if normalise(n.name) == normalise(wanted)]
        if len(matching) == 1:
            return matching[0]
        if not matching and CLASSDOJO_ID.match(wanted.lower()):
            other = next((n for n in self.all() if n.id == wanted.lower()), None)
            if other is not None:
                raise NameProblem(f"{wanted} is the {other.kind} {other.name}, not a {kind}")
            # A well-formed id can match a request even before the proxy has seen it: kept, and named unseen.
            return Named(kind, wanted.lower(), "", UNSEEN, "")
        if matching:
            plural = "classes" if kind == "class" else "teachers"
            raise NameProblem(f"{len(matching)} {plural} are called {wanted!r}: "
                              + "; ".join(n.label for n in matching) + ". Give the id instead.")
        raise NameProblem(_unknown(kind, wanted, known))


def _unknown(kind: str, wanted: str, known: list[Named]) -> str:
    plural = "classes" if kind == "class" else "teachers"
    if not known:
        return (f"no {kind} called {wanted!r} is known: no {kind} names are known yet. They are learned when "
                f"teachers use ClassDojo through the proxy, or imported with `dojoguard names import`.")
    by_name = {normalise(n.name): n for n in known}
    close = difflib.get_close_matches(normalise(wanted), list(by_name), n=5, cutoff=0.5)
    contains = [n for n in known if normalise(wanted) in normalise(n.name)]
    candidates = list(dict.fromkeys([*contains, *(by_name[c] for c in close)]))[:8]
    hint = "Use the name as `dojoguard names list` shows it, or the ClassDojo id."
    listed = ("Did you mean: " + "; ".join(n.label for n in candidates) + "? ") if candidates else \
        f"Known {plural}: " + "; ".join(n.label for n in known[:8]) + ("; ..." if len(known) > 8 else "") + ". "
    return f"no {kind} called {wanted!r} is known. {listed}{hint}"


# SQLite's NOCASE: only the ASCII capitals fold, so the order of the names is what it always was.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _nocase(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def _clean(name: str | None) -> str | None:
    if not isinstance(name, str):
        return None
    name = " ".join(name.split())
    return name[:MAX_NAME_CHARS] or None


# -- the school's staff list ----------------------------------------------

_ID_HEADERS = ("classdojo id", "dojo id", "id", "classdojo_id")
_NAME_HEADERS = ("name", "display name", "display_name")
_KIND_HEADERS = ("type", "kind")


@dataclass(frozen=True)
class ImportProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportRefused(ValueError):
    def __init__(self, problems: list[ImportProblem]):
        self.problems = problems
        super().__init__("; ".join(map(str, problems[:5])) + (f" (and {len(problems) - 5} more)"
                                                               if len(problems) > 5 else ""))


def read_staff_csv(text: str, *, default_kind: str = "teacher") -> list[tuple[str, str, str]]:
    """Rows (kind, id, name) of a CSV with columns "ClassDojo ID", "Name" and optionally "Type".

    Every problem is reported at once and nothing is returned: a file with
    one wrong row is corrected and imported again, never half-applied.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header:
        raise ImportRefused([ImportProblem(1, "the file is empty")])
    heads = [normalise(h).replace("_", " ") for h in header]

    def column(names: tuple[str, ...]) -> int | None:
        return next((i for i, h in enumerate(heads) if h in names), None)

    id_at, name_at, kind_at = column(_ID_HEADERS), column(_NAME_HEADERS), column(_KIND_HEADERS)
    if id_at is None or name_at is None:
        raise ImportRefused([ImportProblem(1, "the first line must name the columns \"ClassDojo ID\" and "
                                              "\"Name\" (and optionally \"Type\": teacher or class); found "
                                              + ", ".join(repr(h) for h in header))])
    rows, problems, seen = [], [], {}
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        id_, name = _cell(cells, id_at).lower(), _clean(_cell(cells, name_at))
        kind = _cell(cells, kind_at).lower() or default_kind
        if kind not in KINDS:
            problems.append(ImportProblem(line, f"type {kind!r} is not teacher or class"))
            continue
        if not CLASSDOJO_ID.match(id_):
            problems.append(ImportProblem(line, f"{_cell(cells, id_at)!r} is not a ClassDojo id (24 hexadecimal digits, "
                                                "as in the address bar of the teacher's or class's page)"))
            continue
        if not name:
            problems.append(ImportProblem(line, f"no name for {id_}"))
            continue
        if (kind, id_) in seen:
            problems.append(ImportProblem(line, f"{id_} is already named on line {seen[(kind, id_)]}"))
            continue
        seen[(kind, id_)] = line
        rows.append((kind, id_, name))
    if problems:
        raise ImportRefused(problems)
    if not rows:
        raise ImportRefused([ImportProblem(2, "the file names nobody")])
    return rows


def _cell(cells: list[str], at: int | None) -> str:
    return cells[at].strip() if at is not None and at < len(cells) else ""
