"""References as people give them: the decision id a teacher reads out from a notice, whole or shortened.

A teacher quotes "Reference: 3f2a9c0e8b7d4e1fa0c2b4d6e8f01234" from the app,
often only its start, with spaces, in capitals, or with the word
"Reference". Every command and page that takes a decision or item id reads
it through ``parse`` and looks it up by ``prefix_range``: the full id, or its
first ``SHORTEST`` characters or more when only one record starts with them.
"""

from __future__ import annotations

import re

# Eight hexadecimal characters: one chance in four billion that two records share them.
SHORTEST = 8
_NOISE = re.compile(r"[\s\-–—.:()\[\]\"'…]+")
_HEX = re.compile(r"^[0-9a-f]+$")


class ReferenceProblem(ValueError):
    """A reference that cannot be looked up, or that matches more than one record."""


def parse(text: str) -> str:
    """The reference in ``text``, lower case, without spaces, dashes, quotes or a leading "Reference"."""
    value = text.strip()
    value = re.sub(r"^\s*(ref(erence)?|id)\b\s*:?", "", value, flags=re.IGNORECASE)
    value = _NOISE.sub("", value).lower()
    if not value:
        raise ReferenceProblem("give a reference: the decision id from the teacher's notice, or its first "
                               f"{SHORTEST} characters")
    if not _HEX.match(value):
        raise ReferenceProblem(f"{text.strip()!r} is not a reference: references are made of the digits 0-9 and "
                               "the letters a-f")
    if len(value) < SHORTEST:
        raise ReferenceProblem(f"{text.strip()!r} is too short: give at least the first {SHORTEST} characters of "
                               "the reference")
    return value


def prefix_range(prefix: str) -> tuple[str, str]:
    """(low, high) with every id starting with ``prefix`` in low <= id < high: an index range, not a scan."""
    return prefix, prefix + "\U0010ffff"


def one(prefix: str, found: list[str], what: str = "record") -> str | None:
    """The single id ``found`` for ``prefix`` (None when there is none); several is an error naming them."""
    if len(found) > 1:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise ReferenceProblem(f"{prefix!r} starts {len(found) if len(found) <= 5 else 'more than 5'} {what}s' "
                               f"references ({shown}): give more of it")
    return found[0] if found else None
