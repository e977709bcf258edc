"""The proxy's memory of what the rules count (``count`` and ``strikes``), kept in its state database.

Decisions count in memory at once (``rules.history.History``: a bisection
per lookup, nothing on disk in the way of a write); what was counted is
written to the state database every few seconds from a worker thread, and read
back at start, so counts survive a restart. A crash loses at most the last
few seconds of counts. Only tally ids, teacher or class ids and times are
kept, for 32 days (the longest span a rule may count over).
"""

from __future__ import annotations

from datetime import datetime

import structlog

from dojoguard.rules.history import History
from dojoguard.rules.spans import LONGEST
from dojoguard.state import State

log = structlog.get_logger("dojoguard.proxy")

# How often what was counted is written to the state database.
FLUSH_EVERY_S = 2.0


class Counts:
    def __init__(self, state: State, now: datetime):
        self.state = state
        self.history = History()
        cutoff = now.timestamp() - LONGEST
        with state.lock:
            rows = state.database.execute("SELECT tally, key, at FROM counted WHERE at >= ?", (cutoff,)).fetchall()
        self.history.load(rows)

    def flush(self) -> int:
        """Write what was counted since the last flush (blocking: call from a worker thread)."""
        rows = self.history.take_pending()
        if not rows:
            return 0
        try:
            with self.state.database.transaction():
                self.state.database.executemany("INSERT INTO counted (tally, key, at) VALUES (?, ?, ?)", rows)
        except Exception:
            # Kept in memory (the decisions already use them) and written on the next flush.
            self.history.requeue(rows)
            raise
        return len(rows)

    def purge(self, now: datetime) -> int:
        """Forget counts older than any span reaches back."""
        cutoff = now.timestamp() - LONGEST
        self.history.forget_before(cutoff)
        with self.state.database.transaction():
            return self.state.database.execute("DELETE FROM counted WHERE at < ?", (cutoff,)).rowcount

    # -- scheduled checks --------------------------------------------------------

    def last_run(self, check_id: str) -> str | None:
        with self.state.lock:
            row = self.state.database.execute("SELECT day FROM checks_run WHERE check_id = ?", (check_id,)).fetchone()
        return row[0] if row else None

    def ran(self, check_id: str, day: str) -> None:
        with self.state.database.transaction():
            self.state.database.execute("INSERT INTO checks_run (check_id, day) VALUES (?, ?) "
                                        "ON CONFLICT (check_id) DO UPDATE SET day = excluded.day", (check_id, day))
