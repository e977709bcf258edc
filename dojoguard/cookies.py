"""Which cookie carries a teacher's ClassDojo login, and how its session id is read from a Cookie header.

Shared by the proxy (who a write is from) and the hold store (whom a notice
for an item of an unknown teacher goes to), which may not import the proxy.
"""

from __future__ import annotations

from urllib.parse import unquote

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
