"""Skills and their point values are learned per class and kept across restarts."""

from __future__ import annotations

from datetime import UTC, datetime

from dojoguard.proxy.skills import Skills

AT = datetime(2026, 11, 30, 10, tzinfo=UTC)


def test_learned_skills_are_found_by_class_and_survive_restart(open_state):
    """A class's skills are looked up by class and id, also after reopening the database."""
    first = open_state()
    Skills(first).learn("c1", [("b1", "Helping", 1), ("b2", "Off task", -1)], AT)
    first.close()
    skills = Skills(open_state())
    assert skills.lookup("c1", "b2") == ("Off task", -1)
    assert skills.lookup("c2", "b2") is None


def test_class_less_lookup_needs_one_unambiguous_answer(open_state):
    """Without a class, a skill id is resolved only if every class agrees on it."""
    skills = Skills(open_state())
    skills.learn("c1", [("b1", "Helping", 1)], AT)
    assert skills.lookup(None, "b1") == ("Helping", 1)
    skills.learn("c2", [("b1", "Helping", 2)], AT)
    assert skills.lookup(None, "b1") is None
