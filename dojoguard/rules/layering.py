"""Trust-wide base rules: what a school's rule files may add to the base, and every way they may not weaken it.

A multi-academy trust keeps one folder of base rules (the setting
``rules.base``) that every school's policy includes. The policy in force is
the base's files and the school's (``rules.policy``) loaded together, base
first. Deny-overrides already means a school rule can never lower the
verdict of a base rule that matches; what is left is everything else a
school file could do to make a base rule match less, or decide less
strictly, and each of those is refused here as a load problem
(``DG-RULES-BASE``) naming the school's file and the base's item:

- reusing a base rule's id, or a base check's id;
- defining a window, list, device group or teacher group the base defines
  (the base's own definition would otherwise be refused as a duplicate, or
  the school's would decide what the base's rules mean);
- a ``default`` verdict less strict than the base's;
- a rule whose verdict is less strict than the base's ``default``: for an
  action no base rule matches, the base decides by its default, and a school
  rule that matches it would decide instead (deny-overrides compares the
  matching rules, not the default);
- a base rule or check naming a window, list, group or rule that only the
  school's files define (the school would decide what the base's rule tests);
- a ``bank_holidays`` region other than the base's when base windows close on
  bank holidays (the region says which days those are);
- a window with ``outside_calendar: incomplete`` when a base rule or check
  tests ``incomplete`` in a way such a window could turn off (it makes
  actions on dates the calendar does not cover count as incomplete, for
  every rule).

Verdicts are compared by the engine's own order (``Verdict.strictness``).
What the module does not decide: the deployment's settings (calendar, device
groups, staff roles, class names) are the school's and base rules rely on
them; docs/rules.md says so. Without a base nothing here runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dojoguard.rules.codes import Code
from dojoguard.rules.decision import Verdict
from dojoguard.yamlfile import Located, Problem

SETTING = "rules.base"

# The named definitions of a rule file: top-level section -> what one is called.
NAMED_SECTIONS = {"windows": "window", "lists": "list", "device_groups": "device group",
                  "teacher_groups": "teacher group"}
# The sections of ids (lists of items with an `id`).
ID_SECTIONS = {"rules": "rule", "checks": "scheduled check"}

# Condition keys that name a definition, and inside which mapping.
_NAMING = {"inside": "windows", "outside": "windows", "phrases": "lists", "language": "lists"}
_NAMING_INSIDE = {
    "points": {"skill_in": "lists", "skill_not_in": "lists"},
    "device": {"in_group": "device_groups", "not_in_group": "device_groups"},
    "teacher": {"in_group": "teacher_groups", "not_in_group": "teacher_groups"},
    "strikes": {"rules": "rules"},
}
_CALENDAR_CLOSURES = frozenset({"school_holidays", "inset_days", "closures"})
_DEFAULT_REGION = "england-and-wales"


def is_base(located: Located) -> bool:
    return bool(getattr(located, "base", False))


def crosses(earlier_file: str, located: Located, base_files: frozenset[str]) -> bool:
    """Whether a second definition is a school file's of something the base defines (reported here, not as a
    duplicate)."""
    return earlier_file in base_files and not is_base(located)


def weakenings(documents: list, device_overrides: dict[str, Any] | None = None) -> list[Problem]:
    """Every way the school's files weaken the base's: one problem each (empty without a base)."""
    base = [d for d in documents if is_base(d)]
    school = [d for d in documents if not is_base(d)]
    if not base or not school:
        return []
    problems: list[Problem] = []
    problems += _redefinitions(base, school)
    problems += _reused_ids(base, school)
    default = _base_default(base)
    if default is not None:
        problems += _defaults(default, school)
        problems += _rules_below_default(default, school)
    problems += _base_names_from_school(base, school, device_overrides or {})
    problems += _region(base, school)
    problems += _incomplete_windows(base, school, default)
    return problems


# -- names and ids ----------------------------------------------------------------

def _where(located: Located, path: tuple, *, key: bool = False) -> str:
    line = located.mark(path, key=key)[0]
    return f"{located.file}:{line}"


def _defined(documents: list, section: str) -> dict[str, Located]:
    """The names ``section`` defines in ``documents``, each with the file defining it first."""
    found: dict[str, Located] = {}
    for located in documents:
        for name in located.section(section, dict):
            found.setdefault(name, located)
    return found


def _redefinitions(base: list, school: list) -> list[Problem]:
    problems = []
    for section, label in NAMED_SECTIONS.items():
        defined = _defined(base, section)
        for located in school:
            for name in located.section(section, dict):
                if name in defined:
                    problems.append(located.problem(
                        (section, name), Code.RULES_BASE,
                        f"{label} {name!r} is defined by the trust's base rules "
                        f"({_where(defined[name], (section, name), key=True)}); a school file may not redefine it",
                        f"Use the base's {label} as it is, or define one of your own under another name "
                        f"(the base's rules keep using the base's).", key=True))
    return problems


def _ids(documents: list, section: str) -> Iterator[tuple[Located, tuple, str]]:
    for located in documents:
        for i, spec in enumerate(located.section(section, list)):
            if isinstance(spec, dict) and isinstance(spec.get("id"), str) and located.sound(section, i, "id"):
                yield located, (section, i), spec["id"]


def _reused_ids(base: list, school: list) -> list[Problem]:
    problems = []
    for section, label in ID_SECTIONS.items():
        first: dict[str, tuple[Located, tuple]] = {}
        for located, path, item_id in _ids(base, section):
            first.setdefault(item_id, (located, path))
        for located, path, item_id in _ids(school, section):
            if item_id in first:
                where = _where(*first[item_id])
                problems.append(located.problem(
                    path + ("id",), Code.RULES_BASE,
                    f"{label} id {item_id!r} is the trust's base {label} ({where}); a school {label} may not "
                    "reuse it", f"Give the school's {label} an id of its own: the base's {label} stays in force "
                    "as the trust wrote it, and a school cannot replace it."))
    return problems


def _base_names_from_school(base: list, school: list, device_overrides: dict) -> list[Problem]:
    """A base rule or check naming what only a school file defines would be the school's to decide."""
    known = {section: set(_defined(base, section)) for section in NAMED_SECTIONS}
    known["device_groups"] |= set(device_overrides)  # the settings' networks, not a school rule file's
    known["rules"] = {item_id for _, _, item_id in _ids(base, "rules")}
    school_defines = {section: _defined(school, section) for section in NAMED_SECTIONS}
    school_defines["rules"] = {item_id: located for located, _, item_id in _ids(school, "rules")}
    problems = []
    for located, path, section, name in _base_references(base):
        if name in known[section] or name not in school_defines[section]:
            continue  # the base's own, or defined nowhere (the loader says so)
        label = NAMED_SECTIONS.get(section, "rule")
        where = school_defines[section][name].file
        problems.append(located.problem(
            path, Code.RULES_BASE,
            f"the base names {label} {name!r}, which only the school's file {where} defines: a school file would "
            "decide what this base rule tests",
            f"Define {label} {name!r} in the base itself (each school's own networks go in its settings, "
            "`proxy.device_groups`)." if section == "device_groups" else
            f"Define {label} {name!r} in the base itself, or name one the base defines."))
    return problems


