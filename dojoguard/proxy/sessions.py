"""Who a request is from: ClassDojo session -> teacher, learned from session responses.

The cookie is opaque and a credential, so it is never stored: the map is keyed
by an HMAC of the session id under a key kept beside the database. A session
not yet seen (the teacher logged in before the proxy started) is "unknown
teacher" and the rules decide what that means.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from http.cookies import SimpleCookie
from urllib.parse import unquote

from dojoguard.proxy.state import State

# Teacher sessions carry both; dojo_login.sid alone is also a teacher's on teach.*.
SESSION_COOKIES = ("dojo_teach_login.sid", "dojo_login.sid")


def session_id(cookie_header: str | None) -> str | None:
    """The signed session id from a Cookie header, or None."""
    if not cookie_header:
        return None
    found = {}
    for part in cookie_header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            found[name] = value
    for name in SESSION_COOKIES:
        if found.get(name):
            return unquote(found[name])
    return None


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


class Sessions:
    def __init__(self, state: State):
        self.state = state
        self._cache: dict[str, tuple[str, str | None]] = {}
        with state.lock:
            for h, tid, name in state.db.execute("SELECT session_hash, teacher_id, teacher_name FROM sessions"):
                self._cache[h] = (tid, name)

    def _hash(self, sid: str) -> str:
        # hmac.digest is the one-shot form in C: the same value, several times faster than hmac.new.
        return hmac.digest(self.state.key, sid.encode(), "sha256").hex()

    def teacher(self, sid: str | None) -> tuple[str | None, str | None]:
        """(teacher id, name) for a session, (None, None) when not learned; memory only, no I/O."""
        if not sid:
            return None, None
        return self._cache.get(self._hash(sid), (None, None))

    def remember(self, sid: str, teacher_id: str, teacher_name: str | None, at: datetime) -> None:
        """Record a session's teacher (blocking: call from a worker thread)."""
        h = self._hash(sid)
        old = self._cache.get(h)
        name = teacher_name or (old[1] if old and old[0] == teacher_id else None)
        if old == (teacher_id, name):
            return
        self._cache[h] = (teacher_id, name)
        with self.state.lock:
            self.state.db.execute(
                "INSERT INTO sessions (session_hash, teacher_id, teacher_name, learned_at) VALUES (?,?,?,?) "
                "ON CONFLICT(session_hash) DO UPDATE SET teacher_id=excluded.teacher_id, "
                "teacher_name=excluded.teacher_name, learned_at=excluded.learned_at",
                (h, teacher_id, name, at.isoformat()))
