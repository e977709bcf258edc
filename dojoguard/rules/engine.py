"""Evaluating actions against a loaded policy: deny-overrides with an explicit default.

Every rule that could match is tested, every match is listed, and the
strictest verdict wins; when nothing matches (or every match was exempted),
the policy's default decides. Evaluation only matches: everything it needs
was compiled when the policy was loaded (see ``loader``).
"""

from __future__ import annotations

import os
import zoneinfo
from dataclasses import dataclass, replace
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dojoguard.rules import textform
from dojoguard.rules.action import Action, Kind
from dojoguard.rules.calendar import SchoolCalendar
from dojoguard.rules.conditions import NEEDS_COMBINATIONS, Test
from dojoguard.rules.decision import Alert, Decision, Match, Verdict
from dojoguard.rules.facts import Facts, Indexes, carries
from dojoguard.rules.history import History
from dojoguard.rules.phrases import WordList
from dojoguard.rules.window import Window

if TYPE_CHECKING:
    from dojoguard.rules.exemptions import Exemptions

# Decision ids: 128 random bits each (0.5 us, the getrandom system call). Random from the first character:
# a teacher reads out the first 8 as the reference (``dojoguard.references``). Ids were once a random
# per-run prefix and a counter, cheaper by 0.25 us, but then every decision of a run began alike.


def _next_id() -> str:
    return os.urandom(16).hex()


@dataclass(frozen=True)
class Rule:
    id: str
    verdict: Verdict
    notice: str
    clause: str
    description: str
    test: Test
    # The kinds of action this rule can match (None: any kind); used to skip rules.
    kinds: frozenset[Kind] | None
    # What an action must carry (conditions.NEEDS_* bits) for this rule to have a chance.
    needs: int
    release_window: Window | None = None
    exemptable: bool = True
    file: str = ""
    line: int = 0
    # The Match this rule contributes, built once.
    match: Match | None = None
    # The TextIndex keys of the `language:` lists the rule's condition uses (outside any `not`).
    language: tuple[tuple, ...] = ()
    # The condition as written (for checks of the policy, e.g. `rules check`'s warnings), never evaluated.
    when: dict | None = None


@dataclass(frozen=True)
class LanguageCheck:
    """One rule's language lists, as a test of any text (for texts that are not a teacher's action).

    ``test(text)`` is true when the text holds a word of the rule's `language:`
    lists (disguised spellings included); nothing else of the rule is tested.
    ``alert`` is the rule's own (None: the rule names nobody).
    """

    rule_id: str
    test: Callable[[str], bool]
    alert: Alert | None