def _base_references(base: list) -> Iterator[tuple[Located, tuple, str, str]]:
    """(file, path, section, name) for every name a base rule or check uses, release windows included."""
    for located in base:
        for i, spec in enumerate(located.section("rules", list)):
            if not isinstance(spec, dict):
                continue
            for path, section, name in names_used(spec.get("when"), ("rules", i, "when")):
                yield located, path, section, name
            if isinstance(spec.get("release_window"), str):
                yield located, ("rules", i, "release_window"), "windows", spec["release_window"]
        for i, spec in enumerate(located.section("checks", list)):
            count = spec.get("count") if isinstance(spec, dict) else None
            if isinstance(count, dict):
                for path, section, name in names_used(count.get("of"), ("checks", i, "count", "of")):
                    yield located, path, section, name


def walk(cond: Any, path: tuple, sign: int = 1) -> Iterator[tuple[tuple, str, Any, int]]:
    """(path, key, value, sign) for every key of a condition and of the conditions inside it.

    ``sign`` is 1 where the key holding makes the rule more likely to match,
    -1 under a `not`, and 0 inside a `count`'s `of` (either way, by the comparison).
    """
    if not isinstance(cond, dict):
        return
    for key, value in cond.items():
        here = path + (key,)
        yield here, key, value, sign
        if key in ("all", "any") and isinstance(value, list):
            for i, child in enumerate(value):
                yield from walk(child, here + (i,), sign)
        elif key == "not":
            yield from walk(value, here, -sign)
        elif key == "count" and isinstance(value, dict):
            yield from walk(value.get("of"), here + ("of",), 0)


