"""Guarded regular expressions: RE2 only, length-capped, refused with a reason."""

from __future__ import annotations

import time

import pytest

from dojoguard.rules.pattern import MAX_PATTERN_CHARS, PatternError, compile_guarded


def test_nested_quantifier_runs_in_linear_time():
    """(a+)+$ cannot backtrack under RE2: a 200,000-character hostile text is searched at once."""
    search = compile_guarded("(a+)+$").search
    start = time.perf_counter()
    assert search("a" * 200_000 + "b") is None
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("pattern", [r"(\w+) \1", r"(?<=Mr )Smith", r"foo(?!bar)", "[", r"a{2000}"])
def test_patterns_re2_cannot_run_are_refused(pattern):
    """Back-references, look-around, syntax errors and huge repeats are refused with RE2's reason."""
    with pytest.raises(PatternError) as caught:
        compile_guarded(pattern)
    assert not caught.value.too_long
    assert "RE2" in str(caught.value)


def test_long_pattern_is_refused():
    """A pattern longer than the cap is refused as too long."""
    with pytest.raises(PatternError) as caught:
        compile_guarded("a" * (MAX_PATTERN_CHARS + 1))
    assert caught.value.too_long


def test_ordinary_pattern_works():
    """A normal pattern compiles and matches."""
    assert compile_guarded(r"(?i)\bPE\s+kit\b").search("bring pe  KIT") is not None
