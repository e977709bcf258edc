"""A privacy-safe summary of writes the catalogue does not explain, for ``dojoguard discover``.

Only shapes are kept: method, host, the path with ids replaced by ``{id}``,
the content type, the JSON key skeleton and counts. Never a value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dojoguard.state import State
from dojoguard.storage import Database

_ID_SEGMENT = re.compile(
    r"^([0-9a-f]{24}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+|[0-9a-f]{32,}|[A-Za-z0-9_-]{40,})$",
    re.IGNORECASE)


def template(path: str) -> str:
    """The path without its query and with every id-like segment replaced by ``{id}``."""
    path = path.split("?", 1)[0]
    return "/".join("{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/"))


def anonymise_keys(node: Any) -> Any:
    """A skeleton whose id-like keys (objects keyed by pupil id) become ``{id}``."""
    if isinstance(node, dict):
        return {("{id}" if _ID_SEGMENT.match(k) else k): anonymise_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [anonymise_keys(v) for v in node]
    return node


@dataclass(frozen=True)
class Shape:
    method: str
    host: str
    path: str
    content_type: str
    skeleton: str
    count: int
    first_seen: str
    last_seen: str


# Where writes beyond the cap are counted, one row per method, host and content type.
OVERFLOW_PATH = "(other paths)"
# Longest path template and key skeleton kept; a longer one is cut (the path) or summarised (the skeleton).
MAX_PATH = 300
MAX_SKELETON = 4000


class Discovery:
    """At most ``limit`` shapes, each kept ``days`` after it was last seen.

    Every unclassified write with a new path or body shape used to add a
    row, so a device sending writes to made-up paths grew the table without
    end. Past the cap a new shape is counted in its host's ``(other paths)``
    row instead: the shapes already kept (the ones IT staff are looking at)
    are never pushed out by a flood.
    """

    def __init__(self, state: State, *, limit: int = 1000, days: int = 90):
        self.state = state
        self.limit = max(1, int(limit))
        self.keep = timedelta(days=days)

    def record(self, method: str, host: str, path: str, content_type: str | None, skeleton: Any,
               at: datetime) -> None:
        """Count one unclassified write (blocking: call from a worker thread)."""
        ctype = (content_type or "").split(";")[0].strip().lower()[:100] or "(none)"
        shape = json.dumps(anonymise_keys(skeleton), sort_keys=True) if skeleton is not None else ""
        if len(shape) > MAX_SKELETON:
            shape = "(too large to keep)"
        key = (method[:16], host[:253], template(path)[:MAX_PATH], ctype, shape)
        stamp = at.isoformat()
        # The look, the room made and the count, in one transaction: two writers never both add the shape.
        with self.state.database.transaction():
            db = self.state.database
            seen = db.execute("UPDATE unclassified SET count = count + 1, last_seen = ? WHERE method = ? AND "
                              "host = ? AND path = ? AND content_type = ? AND skeleton = ?", (stamp, *key))
            if seen.rowcount:
                return
            if self._full(db, at):
                key = (key[0], key[1], OVERFLOW_PATH, key[3], "")
            # The existing row's count is named by its table: PostgreSQL finds a bare ``count`` ambiguous.
            db.execute(
                "INSERT INTO unclassified VALUES (?,?,?,?,?,1,?,?) ON CONFLICT(method, host, path, content_type, "
                "skeleton) DO UPDATE SET count = unclassified.count + 1, last_seen = excluded.last_seen",
                (*key, stamp, stamp))

    def _full(self, db: Database, at: datetime) -> bool:
        """Whether a new shape would pass the cap, once shapes past their time are gone."""
        rows = db.execute("SELECT COUNT(*) FROM unclassified WHERE path != ?", (OVERFLOW_PATH,)).fetchone()[0]
        if rows < self.limit:
            return False
        db.execute("DELETE FROM unclassified WHERE last_seen < ?", ((at - self.keep).isoformat(),))
        rows = db.execute("SELECT COUNT(*) FROM unclassified WHERE path != ?", (OVERFLOW_PATH,)).fetchone()[0]
        return rows >= self.limit

    def shapes(self) -> list[Shape]:
        with self.state.lock:
            rows = self.state.database.execute(
                "SELECT method, host, path, content_type, skeleton, count, first_seen, last_seen FROM unclassified "
                "ORDER BY count DESC, last_seen DESC").fetchall()
        return [Shape(*row) for row in rows]
