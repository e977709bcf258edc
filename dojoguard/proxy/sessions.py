"""Who a request is from: ClassDojo session -> teacher, learned from session responses.

The cookie is opaque and a credential, so it is never stored: the map is keyed
by an HMAC of the session id under a key kept in a file of its own. A session
not yet seen (the teacher logged in before the proxy started) is "unknown
teacher" and the rules decide what that means.
"""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from urllib.parse import unquote

from dojoguard.cookies import SESSION_COOKIES
from dojoguard.state import State

def set_cookie_session(set_cookie_headers: list[str]) -> str | None:
    """The session id a response sets, or None."""
    for header in set_cookie_headers:
        cookie = SimpleCookie()
        try:
            cookie.load(header)
        except Exception:  # noqa: BLE001 - a cookie we cannot read is simply not a session
            continue
        for name in SESSION_COOKIES:
            if name in cookie and cookie[name].value:
                return unquote(cookie[name].value)
    return None


# A session seen again is written back (its "last confirmed" time moved on) at most this often.
REFRESH_AFTER = timedelta(days=1)


class Sessions:
    """Learned sessions, at most ``limit`` of them, each kept ``days`` after ClassDojo last confirmed it.

    Sessions are learned from ClassDojo's answers to a session's own
    requests, so a device sending made-up cookies could otherwise grow the
    table without end. The least recently confirmed go first: a teacher
    whose session was pushed out is learned again the next time the app
    asks ClassDojo who is logged in, and is "unknown teacher" until then.
    """

    def __init__(self, state: State, *, limit: int = 5000, days: int = 30):
        self.state = state
        self.limit = max(1, int(limit))
        self.keep = timedelta(days=days)
        # hash -> (teacher id, name, last confirmed); oldest first, so the front is what goes first.
        self._cache: OrderedDict[str, tuple[str, str | None, datetime]] = OrderedDict()
        # Writers come from worker threads; readers (``teacher``) only ever do one lookup.
        self._writing = threading.Lock()
        with state.lock:
            rows = state.database.execute("SELECT session_hash, teacher_id, teacher_name, learned_at FROM sessions "
                                          "ORDER BY learned_at").fetchall()
        for h, tid, name, learned in rows:
            self._cache[h] = (tid, name, _parse(learned))

    def __len__(self) -> int:
        return len(self._cache)

    def _hash(self, sid: str) -> str:
        # hmac.digest is the one-shot form in C: the same value, several times faster than hmac.new.
        return hmac.digest(self.state.key, sid.encode(), "sha256").hex()

    def teacher(self, sid: str | None) -> tuple[str | None, str | None]:
        """(teacher id, name) for a session, (None, None) when not learned; memory only, no I/O."""
        if not sid:
            return None, None
        found = self._cache.get(self._hash(sid))
        return (found[0], found[1]) if found else (None, None)

    def remember(self, sid: str, teacher_id: str, teacher_name: str | None, at: datetime) -> None:
        """Record a session's teacher (blocking: call from a worker thread)."""
        h = self._hash(sid)
        with self._writing:
            old = self._cache.get(h)
            name = teacher_name or (old[1] if old and old[0] == teacher_id else None)
            if old is not None and old[:2] == (teacher_id, name) and at - old[2] < REFRESH_AFTER:
                return
            # Moved to the back: the front of the dictionary is always the least recently confirmed.
            self._cache[h] = (teacher_id, name, at)
            self._cache.move_to_end(h)
            # The session and the ones it pushes out, in one transaction.
            with self.state.database.transaction():
                self.state.database.execute(
                    "INSERT INTO sessions (session_hash, teacher_id, teacher_name, learned_at) VALUES (?,?,?,?) "
                    "ON CONFLICT(session_hash) DO UPDATE SET teacher_id=excluded.teacher_id, "
                    "teacher_name=excluded.teacher_name, learned_at=excluded.learned_at",
                    (h, teacher_id, name, at.isoformat()))
                self._bound(at)

    def _bound(self, at: datetime) -> None:
        """Forget sessions past their time, then the least recently confirmed beyond the cap (caller's transaction)."""
        cutoff = at - self.keep
        gone = []
        for h, (_, _, confirmed) in self._cache.items():
            if confirmed >= cutoff and len(self._cache) - len(gone) <= self.limit:
                break
            gone.append(h)
        if not gone:
            return
        for h in gone:
            del self._cache[h]
        self.state.database.executemany("DELETE FROM sessions WHERE session_hash = ?", [(h,) for h in gone])


def _parse(stamp: str) -> datetime:
    try:
        value = datetime.fromisoformat(stamp)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # unreadable: the first to go
    return value if value.tzinfo else value.replace(tzinfo=UTC)
