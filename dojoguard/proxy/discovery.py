"""A privacy-safe summary of writes the catalogue does not explain, for ``dojoguard discover``.

Only shapes are kept: method, host, the path with ids replaced by ``{id}``,
the content type, the JSON key skeleton and counts. Never a value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dojoguard.proxy.state import State

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


class Discovery:
    def __init__(self, state: State):
        self.state = state

    def record(self, method: str, host: str, path: str, content_type: str | None, skeleton: Any,
               at: datetime) -> None:
        """Count one unclassified write (blocking: call from a worker thread)."""
        ctype = (content_type or "").split(";")[0].strip().lower() or "(none)"
        shape = json.dumps(anonymise_keys(skeleton), sort_keys=True) if skeleton is not None else ""
        stamp = at.isoformat()
        with self.state.lock:
            self.state.db.execute(
                "INSERT INTO unclassified VALUES (?,?,?,?,?,1,?,?) ON CONFLICT(method, host, path, content_type, "
                "skeleton) DO UPDATE SET count = count + 1, last_seen = excluded.last_seen",
                (method, host, template(path), ctype, shape, stamp, stamp))

    def shapes(self) -> list[Shape]:
        with self.state.lock:
            rows = self.state.db.execute(
                "SELECT method, host, path, content_type, skeleton, count, first_seen, last_seen FROM unclassified "
                "ORDER BY count DESC, last_seen DESC").fetchall()
        return [Shape(*row) for row in rows]
