"""The proxy's kept counts: written to the state file, read back at start, purged after 32 days; a failed
write loses nothing; scheduled checks remember the day they ran."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dojoguard.proxy.counting import Counts

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def state(open_state):
    return open_state()


def test_counts_are_written_and_read_back_by_the_next_start(state):
    counts = Counts(state, NOW)
    counts.history.add("tally", "t1", NOW.timestamp() - 60)
    counts.history.add("tally", "t1", NOW.timestamp() - 30)
    assert counts.flush() == 2 and counts.flush() == 0
    again = Counts(state, NOW)
    assert again.history.count("tally", "t1", 0, NOW.timestamp()) == 2
    # Only ids and times are in the database.
    with state.lock:
        rows = state.database.execute("SELECT * FROM counted").fetchall()
    assert sorted(r[:2] for r in rows) == [("tally", "t1"), ("tally", "t1")]


def test_counts_older_than_32_days_are_not_read_back_and_are_purged(state):
    counts = Counts(state, NOW)
    old = (NOW - timedelta(days=33)).timestamp()
    counts.history.add("tally", "t1", old)
    counts.history.add("tally", "t1", NOW.timestamp())
    counts.flush()
    assert Counts(state, NOW).history.count("tally", "t1", 0, NOW.timestamp() + 1) == 1
    assert counts.purge(NOW) == 1
    assert counts.history.count("tally", "t1", 0, NOW.timestamp() + 1) == 1


def test_a_failed_write_keeps_the_counts_for_the_next_flush(state):
    counts = Counts(state, NOW)
    counts.history.add("tally", "t1", NOW.timestamp())
    state.database.execute("ALTER TABLE counted RENAME TO counted_away")
    with pytest.raises(state.database.errors):
        counts.flush()
    assert counts.history.count("tally", "t1", 0, NOW.timestamp() + 1) == 1  # still counted in memory
    state.database.execute("ALTER TABLE counted_away RENAME TO counted")
    assert counts.flush() == 1


def test_a_check_remembers_the_day_it_ran(state):
    counts = Counts(state, NOW)
    assert counts.last_run("two-videos") is None
    counts.ran("two-videos", "2026-12-04")
    counts.ran("two-videos", "2026-12-11")
    assert Counts(state, NOW).last_run("two-videos") == "2026-12-11"
