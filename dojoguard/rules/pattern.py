"""Guarded regular expressions: RE2, so no pattern can take more than linear time.

Python's own ``re`` backtracks: a pattern such as ``(a+)+$`` against a long
run of "a"s followed by "b" runs for years, and one bad rule edit would stall
every teacher's request. RE2 has no backtracking (and so no look-around or
back-references); patterns it cannot compile are refused at load.
"""

from __future__ import annotations

import re2

MAX_PATTERN_CHARS = 500
# RE2 compiles to an automaton within this memory budget; a pattern needing
# more is refused rather than silently falling back to a slower matcher.
MAX_PATTERN_MEMORY = 8 << 20
# Patterns built from phrase lists are longer; they get a larger budget.
MAX_LIST_MEMORY = 64 << 20


class PatternError(ValueError):
    """A pattern that cannot be used; ``too_long`` distinguishes the two reasons."""

    def __init__(self, message: str, *, too_long: bool = False):
        self.too_long = too_long
        super().__init__(message)


def compile_guarded(pattern: str, *, limit: int | None = MAX_PATTERN_CHARS):
    """The compiled RE2 pattern, or ``PatternError`` saying why it cannot be used.

    ``limit=None`` is for patterns dojoguard builds itself from phrase lists.
    """
    if limit is not None and len(pattern) > limit:
        raise PatternError(f"the pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_CHARS}",
                           too_long=True)
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PATTERN_MEMORY if limit is not None else MAX_LIST_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) \
            else str(exc)
        raise PatternError(f"not a pattern RE2 can run: {detail}") from None
