"""What the engine works out about one action, and the compiled text tests it asks.

``Facts`` is built per evaluation and computes each thing at most once, and
only if a rule asks. ``TextIndex`` holds every phrase, word and pattern test
of a policy behind one screening pattern: most texts match nothing, and one
scan says so for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

from dojoguard.rules import textform
from dojoguard.rules.action import Action, Kind
from dojoguard.rules.conditions import (NEEDS_ATTACHMENTS, NEEDS_POINTS, NEEDS_PROBLEMS, NEEDS_TEXT,
                                        NEEDS_TEXT_HIT)
from dojoguard.rules.history import History
from dojoguard.rules.pattern import PatternError, compile_guarded


class Facts:
    """What rules ask about one action, each worked out at most once and only if asked."""

    __slots__ = ("action", "_indexes", "_screened", "_hits", "_text", "history")

    def __init__(self, action: Action, indexes: "Indexes", history: "History | None" = None):
        self.action = action
        # What counting conditions count (None: nothing earlier is known; only the action itself counts).
        self.history = history
        self._indexes = indexes
        self._screened: bool | None = None
        self._hits: dict | None = None
        self._text = action.text

    def screened(self) -> bool:
        """Whether the text screen found anything at all (False: no text test can hold)."""
        screened = self._screened
        if screened is None:
            text = self._text
            screen = self._indexes.text.screen
            if not text:
                screened = False
            elif screen is None:
                self._text = textform.normalise(text)
                screened = True
            else:
                # Every text test sees the text with its disguises undone (``textform``). The screen
                # also finds what plain ASCII text would need undone (spaced or tripled letters), so
                # most texts pass one scan and are never normalised.
                ascii_ = text.isascii()
                if not ascii_:
                    text = self._text = textform.normalise(text)
                try:
                    screened = screen(text) is not None
                except UnicodeEncodeError:
                    # A lone surrogate (JSON allows "\ud800") cannot be UTF-8: search
                    # the text with it replaced, rather than fail.
                    text = self._text = text.encode("utf-8", "replace").decode("utf-8")
                    screened = screen(text) is not None
                if screened and ascii_:
                    normal = textform.normalise(text)
                    if normal is not text:
                        text = self._text = normal
                        screened = screen(text) is not None
            self._screened = screened
        return screened

    def incomplete(self) -> bool:
        """Whether the action could not be judged completely: the proxy could not read all of it, or its date
        is one the school calendar does not cover and a window asks for that to count as incomplete."""
        if self.action.problems:
            return True
        uncovered = self._indexes.uncovered
        return uncovered is not None and uncovered(self.action)

    def text_hit(self, key: tuple) -> bool:
        """Whether the text test ``key`` (a phrase list, word list or pattern) finds something."""
        if not self.screened():
            return False
        hits = self._hits
        if hits is None:
            hits = self._hits = {}
        found = hits.get(key)
        if found is None:
            found = hits[key] = self._indexes.text.searches[key](self._text) is not None
        return found


class TextIndex:
    """Every text test of a policy, plus one screening pattern that is all of them at once.

    Most texts match nothing, and for them one scan answers every phrase,
    word and pattern condition. Only when the screen finds something is each
    test run on its own, and then only the ones a rule asks about.
    """

    def __init__(self):
        self.patterns: dict[tuple, str] = {}
        self.searches: dict[tuple, Callable[[str], Any]] = {}
        self.screen: Callable[[str], Any] | None = None

    def add(self, key: tuple, pattern: str) -> tuple:
        self.patterns.setdefault(key, pattern)
        return key

    def build(self) -> list[tuple]:
        """Compile every test and the screen; returns the keys that could not be compiled."""
        failed = []
        for key, pattern in self.patterns.items():
            try:
                self.searches[key] = compile_guarded(pattern, limit=None).search
            except PatternError:
                failed.append(key)
        if self.patterns and not failed:
            try:
                combined = compile_guarded("|".join(f"(?:{p})" for p in (*self.patterns.values(), textform.WORK)),
                                           limit=None)
            except PatternError:
                # Too big to combine: every text then goes through each test (slower, never wrong).
                self.screen = None
            else:
                self.screen = _fast_search(combined)
        return failed


def _fast_search(compiled) -> Callable[[str], Any]:
    """``compiled.search`` without the wrapper's match-object generator, when the binding allows.

    Only "is there a match?" is needed from the screen; the public ``search``
    builds a generator and a match object per call, which measured as half
    the cost of screening a short message. Falls back to it if the binding
    changes shape.
    """
    raw = getattr(compiled, "_regexp", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    if raw is None or anchor is None or not hasattr(raw, "Match"):
        return compiled.search
    no_match = (-1, -1)

    def search(text: str):
        data = text.encode("utf-8")
        return None if raw.Match(anchor, data, 0, len(data))[0] == no_match else True

    try:
        for probe in ("x", "abc def 0123"):
            if (search(probe) is None) != (compiled.search(probe) is None):
                return compiled.search
    except Exception:  # noqa: BLE001 - whatever the fast path fails with, the library's own search still works
        return compiled.search
    return search


class Indexes:
    """What every condition of a policy shares at evaluation: the compiled text tests, and whether an action's
    date is one a window set to `outside_calendar: incomplete` cannot judge (the action is then incomplete)."""

    def __init__(self):
        self.text = TextIndex()
        self.uncovered: Callable[[Action], bool] | None = None


def carries(action: Action, facts: Facts) -> int:
    """The NEEDS_* bits this action satisfies (screening its text, once, if it has any)."""
    bits = ((NEEDS_ATTACHMENTS if action.attachments else 0) | (NEEDS_PROBLEMS if facts.incomplete() else 0)
            | (NEEDS_POINTS if action.points is not None or action.kind is Kind.POINTS_AWARD else 0))
    if action.text:
        bits |= NEEDS_TEXT | (NEEDS_TEXT_HIT if facts.screened() else 0)
    return bits