def names_used(cond: Any, path: tuple) -> Iterator[tuple[tuple, str, str]]:
    """(path, section, name) for every window, list, group and rule a condition names."""
    for here, key, value, _ in walk(cond, path):
        if key in _NAMING:
            yield from _each(here, _NAMING[key], value)
        elif key in _NAMING_INSIDE and isinstance(value, dict):
            for inner, section in _NAMING_INSIDE[key].items():
                if inner in value:
                    yield from _each(here + (inner,), section, value[inner])


def _each(path: tuple, section: str, value: Any) -> Iterator[tuple[tuple, str, str]]:
    if isinstance(value, str):
        yield path, section, value
    elif isinstance(value, list):
        for i, name in enumerate(value):
            if isinstance(name, str):
                yield path + (i,), section, name


# -- verdicts --------------------------------------------------------------------

def _verdict(value: Any) -> Verdict | None:
    try:
        return Verdict(value)
    except ValueError:
        return None


def _base_default(base: list) -> tuple[Verdict, Located] | None:
    """The base's default verdict and the file stating it (None: the base states none)."""
    for located in base:
        spec = located.data.get("default")
        if isinstance(spec, dict) and located.sound("default"):
            verdict = _verdict(spec.get("verdict"))
            if verdict is not None:
                return verdict, located
    return None


def _defaults(default: tuple[Verdict, Located], school: list) -> list[Problem]:
    verdict, where = default
    problems = []
    for located in school:
        spec = located.data.get("default")
        if not (isinstance(spec, dict) and located.sound("default")):
            continue
        stated = _verdict(spec.get("verdict"))
        if stated is not None and stated.strictness < verdict.strictness:
            problems.append(located.problem(
                ("default", "verdict"), Code.RULES_BASE,
                f"the school's default verdict {stated} is less strict than the trust's base default {verdict} "
                f"({_where(where, ('default', 'verdict'))})",
                f"State `default: {{verdict: {verdict}}}` or a stricter verdict, or leave `default` out and the "
                "base's applies. Verdicts from least to most strict: " + ", ".join(v.value for v in Verdict) + "."))
    return problems


def _rules_below_default(default: tuple[Verdict, Located], school: list) -> list[Problem]:
    """A school rule less strict than the base's default would decide, in its place, what no base rule matches."""
    verdict, where = default
    problems = []
    for located in school:
        for i, spec in enumerate(located.section("rules", list)):
            if not (isinstance(spec, dict) and located.sound("rules", i, "verdict")):
                continue
            stated = _verdict(spec.get("verdict"))
            if stated is not None and stated.strictness < verdict.strictness:
                problems.append(located.problem(
                    ("rules", i, "verdict"), Code.RULES_BASE,
                    f"verdict {stated} is less strict than the trust's base default {verdict} "
                    f"({_where(where, ('default', 'verdict'))}): for an action no base rule matches, this rule "
                    f"would {stated} what the base decides as {verdict}",
                    f"Use verdict {verdict} or a stricter one. Letting through what the base's default refuses "
                    "is the trust's to decide, with a rule in the base."))
    return problems


# -- bank holidays and the calendar -----------------------------------------------