class Policy:
    """A loaded, checked policy, ready to evaluate actions. Immutable once built."""

    def __init__(self, *, name: str, revision: str, rules: tuple[Rule, ...], default_verdict: Verdict,
                 default_notice: str, windows: dict[str, Window], lists: dict[str, WordList],
                 timezone: zoneinfo.ZoneInfo, calendar: SchoolCalendar, files: tuple[Path, ...],
                 indexes: Indexes, devices=None, tallies: tuple = (), strike_rules: frozenset[str] = frozenset(),
                 checks: tuple = (), uses_class_names: bool = False, base_files: frozenset[str] = frozenset(),
                 default_file: str = ""):
        self.name = name
        # The files of the trust's base rules (the setting rules.base) among ``files``; empty without a base.
        self.base_files = base_files
        # The rule file whose `default` is in force.
        self.default_file = default_file
        # Whether a condition names classes (`class: {in: ...}`): only then need actions carry a class's name.
        self.uses_class_names = uses_class_names
        # What the counting conditions count (conditions.Tally), the rules that test strikes, and the
        # scheduled checks (checks.Check).
        self.tallies = tallies
        self.strike_rules = strike_rules
        self.checks = checks
        # The device groups the rules test against (DeviceGroups: networks and where each came from).
        self.devices = devices
        self.revision = revision
        self.rules = rules
        self.default_verdict = default_verdict
        self.default_notice = default_notice
        self.windows = windows
        self.lists = lists
        self.timezone = timezone
        self.calendar = calendar
        # Every file read to build this policy (for reload watchers).
        self.files = files
        self._indexes = indexes
        self._by_id = {rule.id: rule for rule in rules}
        searches = indexes.text.searches
        self._language_checks = tuple(
            LanguageCheck(rule.id, _text_test(tuple(searches[k] for k in rule.language if k in searches)),
                          rule.match.alert if rule.match is not None else None)
            for rule in rules if rule.language)
        # Parse once, evaluate many: for each kind of action and each combination
        # of what it carries, the rules that could possibly match, in file order.
        # Pairs of (test, rule), so the loop does no attribute lookups.
        self._candidates = {
            kind: [tuple((r.test, r) for r in rules
                         if (r.kinds is None or kind in r.kinds) and r.needs & bits == r.needs)
                   for bits in range(NEEDS_COMBINATIONS)]
            for kind in Kind}

    def rule(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    def from_base(self, rule: Rule) -> bool:
        """Whether ``rule`` is one of the trust's base rules rather than the school's own."""
        return rule.file in self.base_files

    def found_in_text(self, text: str) -> list[tuple[tuple, str]]:
        """Each text test (phrase list, language list, pattern) that finds something in ``text``, with what
        it found as it was written: "ｓｈｉｔ", not the "shit" it was matched as. For people checking a
        rule (`dojoguard decide`), never for records."""
        if not text:
            return []
        safe = text.encode("utf-8", "replace").decode("utf-8")
        form = textform.normalise(safe)
        found = []
        for key, search in self._indexes.text.searches.items():
            match = search(form)
            if match is not None:
                # The match includes the character before and after (whole words): trim them.
                found.append((key, textform.original(safe, match.start(), match.end()).strip(_EDGES)))
        return found

    def language_checks(self) -> tuple[LanguageCheck, ...]:
        """The rules whose condition uses `language:`, each as a test of a text, in file order.

        The tests reuse the patterns compiled when the policy was loaded: only
        the rule's language lists are tested, not its kinds, devices or times.
        """
        return self._language_checks

    def evaluate(self, action: Action, exemptions: "Exemptions | None" = None,
                 history: History | None = None) -> Decision:
        """The decision for ``action``: every matching rule, the strictest verdict, and why.

        ``history`` is what counting conditions count earlier actions in; without it only the action
        itself is counted. Call ``remember`` with the decision afterwards so the next action counts this one.
        """
        facts = Facts(action, self._indexes, history)
        candidates = self._candidates[action.kind][carries(action, facts)]
        matched = [rule for test, rule in candidates if test(action, facts)]
        decision_id = _next_id()
        applied: list[Rule] = matched
        exempted: tuple[Match, ...] = ()
        used: tuple[str, ...] = ()
        if matched and exemptions is not None and exemptions.records:
            applied, exempted, used = _exempt(matched, action, exemptions)
        if not applied:
            return Decision.of(verdict=self.default_verdict, matches=(), policy_revision=self.revision, at=action.at,
                               notice=self.default_notice, exemptions_used=used, exempted=exempted, by_default=True,
                               release_at=None, decision_id=decision_id)
        verdict = applied[0].verdict
        for rule in applied:
            if rule.verdict.strictness > verdict.strictness:
                verdict = rule.verdict
        notices = []
        for rule in applied:
            if rule.verdict is verdict and rule.notice not in notices:
                notices.append(rule.notice)
        release_at = None
        if verdict is Verdict.DEFER:
            release_at, verdict, notices = self._release(action, applied, notices)
        return Decision.of(verdict=verdict, matches=tuple(r.match for r in applied), policy_revision=self.revision,
                           at=action.at, notice="\n".join(notices), exemptions_used=used,
                           exempted=exempted, by_default=False, release_at=release_at,
                           decision_id=decision_id)

    def remember(self, action: Action, decision: Decision, history: History) -> int:
        """Count ``action`` in ``history`` for every tally it belongs to; returns how many it was added to.

        A counting tally counts actions that go out (allowed, warned, redacted) or are queued to (deferred);
        a strikes tally counts the teacher's blocked actions, except blocks by rules that test strikes
        themselves (a teacher blocked for their strikes does not earn more by trying again).
        """
        if not self.tallies:
            return 0
        verdict = decision.verdict
        goes_out = verdict.forwards or verdict is Verdict.DEFER
        blocked_by = {m.rule_id for m in decision.matches if m.verdict is Verdict.BLOCK} \
            if verdict is Verdict.BLOCK else set()
        facts = Facts(action, self._indexes, history)
        at = action.at.timestamp()
        added = 0
        for tally in self.tallies:
            if tally.strikes:
                rules = blocked_by - self.strike_rules
                if tally.strikes is not True:
                    rules &= set(tally.strikes)
                if not rules:
                    continue
            elif not goes_out or not tally.test(action, facts):
                continue
            history.add(tally.id, tally.key(action), at)
            added += 1
        return added

    def _release(self, action: Action, applied: list[Rule], notices: list[str]):
        try:
            release_at = max(rule.release_window.next_opening(action.at)  # type: ignore[union-attr]
                             for rule in applied if rule.verdict is Verdict.DEFER)
        except ValueError:
            # The window never opens again (the calendar closes it for years):
            # nothing can be released, so a person must look at it.
            return None, Verdict.HOLD, notices + ["It has been passed to a senior leader because the "
                                                  "window it waits for does not open again."]
        return release_at, Verdict.DEFER, notices


_EDGES = " \t\r\n.,;:?\"'()[]"


def _text_test(searches: tuple[Callable[[str], Any], ...]) -> Callable[[str], bool]:
    def test(text: str) -> bool:
        if not text:
            return False
        text = textform.normalise(text)  # as the engine matches an action's text
        try:
            return any(search(text) is not None for search in searches)
        except UnicodeEncodeError:
            # A lone surrogate cannot be UTF-8: search the text with it replaced, as Facts does.
            text = text.encode("utf-8", "replace").decode("utf-8")
            return any(search(text) is not None for search in searches)
    return test


def _exempt(matched: list[Rule], action: Action,
            exemptions: "Exemptions") -> tuple[list[Rule], tuple[Match, ...], tuple[str, ...]]:
    """The matched rules that still apply, the matches exemptions switched off, and the exemptions used."""
    applied: list[Rule] = []
    exempted: list[Match] = []
    used: list[str] = []
    for rule in matched:
        exemption = exemptions.covering(rule.id, action) if rule.exemptable else None
        if exemption is None:
            applied.append(rule)
        else:
            exempted.append(replace(rule.match, exempted_by=exemption.id))
            if exemption.id not in used:
                used.append(exemption.id)
    return applied, tuple(exempted), tuple(used)
