"""Phrase lists: whole words in any case, disguised words, and list files IT staff edit."""

from __future__ import annotations

from pathlib import Path

import pytest

from dojoguard.rules.pattern import compile_guarded
from dojoguard.rules.phrases import list_pattern, normalise, read_list_file

from .conftest import write


def _finds(entries, text, *, disguised=False) -> bool:
    return compile_guarded(list_pattern(tuple(normalise(e) for e in entries), disguised=disguised),
                           limit=None).search(text) is not None


@pytest.mark.parametrize("text, found", [
    ("He is off sick today", True),
    ("He is OFF SICK today", True),
    ("He is off\n  sick today", True),
    ("off sick.", True),
    ("(off sick)", True),
    ("offsick", False),
    ("he was off, sick", False),
    ("a sickness", False),
])
def test_phrase_is_whole_words_any_case(text, found):
    """A phrase matches whole words, in any case, with any white space between its words."""
    assert _finds(["off sick"], text) is found


def test_apostrophes_straight_or_curly():
    """An apostrophe in a phrase matches a straight or a curly one."""
    assert _finds(["won't be in"], "He won’t be in tomorrow")
    assert _finds(["won’t be in"], "He won't be in tomorrow")


def test_words_next_to_accented_letters_are_not_whole():
    """Letters outside ASCII count as letters, so 'caf' is not found in 'café'."""
    assert not _finds(["caf"], "Meet at the café")
    assert _finds(["café"], "Meet at the CAFÉ")


@pytest.mark.parametrize("text, found", [
    ("oh sh1t", True), ("oh $hit", True), ("@ss", True), ("SH!T", True),
    ("class", False), ("passing", False), ("assess", False),
    ("a55", True), ("Room 455 tomorrow", False), ("(455)", False), ("5$4", False),
])
def test_disguised_words(text, found):
    """Word lists for language also catch digits and symbols standing in for letters, still whole words."""
    assert _finds(["shit", "ass"], text, disguised=True) is found


def test_special_characters_in_phrases_are_literal():
    """Regex characters in a phrase are matched literally, never as a pattern."""
    assert _finds(["a+b (c)"], "so a+b (c) works")
    assert not _finds(["a+b (c)"], "aab c")


def test_list_file_entries(tmp_path: Path):
    """List files hold one entry a line; comments and blank lines are skipped; entries are normalised."""
    path = write(tmp_path / "l.txt", "# heading\n\nOff  Sick   # trailing note\nwon’t be in\n")
    problems = []
    assert read_list_file(path, "l.txt", problems) == ("off sick", "won't be in")
    assert problems == []


@pytest.mark.parametrize("content, code", [
    (b"# nothing\n", "DG-LIST-EMPTY"),
    (b"caf\xe9\n", "DG-LIST-ENCODING"),
    (b"x" * 300 + b"\n", "DG-LIST-ENTRY"),
    (b"a" * (300 * 1024), "DG-LIST-SIZE"),
])
def test_list_file_problems(tmp_path: Path, content: bytes, code: str):
    """Each kind of broken list file gets its own code."""
    path = tmp_path / "l.txt"
    path.write_bytes(content)
    problems = []
    assert read_list_file(path, "l.txt", problems) is None
    assert [p.code for p in problems] == [code]


def test_missing_list_file(tmp_path: Path):
    """A list file that is not there is reported."""
    problems = []
    assert read_list_file(tmp_path / "none.txt", "none.txt", problems) is None
    assert problems[0].code == "DG-LIST-MISSING"
