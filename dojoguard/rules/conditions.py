"""Compiling rule conditions, once at load, into small functions of (action, facts).

Parse once, evaluate many: every name a condition uses (window, list, group)
is looked up here, so evaluation never fails on a missing name and never
parses anything. Several keys in one condition mapping must all hold; they
are tested cheapest first.

Missing data never silently allows: a condition that asks "is this outside
the allowed set?" is true when the value is unknown (``skill_not_in``,
``not_in_group``, ``image: check_incomplete``), and a condition that asks
"is this in the allowed set?" is false.

Each condition key is declared once, with ``@condition`` on the function
that compiles it: what it costs to test, what an action must carry for it
to hold, and which kinds of action it can hold for. ``CONDITIONS`` lists
them. A new condition is declared here, added to the ``condition``
definition of ``schema.json`` and to the conditions table of docs/rules.md,
and given a sample value in tests/rules/test_conditions.py: tests check
that all four agree and that what it declares never hides a match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import hashlib
import json
import operator
from datetime import timedelta
from zoneinfo import ZoneInfo

from dojoguard.rules.action import Action, AttachmentKind, Audience, Channel, Kind, Points, StartedBy
from dojoguard.rules.codes import Code
from dojoguard.rules.history import UNKNOWN_KEY
from dojoguard.rules.spans import Span, SpanError, duration, parse_span
from dojoguard.rules.pattern import PatternError, compile_guarded
from dojoguard.rules.phrases import list_pattern, normalise
from dojoguard.rules.window import Window
from dojoguard.schemaproblems import did_you_mean
from dojoguard.yamlfile import Located, Problem

if TYPE_CHECKING:
    from dojoguard.rules.devices import DeviceGroups
    from dojoguard.rules.facts import Facts, TextIndex

Test = Callable[[Action, "Facts"], bool]

_UNKNOWN_POINTS = Points()
# The kinds of action that are on a story post: `on` holds for no other.
_ON_KINDS = frozenset({Kind.COMMENT_POST, Kind.ATTACHMENT_UPLOAD})

# What an action must carry for a condition to have any chance of holding.
# NEEDS_TEXT_HIT: the text screen found something (a phrase, word or pattern).
NEEDS_ATTACHMENTS, NEEDS_PROBLEMS, NEEDS_POINTS, NEEDS_TEXT, NEEDS_TEXT_HIT = 1, 2, 4, 8, 16
NEEDS_COMBINATIONS = 32


@dataclass(frozen=True)
class Condition:
    """One condition key of the rule language: how it is compiled, and what the engine may assume of it.

    ``cost`` orders the tests of one mapping, cheapest first: 0 attribute
    compares, 1 small walks (points, attachments, groups), 2 network lookups,
    3 the clock, 4 nested conditions, 5 text lists, 6 patterns. ``needs`` is
    what an action must carry for the condition to hold (NEEDS_* bits, or a
    function of the condition's value giving them); ``kinds`` gives, from the
    value, the kinds of action it can hold for (None: any kind). Both let the
    engine skip rules without testing them, so they must never leave out an
    action the condition could hold for.
    """

    key: str
    compile: Callable[["Compiler", Any, tuple], Test]
    cost: int
    needs: int | Callable[[Any], int] = 0
    kinds: Callable[[Any], frozenset[Kind] | None] | None = None


CONDITIONS: dict[str, Condition] = {}


def condition(key: str, *, cost: int, needs: int | Callable[[Any], int] = 0,
              kinds: Callable[[Any], frozenset[Kind] | None] | None = None):
    """Declares the decorated ``Compiler`` method as the compiler of condition ``key`` (see ``Condition``)."""
    def declare(compile: Callable[["Compiler", Any, tuple], Test]):
        if key in CONDITIONS:
            raise ValueError(f"condition {key!r} is declared twice")
        CONDITIONS[key] = Condition(key, compile, cost, needs, kinds)
        return compile
    return declare


def kinds_of(cond: dict) -> frozenset[Kind] | None:
    """The kinds an action must have for ``cond`` to hold, or None when any kind might."""
    return _narrowest(c.kinds(value) if c.kinds else None for c, value in _declared(cond))


def needs_of(cond: dict) -> int:
    """The NEEDS_* bits an action must carry for ``cond`` to hold (0: none known)."""
    bits = 0
    for c, value in _declared(cond):
        bits |= c.needs(value) if callable(c.needs) else c.needs
    return bits


def _declared(cond: dict) -> Iterable[tuple[Condition, Any]]:
    return ((CONDITIONS[key], value) for key, value in cond.items())


def _narrowest(found: Iterable[frozenset[Kind] | None]) -> frozenset[Kind] | None:
    """The kinds every one of these allows (None: no limit)."""
    narrowest = None
    for kinds in found:
        if kinds is not None:
            narrowest = kinds if narrowest is None else narrowest & kinds
    return narrowest


def _kinds_of_every(conds: list[dict]) -> frozenset[Kind] | None:
    return _narrowest(kinds_of(c) for c in conds)


def _kinds_of_any(conds: list[dict]) -> frozenset[Kind] | None:
    children = [kinds_of(c) for c in conds]
    if any(c is None for c in children):
        return None
    return frozenset().union(*children)


def _many(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def _kinds_named(value) -> frozenset[Kind]:
    return frozenset(Kind(v) for v in _many(value))


def _needs_of_every(conds: list[dict]) -> int:
    bits = 0
    for c in conds:
        bits |= needs_of(c)
    return bits


def _needs_of_any(conds: list[dict]) -> int:
    common = ~0
    for c in conds:
        common &= needs_of(c)
    return common


class Compiler:
    """Builds tests from condition mappings, adding a problem for every unknown name."""

    def __init__(self, located: Located, *, windows: dict[str, Window], lists: dict[str, tuple[str, ...]],
                 devices: DeviceGroups, teacher_groups: dict[str, frozenset[str]], problems: list[Problem],
                 text: TextIndex, tallies: dict[str, "Tally"] | None = None,
                 timezone: ZoneInfo | None = None):
        self.located = located
        # Every tally the policy's counting conditions use, shared by the compilers of all its files.
        self.tallies = {} if tallies is None else tallies
        self.timezone = timezone or ZoneInfo("Europe/London")
        # Whether the rule being compiled tests strikes (its own blocks are then not strikes).
        self.strikes_used = False
        # Whether any condition names classes by `in`/`not_in` (so an action needs its class's name).
        self.class_names_used = False
        # The rule ids `strikes: {rules: [...]}` names, with where: checked once every rule is known.
        self.strike_rule_refs: list[tuple[tuple, str]] = []
        self.text = text
        self.windows = windows
        self.lists = lists
        self.devices = devices
        self.teacher_groups = teacher_groups
        self.problems = problems
        self.windows_used: set[str] = set()
        # The compiled language-list tests (TextIndex keys) of the rule being compiled, outside any `not`:
        # the loader resets it per rule, so a policy can name the language checks of each rule.
        self.language_used: list[tuple] = []
        self._negated = 0

    # -- names ------------------------------------------------------------

    def _name(self, path: tuple, name: str, known: dict, what: str) -> bool:
        if name in known:
            return True
        label = what.replace("_", " ")
        hint = did_you_mean(name, known) or \
            (f"Defined {label}s: {', '.join(sorted(known))}." if known else f"Define it under `{what}s:`.")
        self.problems.append(self.located.problem(path, Code.RULES_UNDEFINED, f"no {label} named {name!r}", hint))
        return False

    def _names(self, path: tuple, value: Any, known: dict, what: str) -> frozenset[str]:
        names = [value] if isinstance(value, str) else list(value)
        for i, name in enumerate(names):
            self._name(path if isinstance(value, str) else path + (i,), name, known, what)
        return frozenset(names)

    # -- conditions -------------------------------------------------------

    def compile(self, cond: dict, path: tuple, *, root: bool = False) -> Test:
        """The test for ``cond``. At a rule's root, ``kind`` is left out: the engine only
        offers a rule actions of the kinds it names (see ``kinds_of``)."""
        declared = [(CONDITIONS[key], value) for key, value in cond.items() if not (root and key == "kind")]
        tests = [(c.cost, c.compile(self, value, path + (c.key,))) for c, value in declared]
        if not tests:
            return _always
        tests.sort(key=lambda pair: pair[0])
        return _all([t for _, t in tests])

    @condition("kind", cost=0, kinds=_kinds_named)
    def _kind(self, value, path) -> Test:
        kinds = _kinds_named(value)
        return lambda a, f: a.kind in kinds

    @condition("channel", cost=0)
    def _channel(self, value, path) -> Test:
        channels = frozenset(Channel(v) for v in _many(value))
        return lambda a, f: a.channel in channels

    @condition("inside", cost=3)
    def _inside(self, value, path) -> Test:
        window = self._window(value, path)
        return lambda a, f: window is not None and window.is_open_at(a.at)

    @condition("outside", cost=3)
    def _outside(self, value, path) -> Test:
        window = self._window(value, path)
        return lambda a, f: window is None or not window.is_open_at(a.at)

    def _window(self, name: str, path: tuple) -> Window | None:
        self.windows_used.add(name)
        return self.windows[name] if self._name(path, name, self.windows, "window") else None

    @condition("text_longer_than", cost=1, needs=NEEDS_TEXT)
    def _text_longer_than(self, value, path) -> Test:
        limit = int(value)
        return lambda a, f: a.text is not None and (len(a.text) if a.text_chars is None else a.text_chars) > limit

    @condition("phrases", cost=5, needs=NEEDS_TEXT | NEEDS_TEXT_HIT)
    def _phrases(self, value, path) -> Test:
        return self._text_lists(value, path, disguised=False)

    @condition("language", cost=5, needs=NEEDS_TEXT | NEEDS_TEXT_HIT)
    def _language(self, value, path) -> Test:
        return self._text_lists(value, path, disguised=True)

    def _text_lists(self, value, path, *, disguised: bool) -> Test:
        kind = "language" if disguised else "phrases"
        keys = tuple(self.text.add((kind, name), list_pattern(self.lists[name], disguised=disguised))
                     for name in sorted(self._names(path, value, self.lists, "list")) if self.lists.get(name))
        if disguised and not self._negated:
            self.language_used.extend(k for k in keys if k not in self.language_used)
        if len(keys) == 1:
            key = keys[0]
            return lambda a, f: f.text_hit(key)
        return lambda a, f: any(f.text_hit(k) for k in keys)

    @condition("regex", cost=6, needs=NEEDS_TEXT | NEEDS_TEXT_HIT)
    def _regex(self, value, path) -> Test:
        try:
            compile_guarded(value)
        except PatternError as exc:
            code = Code.RULES_REGEX_LENGTH if exc.too_long else Code.RULES_REGEX
            hint = ("Shorten the pattern, or use a phrase list for long lists of words." if exc.too_long else
                    "Patterns use RE2 syntax: no look-ahead, look-behind or back-references (\\1). "
                    "See docs/rules.md, `regex`.")
            self.problems.append(self.located.problem(path, code, str(exc), hint))
            return lambda a, f: False
        key = self.text.add(("regex", value), value)
        return lambda a, f: f.text_hit(key)

    @condition("points", cost=1, needs=NEEDS_POINTS)
    def _points(self, value: dict, path) -> Test:
        tests: list[Test] = []
        if "sign" in value:
            signs = frozenset(_many(value["sign"]))
            tests.append(lambda a, f: _sign(_points_of(a)) in signs)
        if "skill_in" in value:
            entries = self._skills(value["skill_in"], path + ("skill_in",))
            tests.append(lambda a, f: (p := _points_of(a)) is not None and p.skill is not None
                         and normalise(p.skill) in entries)
        if "skill_not_in" in value:
            entries = self._skills(value["skill_not_in"], path + ("skill_not_in",))
            tests.append(lambda a, f: (p := _points_of(a)) is not None
                         and (p.skill is None or normalise(p.skill) not in entries))
        if "unknown" in value:
            wanted = bool(value["unknown"])
            tests.append(lambda a, f: (p := _points_of(a)) is not None
                         and (p.value is None and p.skill is None) == wanted)
        return _all(tests)

    def _skills(self, name: str, path: tuple) -> frozenset[str]:
        return frozenset(self.lists[name]) if self._name(path, name, self.lists, "list") else frozenset()

    @condition("device", cost=2)
    def _device(self, value: dict, path) -> Test:
        devices = self.devices
        tests: list[Test] = []
        if "in_group" in value:
            names = self._names(path + ("in_group",), value["in_group"], devices.groups, "device_group")
            tests.append(lambda a, f: not names.isdisjoint(devices.of(a.device_address)))
        if "not_in_group" in value:
            names = self._names(path + ("not_in_group",), value["not_in_group"], devices.groups, "device_group")
            tests.append(lambda a, f: names.isdisjoint(devices.of(a.device_address)))
        if "unknown" in value:
            wanted = bool(value["unknown"])
            tests.append(lambda a, f: (not devices.is_known(a.device_address)) == wanted)
        return _all(tests)

    @condition("teacher", cost=1)
    def _teacher(self, value: dict, path) -> Test:
        tests: list[Test] = []
        for key, inside in (("in_group", True), ("not_in_group", False)):
            if key in value:
                names = self._names(path + (key,), value[key], self.teacher_groups, "teacher_group")
                ids = frozenset().union(*(self.teacher_groups.get(n, ()) for n in names))
                if inside:
                    tests.append(lambda a, f, ids=ids: a.teacher_id is not None and a.teacher_id in ids)
                else:
                    tests.append(lambda a, f, ids=ids: a.teacher_id is None or a.teacher_id not in ids)
        if "role" in value:
            # An unknown teacher has no role: "only leaders may ..." then refuses them.
            roles = frozenset(_many(value["role"]))
            tests.append(lambda a, f: a.teacher_roles is not None and not roles.isdisjoint(a.teacher_roles))
        if "unknown" in value:
            wanted = bool(value["unknown"])
            tests.append(lambda a, f: (a.teacher_id is None and a.teacher_roles is None) == wanted)
        return _all(tests)

    @condition("class", cost=1)
    def _class(self, value: dict, path) -> Test:
        tests: list[Test] = []
        for key, inside in (("in", True), ("not_in", False)):
            if key in value:
                self.class_names_used = True
                # Ids or names: a class matches by its ClassDojo id or by its name (case and spacing aside).
                wanted = frozenset(normalise(v) for v in _many(value[key])) | frozenset(_many(value[key]))
                if inside:
                    tests.append(lambda a, f, w=wanted: _class_in(a, w))
                else:
                    # A class not known is not known to be outside the list: only a known class is "not in".
                    tests.append(lambda a, f, w=wanted: (a.class_id is not None or a.class_name is not None)
                                 and not _class_in(a, w))
        if "taught_by_author" in value:
            if value["taught_by_author"]:
                tests.append(lambda a, f: a.class_id is not None and a.teacher_classes is not None
                             and a.class_id in a.teacher_classes)
            else:
                # Unknown class or unknown classes of the teacher: not known to be theirs.
                tests.append(lambda a, f: a.class_id is None or a.teacher_classes is None
                             or a.class_id not in a.teacher_classes)
        if "unknown" in value:
            wanted = bool(value["unknown"])
            tests.append(lambda a, f: (a.class_id is None) == wanted)
        return _all(tests)

    @condition("audience", cost=0)
    def _audience(self, value, path) -> Test:
        audiences = frozenset(Audience(v) for v in _many(value))
        return lambda a, f: a.audience in audiences

    @condition("on", cost=0, kinds=lambda value: _ON_KINDS)
    def _on(self, value, path) -> Test:
        wanted = frozenset(_many(value))
        channels = frozenset(Channel(v) for v in wanted - {"unknown"})
        unknown = "unknown" in wanted
        return lambda a, f: a.kind in _ON_KINDS and (
            (a.on_channel in channels) if a.on_channel is not None else unknown)

    @condition("reply", cost=1, kinds=lambda value: frozenset({Kind.MESSAGE_SEND}))
    def _reply(self, value: dict, path) -> Test:
        tests: list[Test] = [lambda a, f: a.kind is Kind.MESSAGE_SEND]
        if "started_by" in value:
            wanted = frozenset(_many(value["started_by"]))
            starters = frozenset(StartedBy(v) for v in wanted - {"unknown"})
            unknown = "unknown" in wanted
            tests.append(lambda a, f: (a.reply.started_by in starters)
                         if a.reply is not None and a.reply.started_by is not None else unknown)
        for key, longer in (("parent_waiting_more_than", True), ("parent_waiting_less_than", False)):
            if key in value:
                limit = self._duration(value[key], path + (key,))
                if longer:
                    tests.append(lambda a, f, d=limit: _waited(a) is not None and _waited(a) > d)
                else:
                    tests.append(lambda a, f, d=limit: _waited(a) is not None and _waited(a) < d)
        if "unknown" in value:
            # Unknown: the thread was not read through the proxy, so whether a parent is waiting is not known.
            wanted = bool(value["unknown"])
            tests.append(lambda a, f: (a.reply is None or (a.reply.parent_wrote_at is None
                                                           and not a.reply.nobody_waiting)) == wanted)
        return _all(tests)

    def _duration(self, text: str, path: tuple) -> timedelta:
        try:
            return duration(text)
        except SpanError as exc:
            self.problems.append(self.located.problem(path, Code.RULES_SPAN, str(exc),
                                                      'Write a length such as "48 hours" or "2 days".'))
            return timedelta(0)

    def _span(self, text: str, path: tuple) -> Span:
        try:
            return parse_span(text)
        except SpanError as exc:
            self.problems.append(self.located.problem(path, Code.RULES_SPAN, str(exc),
                                                      'Write "48 hours", "7 days", "1 week", "today", "this week" '
                                                      'or "this month" (at most 32 days).'))
            return parse_span("1 day")

    @condition("count", cost=2)
    def _count(self, value: dict, path) -> Test:
        tally = self.tally(value["of"], value.get("per", []), path)
        span = self._span(value["within"], path + ("within",))
        compare, limit = comparison(value)
        tz = self.timezone
        of, tally_id, key_of = tally.test, tally.id, tally.key

        def count(a, f) -> bool:
            n = 1 if of(a, f) else 0
            history = f.history
            if history is not None:
                n += history.count(tally_id, key_of(a), span.start(a.at, tz), a.at.timestamp())
            return compare(n, limit)

        return count

    def tally(self, of: dict, per: Any, path: tuple) -> "Tally":
        """The tally of actions matching ``of``, counted per ``per``, shared by every condition that names it."""
        if _names_count(of):
            self.problems.append(self.located.problem(path + ("of",), Code.RULES_COUNT,
                                                      "`count` and `strikes` cannot be used inside `of`",
                                                      "Count plain actions: `of` says which actions are counted."))
        per = tuple(_many(per))
        ident = hashlib.sha256(json.dumps({"of": of, "per": per}, sort_keys=True).encode()).hexdigest()[:16]
        tally = self.tallies.get(ident)
        if tally is None:
            tally = self.tallies[ident] = Tally(ident, self.compile(of, path + ("of",)), per)
        return tally

    @condition("strikes", cost=2)
    def _strikes(self, value: dict, path) -> Test:
        self.strikes_used = True
        named = _many(value.get("rules", []))
        self.strike_rule_refs.extend((path + ("rules",) if isinstance(value.get("rules"), str)
                                      else path + ("rules", i), rule_id) for i, rule_id in enumerate(named))
        rules = tuple(sorted(named))
        ident = "strikes:" + hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:12]
        tally = self.tallies.get(ident)
        if tally is None:
            tally = self.tallies[ident] = Tally(ident, _always, ("teacher",), strikes=rules or True)
        span = self._span(value["within"], path + ("within",))
        compare, limit = comparison(value)
        tz = self.timezone

        def strikes(a, f) -> bool:
            history = f.history
            n = 0 if history is None else history.count(ident, tally.key(a), span.start(a.at, tz), a.at.timestamp())
            return compare(n, limit)

        return strikes

    @condition("attachment", cost=1, needs=NEEDS_ATTACHMENTS)
    def _attachment(self, value, path) -> Test:
        kinds = frozenset(AttachmentKind(v) for v in _many(value))
        return lambda a, f: any(att.kind in kinds for att in a.attachments)

    @condition("image", cost=1, needs=NEEDS_ATTACHMENTS)
    def _image(self, value, path) -> Test:
        wanted = frozenset(_many(value))
        return lambda a, f: bool(a.attachments) and _image_matches(a, wanted)

    @condition("video", cost=1, needs=NEEDS_ATTACHMENTS)
    def _video(self, value, path) -> Test:
        wanted = frozenset(_many(value))
        return lambda a, f: bool(a.attachments) and _image_matches(a, wanted, AttachmentKind.VIDEO)

    @condition("unclassified", cost=0,
               kinds=lambda value: frozenset({Kind.UNCLASSIFIED_WRITE}) if value is True else None)
    def _unclassified(self, value, path) -> Test:
        wanted = bool(value)
        return lambda a, f: (a.kind is Kind.UNCLASSIFIED_WRITE) == wanted

    @condition("incomplete", cost=0, needs=lambda value: NEEDS_PROBLEMS if value is True else 0)
    def _incomplete(self, value, path) -> Test:
        wanted = bool(value)
        return lambda a, f: f.incomplete() == wanted

    @condition("all", cost=4, needs=_needs_of_every, kinds=_kinds_of_every)
    def _all(self, value, path) -> Test:
        return _all([self.compile(c, path + (i,)) for i, c in enumerate(value)])

    @condition("any", cost=4, needs=_needs_of_any, kinds=_kinds_of_any)
    def _any(self, value, path) -> Test:
        tests = [self.compile(c, path + (i,)) for i, c in enumerate(value)]

        def any_of(a, f):
            for test in tests:
                if test(a, f):
                    return True
            return False

        return any_of

    @condition("not", cost=4)
    def _not(self, value, path) -> Test:
        self._negated += 1
        try:
            test = self.compile(value, path)
        finally:
            self._negated -= 1
        return lambda a, f: not test(a, f)


def _always(a, f) -> bool:
    return True


@dataclass(frozen=True)
class Tally:
    """What one counting condition counts: actions passing ``test`` (sent, or queued to be), per ``per``.

    A strikes tally (``strikes`` set) counts the teacher's blocked actions instead: by the rules it names,
    or (True) by any rule that does not itself test strikes.
    """

    id: str
    test: Test
    per: tuple[str, ...]
    strikes: tuple[str, ...] | bool = ()

    def key(self, action: Action) -> str:
        parts = []
        for what in self.per:
            value = action.teacher_id if what == "teacher" else action.class_id
            parts.append(value or UNKNOWN_KEY)
        return "\x1f".join(parts) or "all"


_COMPARISONS = {"at_least": operator.ge, "more_than": operator.gt, "fewer_than": operator.lt,
                "at_most": operator.le}


def comparison(value: dict) -> tuple[Callable[[int, int], bool], int]:
    """The comparison a counting mapping names (exactly one of at_least, more_than, fewer_than, at_most)."""
    for key, compare in _COMPARISONS.items():
        if key in value:
            return compare, int(value[key])
    return operator.ge, 1


def _names_count(cond: Any) -> bool:
    if isinstance(cond, dict):
        return any(k in ("count", "strikes") or _names_count(v) for k, v in cond.items())
    if isinstance(cond, list):
        return any(_names_count(c) for c in cond)
    return False


def _class_in(action: Action, wanted: frozenset[str]) -> bool:
    return (action.class_id is not None and action.class_id in wanted) or \
        (action.class_name is not None and normalise(action.class_name) in wanted)


def _waited(action: Action) -> timedelta | None:
    reply = action.reply
    if reply is None or reply.parent_wrote_at is None:
        return None
    return action.at - reply.parent_wrote_at


def _all(tests: list[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]

    def all_of(a, f):
        for test in tests:
            if not test(a, f):
                return False
        return True

    return all_of


def _points_of(action: Action) -> Points | None:
    if action.points is not None:
        return action.points
    # An award whose points could not be read at all is an award of unknown points.
    return _UNKNOWN_POINTS if action.kind is Kind.POINTS_AWARD else None


def _sign(points: Points | None) -> str | None:
    if points is None:
        return None
    value = points.value
    if value is None:
        return "unknown"
    return "positive" if value > 0 else "negative" if value < 0 else "zero"


def _image_matches(action: Action, wanted: frozenset[str], kind: AttachmentKind = AttachmentKind.PHOTO) -> bool:
    for att in action.attachments:
        if att.kind is not kind:
            continue
        findings = att.findings
        if findings is None or not findings.is_complete:
            if "check_incomplete" in wanted:
                return True
            continue
        if ("faces_found" in wanted and findings.faces_found > 0
                or "faces_not_permitted" in wanted and findings.faces_not_permitted > 0
                or "faces_unidentified" in wanted and findings.faces_unidentified > 0
                or "people_unverified" in wanted and findings.people_unverified > 0
                or "gps_present" in wanted and findings.gps_present):
            return True
    return False