def _region(base: list, school: list) -> list[Problem]:
    """The bank holidays base windows close on are the base's: a school may not name another region's."""
    closes = [(located, name) for located in base for name, spec in located.section("windows", dict).items()
              if isinstance(spec, dict) and "bank_holidays" in (spec.get("closed_on") or [])]
    if not closes:
        return []
    region, stated_in = _DEFAULT_REGION, None
    for located in base:
        if isinstance(located.data.get("bank_holidays"), str) and located.sound("bank_holidays"):
            region, stated_in = located.data["bank_holidays"], located
    problems = []
    for located in school:
        value = located.data.get("bank_holidays")
        if isinstance(value, str) and located.sound("bank_holidays") and value != region:
            said = f"states {region!r} ({_where(stated_in, ('bank_holidays',))})" if stated_in is not None else \
                f"leaves it at {region!r}, the default"
            window_file, window = closes[0]
            problems.append(located.problem(
                ("bank_holidays",), Code.RULES_BASE,
                f"bank_holidays {value!r} would change the days the base's window {window!r} "
                f"({_where(window_file, ('windows', window), key=True)}) closes on; the base {said}",
                "Leave `bank_holidays` out of the school's files. A trust whose schools are in different nations "
                "states the region in each nation's base."))
    return problems


def _incomplete_windows(base: list, school: list, default: tuple[Verdict, Located] | None) -> list[Problem]:
    """A school window that makes actions incomplete must not turn off a base rule that tests `incomplete`."""
    sensitive = list(_incomplete_tests(base, default))
    if not sensitive:
        return []
    problems = []
    for located in school:
        for name, spec in located.section("windows", dict).items():
            if not (isinstance(spec, dict) and spec.get("outside_calendar") == "incomplete"
                    and _CALENDAR_CLOSURES & set(spec.get("closed_on") or [])):
                continue
            base_file, path, what = sensitive[0]
            problems.append(located.problem(
                ("windows", name, "outside_calendar"), Code.RULES_BASE,
                f"window {name!r} makes actions on dates the calendar does not cover count as incomplete, "
                f"which would switch off the base's {what} ({base_file.file}:{base_file.mark(path)[0]}): it tests "
                "`incomplete` the other way", "Use `outside_calendar: closed` (the default) for the school's "
                "window."))
    return problems


def _incomplete_tests(base: list, default: tuple[Verdict, Located] | None) -> Iterator[tuple[Located, tuple, str]]:
    """The base's tests of `incomplete` that an action becoming incomplete could weaken.

    For a rule at least as strict as the base's default, one that stops
    matching (``incomplete: false``, or ``incomplete: true`` under a `not`);
    for a rule less strict than the default, one that starts matching; in a
    count or a scheduled check, any.
    """
    floor = default[0].strictness if default is not None else -1
    for located in base:
        for i, spec in enumerate(located.section("rules", list)):
            if not isinstance(spec, dict):
                continue
            verdict = _verdict(spec.get("verdict"))
            lenient = verdict is not None and verdict.strictness < floor
            for path, key, value, sign in walk(spec.get("when"), ("rules", i, "when")):
                if key != "incomplete":
                    continue
                matches_more = (value is True) == (sign > 0)  # when an action becomes incomplete
                if sign == 0 or matches_more == lenient:
                    yield located, path, f"rule {spec.get('id')!r}"
        for i, spec in enumerate(located.section("checks", list)):
            count = spec.get("count") if isinstance(spec, dict) else None
            if isinstance(count, dict):
                for path, key, _, _ in walk(count.get("of"), ("checks", i, "count", "of")):
                    if key == "incomplete":
                        yield located, path, f"scheduled check {spec.get('id')!r}"


# -- the files ---------------------------------------------------------------------

def shared_files(base_files: list[Path], files: list[Path]) -> list[Problem]:
    """A file both in the base and in the school's policy: one problem each (the two must be apart)."""
    base = {p.resolve(): p for p in base_files}
    return [Problem(Code.RULES_BASE, "this file is both in the trust's base rules (rules.base) and in the school's "
                                     "policy (rules.policy)", str(p),
                    hint="Keep the base in a folder of its own, apart from the school's rule files, and point "
                         "`rules.base` at it.")
            for p in files if p.resolve() in base]
