"""Each class's skills ("behaviors") and their point values, learned from behaviour lists.

An award often names only a skill id; knowing the skill's value is what lets
the rules tell a positive award from a "needs work" one.
"""

from __future__ import annotations

from datetime import datetime

from dojoguard.state import State


class Skills:
    def __init__(self, state: State):
        self.state = state
        self._values: dict[tuple[str, str], tuple[str | None, int]] = {}
        with state.lock:
            rows = state.database.execute("SELECT class_id, skill_id, name, value FROM skills").fetchall()
        for cid, sid, name, value in rows:
            self._values[(cid, sid)] = (name, value)

    def lookup(self, class_id: str | None, skill_id: str) -> tuple[str | None, int] | None:
        """(name, points) of a skill, or None if never seen; a class-less award searches every class."""
        if class_id is not None:
            return self._values.get((class_id, skill_id))
        found = {v for (c, s), v in self._values.items() if s == skill_id}
        return found.pop() if len(found) == 1 else None

    def learn(self, class_id: str, skills: list[tuple[str, str | None, int]], at: datetime) -> None:
        """Record a class's skills (blocking: call from a worker thread)."""
        rows = [(class_id, sid, name, value, at.isoformat()) for sid, name, value in skills]
        for _, sid, name, value, _ in rows:
            self._values[(class_id, sid)] = (name, value)
        with self.state.database.transaction():
            self.state.database.executemany(
                "INSERT INTO skills (class_id, skill_id, name, value, learned_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(class_id, skill_id) DO UPDATE SET name=excluded.name, value=excluded.value, "
                "learned_at=excluded.learned_at", rows)
