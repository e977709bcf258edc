"""Sessions are mapped to teachers by keyed hash, and the map survives a restart."""

from __future__ import annotations

from datetime import UTC, datetime

from dojoguard.cookies import session_id
from dojoguard.proxy.sessions import Sessions, set_cookie_session
from tests.support.state import everything

AT = datetime(2026, 11, 30, 10, tzinfo=UTC)


def test_session_id_from_cookie_header():
    """The teacher session cookie is found and URL-decoded; other cookies are ignored."""
    assert session_id("a=1; dojo_teach_login.sid=s%3Aabc.sig; dojo_login.sid=s%3Aabc.sig") == "s:abc.sig"
    assert session_id("dojo_log_session_id=x") is None
    assert session_id(None) is None


def test_session_id_from_set_cookie():
    """The session a login response sets is read from Set-Cookie."""
    assert set_cookie_session(["dojo_log_session_id=x; Path=/",
                               "dojo_login.sid=s%3Anew.sig; Path=/; HttpOnly; Secure"]) == "s:new.sig"


def test_map_is_keyed_by_hash_and_survives_restart(open_state):
    """A learned session names its teacher after a restart, and the database never holds the cookie."""
    state = open_state()
    # Letters a hex digest or key can never contain, so the check below cannot match by chance.
    Sessions(state).remember("s:xyzzy.sig", "t1", "Mrs. Ex Ample", AT)
    state.close()
    reopened = open_state()
    again = Sessions(reopened)
    assert again.teacher("s:xyzzy.sig") == ("t1", "Mrs. Ex Ample")
    assert again.teacher("s:other") == (None, None)
    assert "xyzzy" not in everything(reopened)


def test_a_different_key_cannot_link_sessions(open_state):
    """Two installations with different keys hash the same session differently."""
    a = Sessions(open_state("a"))
    b = Sessions(open_state("b"))
    assert a._hash("s:abc") != b._hash("s:abc")
