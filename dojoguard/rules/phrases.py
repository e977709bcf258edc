"""Phrase lists: loading the files IT staff edit, and finding their phrases in a text fast.

Each list is compiled once, at load, into one RE2 pattern (linear time
whatever the text). Matching is case-insensitive and whole-word: "ill" does not
match "skills", "off sick" matches "Off  Sick" across a line break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import re2

from dojoguard.rules.codes import Code
from dojoguard.yamlfile import Problem

MAX_LIST_BYTES = 256 * 1024
MAX_ENTRY_CHARS = 200


_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The form phrases are compared in: case-folded, one space between words, straight apostrophes."""
    return _SPACES.sub(" ", text.replace("\u2019", "'").casefold()).strip()


@dataclass(frozen=True)
class WordList:
    """One named list: its entries (normalised) and where they came from."""

    name: str
    entries: tuple[str, ...]
    file: str | None = None


def read_list_file(path: Path, shown: str, problems: list[Problem]) -> tuple[str, ...] | None:
    """The entries of a list file (one per line, # comments), or None with problems added."""
    try:
        size = path.stat().st_size
        if size > MAX_LIST_BYTES:
            problems.append(Problem(Code.LIST_SIZE, f"the list is {size:,} bytes; the limit is {MAX_LIST_BYTES:,}",
                                    shown, hint="Split it into several lists."))
            return None
        raw = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        problems.append(Problem(Code.LIST_MISSING, "list file not found", shown,
                                hint="Check the `file:` path; it is relative to the rule file's folder."))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(Code.LIST_ENCODING, f"not UTF-8 text (byte {exc.start})", shown,
                                hint="Save the list as UTF-8."))
        return None
    entries = []
    before = len(problems)
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if len(entry) > MAX_ENTRY_CHARS or any(ord(c) < 32 for c in entry):
            problems.append(Problem(Code.LIST_ENTRY, "entry too long or holds control characters", shown, number, 1,
                                    f"Keep each entry on one line, at most {MAX_ENTRY_CHARS} characters."))
            continue
        entries.append(normalise(entry))
    if len(problems) > before:
        return None
    if not entries:
        problems.append(Problem(Code.LIST_EMPTY, "the list has no entries", shown,
                                hint="Add one phrase per line; lines starting with # are comments."))
        return None
    return tuple(entries)


# A phrase is a whole word (or words) when nothing letter- or digit-like touches it.
_BEFORE = r"(?:^|[^\pL\pN])"
_AFTER = r"(?:$|[^\pL\pN])"

# Characters a disguised letter may be written with.
_LOOKALIKES = {"a": "a4@", "e": "e3", "i": "i1!", "l": "l1", "o": "o0", "s": "s5$", "t": "t7"}


def list_pattern(entries: tuple[str, ...], *, disguised: bool = False) -> str:
    """One RE2 pattern matching any entry as whole words, in any case (and disguised, if asked).

    Longer entries come first so "off sick" is preferred to "sick"; spaces match
    any run of white space, an apostrophe matches a straight or curly one.
    """
    alternatives = [_phrase_pattern(entry, disguised) for entry in sorted(set(entries), key=len, reverse=True)]
    return f"{_BEFORE}(?i:{'|'.join(alternatives)}){_AFTER}"


def _runs(piece: str) -> list[tuple[str, int]]:
    """``piece`` as runs of one character: "ass" -> [("a", 1), ("s", 2)]."""
    runs: list[tuple[str, int]] = []
    for c in piece:
        if runs and runs[-1][0] == c:
            runs[-1] = (c, runs[-1][1] + 1)
        else:
            runs.append((c, 1))
    return runs


def _run(unit: str, count: int) -> str:
    """One run of an entry's letter (``unit``: its pattern), as it may be written.

    A single letter matches once, or three times or more (emphasis), and a doubled one twice
    or more: "shiiit" is "shit" and "asss" or "a$sSS" is "ass", but "good" is never "god".
    (The text's form, ``textform``, already cuts a run of one letter to three.)
    """
    if count == 1:
        return f"{unit}(?:{unit}{unit}+)?"
    if count == 2:
        return f"{unit}{unit}+"
    return unit * count


def _plain(piece: str) -> str:
    return "".join(_run(re2.escape(c), n) if c.isalpha() else re2.escape(c) * n for c, n in _runs(piece))


def _disguised(piece: str) -> str:
    """``piece`` with digits and symbols allowed for its letters, but never for all of them:
    "455" is a room number, not a disguised "ass"."""
    runs = _runs(piece)

    def unit(c: str) -> str:
        return f"[{re2.escape(_LOOKALIKES[c])}]" if c in _LOOKALIKES else re2.escape(c)

    def spelt(real_at: int | None) -> str:
        out = []
        for i, (c, n) in enumerate(runs):
            if not c.isalpha():
                out.append(re2.escape(c) * n)
            elif i != real_at:
                out.append(_run(unit(c), n))
            elif n == 2:  # the real letter is either of the two ("@s$" is "ass")
                real, any_ = re2.escape(c), unit(c)
                out.append(f"(?:{real}{any_}|{any_}{real}){any_}*")
            else:
                real, any_ = re2.escape(c), unit(c)
                out.append(f"{real}(?:{any_}{any_}+)?" if n == 1 else real * n)
        return "".join(out)

    if any(c not in _LOOKALIKES for c, _ in runs):
        return spelt(None)  # a letter with no stand-in is always there
    # RE2 has no look-ahead: spell out "at least one real letter" as one alternative per run.
    return "(?:" + "|".join(spelt(i) for i in range(len(runs))) + ")"


def _phrase_pattern(entry: str, disguised: bool) -> str:
    words = []
    for word in entry.split(" "):
        pieces = []
        for piece in word.split("'"):
            pieces.append(_disguised(piece) if disguised else _plain(piece))
        words.append("['\u2019]".join(pieces))
    return r"\s+".join(words)
