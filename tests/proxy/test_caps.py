"""Caps with expiry on what the proxy learns: sessions and unclassified-write shapes, in a real database
(a SQLite file, a PostgreSQL schema)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dojoguard.proxy.discovery import OVERFLOW_PATH, Discovery
from dojoguard.proxy.sessions import Sessions
from tests.support.state import count_rows

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_made_up_sessions_never_grow_the_table_past_its_cap(open_state):
    """A flood of new sessions keeps at most max_sessions rows, in memory and on disk."""
    state = open_state()
    sessions = Sessions(state, limit=50, days=30)
    for i in range(2_000):
        sessions.remember(f"s:made-up-{i}", "t-flood", None, T0 + timedelta(seconds=i))
    assert len(sessions) == 50 and count_rows(state, "sessions") == 50
    state.close()


def test_the_least_recently_confirmed_session_goes_first(open_state):
    """A teacher whose session ClassDojo keeps confirming outlives a flood; the oldest unconfirmed goes."""
    state = open_state()
    sessions = Sessions(state, limit=3, days=30)
    sessions.remember("s:teacher", "t-1", "Ms Smith", T0)
    sessions.remember("s:old", "t-2", None, T0 + timedelta(hours=1))
    sessions.remember("s:teacher", "t-1", "Ms Smith", T0 + timedelta(days=2))  # confirmed again
    sessions.remember("s:new-1", "t-3", None, T0 + timedelta(days=2, hours=1))
    sessions.remember("s:new-2", "t-4", None, T0 + timedelta(days=2, hours=2))
    assert sessions.teacher("s:teacher") == ("t-1", "Ms Smith")
    assert sessions.teacher("s:old") == (None, None)
    state.close()


def test_a_session_expires_after_its_days(open_state):
    """A session not confirmed for session_days is forgotten at the next learning, and stays forgotten on reopen."""
    state = open_state()
    sessions = Sessions(state, limit=100, days=30)
    sessions.remember("s:stale", "t-1", None, T0)
    sessions.remember("s:fresh", "t-2", None, T0 + timedelta(days=31))
    assert sessions.teacher("s:stale") == (None, None)
    state.close()
    reopened = Sessions(open_state(), limit=100, days=30)
    assert reopened.teacher("s:stale") == (None, None) and reopened.teacher("s:fresh") == ("t-2", None)


def test_seeing_a_session_again_the_same_day_writes_nothing(open_state, monkeypatch):
    """Confirmations within a day are not written back (the hot path stays free of disk writes)."""
    state = open_state()
    sessions = Sessions(state, limit=10, days=30)
    sessions.remember("s:a", "t-1", None, T0)
    statements = []
    monkeypatch.setattr(state.database, "execute", lambda *a: statements.append(a))
    monkeypatch.setattr(state.database, "executemany", lambda *a: statements.append(a))
    monkeypatch.setattr(state.database, "transaction", lambda **k: statements.append(k))
    sessions.remember("s:a", "t-1", None, T0 + timedelta(hours=5))
    assert statements == []


def test_unclassified_shapes_stop_at_the_cap_and_the_rest_are_counted_together(open_state):
    """Thousands of made-up paths keep at most the cap of shapes; the rest land in one "(other paths)" row."""
    state = open_state()
    discovery = Discovery(state, limit=20, days=90)
    for i in range(500):
        discovery.record("POST", "teach.classdojo.com", f"/api/made-up-{i}", "application/json", {"a": 1},
                         T0 + timedelta(seconds=i))
    shapes = discovery.shapes()
    kept = [s for s in shapes if s.path != OVERFLOW_PATH]
    overflow = [s for s in shapes if s.path == OVERFLOW_PATH]
    assert len(kept) == 20 and len(overflow) == 1 and overflow[0].count == 480
    state.close()


def test_a_kept_shape_is_still_counted_after_the_cap_is_reached(open_state):
    """A flood does not push out the shapes already kept: their counts go on growing."""
    state = open_state()
    discovery = Discovery(state, limit=5, days=90)
    discovery.record("POST", "teach.classdojo.com", "/api/realFeature", "application/json", {"x": "number"}, T0)
    for i in range(50):
        discovery.record("POST", "teach.classdojo.com", f"/api/junk-{i}", "application/json", None, T0)
    discovery.record("POST", "teach.classdojo.com", "/api/realFeature", "application/json", {"x": "number"}, T0)
    real = [s for s in discovery.shapes() if s.path == "/api/realFeature"]
    assert real and real[0].count == 2
    state.close()


def test_shapes_unseen_for_their_days_make_room(open_state):
    """Once shapes pass unclassified_days unseen, new shapes take their place instead of overflowing."""
    state = open_state()
    discovery = Discovery(state, limit=3, days=90)
    for i in range(3):
        discovery.record("POST", "teach.classdojo.com", f"/api/old-{i}", None, None, T0)
    later = T0 + timedelta(days=91)
    discovery.record("POST", "teach.classdojo.com", "/api/new", None, None, later)
    paths = {s.path for s in discovery.shapes()}
    assert paths == {"/api/new"}
    state.close()


def test_a_huge_path_or_skeleton_is_not_stored_whole(open_state):
    """A 100 kB path and a deeply keyed body are cut or summarised, so one row stays small."""
    state = open_state()
    discovery = Discovery(state, limit=10, days=90)
    skeleton = {f"key{i}": {"nested": [1, 2, 3]} for i in range(2_000)}
    discovery.record("POST", "teach.classdojo.com", "/api/" + "a" * 100_000, "application/json", skeleton, T0)
    (shape,) = discovery.shapes()
    assert len(shape.path) <= 300 and len(shape.skeleton) < 100
    state.close()
