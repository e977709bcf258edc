"""Loading a policy: rule files, list files and calendar, checked and compiled in one go.

Loading is atomic: ``load_policy`` returns a complete new ``Policy`` or raises
``FileProblems`` with every problem of every file, so a running proxy can
keep its last good policy when an edit is broken. Every problem means every
one in one pass: a rule file that fails its schema is still built, all but
the parts the schema refused, so that its other mistakes (an undefined name,
a window that closes before it opens) are reported with its structure ones.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import zoneinfo
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from dojoguard import schemaproblems, yamlfile
from dojoguard.rules import codes, layering
from dojoguard.rules.calendar import EMPTY, BankHolidays, SchoolCalendar, load_calendar
from dojoguard.rules.codes import Code
from dojoguard.rules.checks import Check
from dojoguard.rules.conditions import Compiler, comparison, kinds_of, needs_of
from dojoguard.rules.decision import Alert, Match, Verdict
from dojoguard.rules.devices import SETTINGS, DeviceGroups
from dojoguard.rules.engine import Policy, Rule
from dojoguard.rules.facts import Indexes
from dojoguard.rules.phrases import WordList, normalise, read_list_file
from dojoguard.rules.window import DAY_NAMES, INCOMPLETE, Window, build_window, minutes
from dojoguard.schemaproblems import did_you_mean
from dojoguard.yamlfile import FileProblems, Located, Problem

BUILTIN = "builtin"
# The shipped policy lives in its own folder, apart from the engine's code, laid
# out as a school's own policy folder is (see docs/rules.md, "Files and loading").
BUILTIN_FOLDER = ("policies", "st-wilfrids")
# The shipped example policies (`rules init --example NAME`): St Wilfrid's is the one "builtin" runs; Oakfield,
# a made-up school, shows roles, classes, counts, replies and a scheduled check.
EXAMPLES = ("st-wilfrids", "oakfield")
BUILTIN_FILE = "st-wilfrids.yaml"
BUILTIN_CALENDAR = "example.calendar.yaml"
TESTS_SUFFIX = ".tests.yaml"
CALENDAR_SUFFIX = ".calendar.yaml"

# Top-level keys that mark a file as a rule file, a school calendar or companion tests.
_CALENDAR_KEYS = frozenset({"school", "terms", "inset_days", "closures"})
_TESTS_KEYS = frozenset({"cases", "action_defaults"})
# The top-level keys that define no names conditions use.
_UNNAMED_SECTIONS = frozenset({"policy", "bank_holidays", "default", "rules", "checks", "exemptable"})


def builtin_folder(example: str = EXAMPLES[0]) -> Path:
    """A shipped policy's folder (default St Wilfrid's): its rules, companion tests, lists and example calendar."""
    if example not in EXAMPLES:
        raise ValueError(f"no shipped example policy {example!r}")
    return Path(str(resources.files("dojoguard").joinpath(BUILTIN_FOLDER[0], example)))


def builtin_path() -> Path:
    return builtin_folder() / BUILTIN_FILE


def builtin_calendar() -> Path:
    """The example school calendar (2026-27) the shipped companion tests assume."""
    return builtin_folder() / BUILTIN_CALENDAR


def policy_files(source: str | Path, *, calendar: str | Path | None = None) -> list[Path]:
    """The rule files a policy source names (a file, a folder of them, or "builtin").

    In a folder the kind of each file is told by its name alone: ``*.tests.yaml``
    are companion tests, ``*.calendar.yaml`` (and the file ``calendar`` names)
    are school calendars, every other ``*.yaml`` is a rule file.
    """
    if str(source) == BUILTIN:
        return [builtin_path()]
    path = Path(source)
    if not path.is_dir():
        return [path]
    # rules.yml or RULES.YAML would otherwise be left out of the policy without a word.
    misnamed = sorted(p for p in path.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.suffix != ".yaml")
    if misnamed:
        raise FileProblems([Problem(Code.RULES_FOLDER, "dojoguard reads only files ending in .yaml", str(p),
                                    hint=f"Rename it {p.stem}.yaml (or move it out of the policy folder); as it "
                                         "is, it would be left out of the policy without a word.")
                            for p in misnamed])
    files = sorted(p for p in path.glob("*.yaml") if _is_rule_file(p, calendar))
    if not files:
        raise FileProblems([Problem(Code.RULES_FOLDER, "the folder holds no rule files (*.yaml)", str(path),
                                    hint="Point `rules.policy` at a rule file, or put .yaml rule files here.")])
    return files


def _is_rule_file(path: Path, calendar: str | Path | None) -> bool:
    if path.name.endswith((TESTS_SUFFIX, CALENDAR_SUFFIX)):
        return False
    return calendar is None or path.resolve() != Path(calendar).resolve()


def not_a_rule_file(located: Located) -> Problem | None:
    """One clear problem when a file loaded as rules is plainly a calendar or companion tests, else None.

    The file's name already decided it is a rule file; this only turns a screenful
    of unknown-key errors into the one thing to do: rename it.
    """
    data = located.data
    # A rule file's top-level keys are the rule schema's (so a key added there is never missed here).
    rule_keys = schemaproblems.validator("dojoguard.rules", "schema.json").schema["properties"].keys()
    if not isinstance(data, dict) or not data or rule_keys & data.keys():
        return None
    path = Path(located.file)
    # Any calendar key and no rule key: a calendar, even with a misspelt key of its own.
    calendar_keys = [k for k in data if k in _CALENDAR_KEYS]
    tests_keys = [k for k in data if k in _TESTS_KEYS]
    if calendar_keys and not tests_keys:
        hint = (f"Rename it {_calendar_name(path)}: files ending in {CALENDAR_SUFFIX} are calendars, not rules. "
                "Then point the setting `rules.calendar` at it (or pass it with --calendar).")
        if path.name.endswith(CALENDAR_SUFFIX):
            hint = "Point the setting `rules.calendar` at it (or pass it with --calendar), not `rules.policy`."
        return located.problem((calendar_keys[0],), Code.RULES_FOLDER,
                               "this looks like a school calendar, not a rule file",
                               hint, key=True)
    if tests_keys and not calendar_keys:
        return located.problem((tests_keys[0],), Code.RULES_FOLDER, "this looks like companion tests, not a rule file",
                               f"Name it after its rule file: RULES{TESTS_SUFFIX} beside RULES.yaml "
                               f"(files ending in {TESTS_SUFFIX} are tests, not rules).", key=True)
    return None


def _calendar_name(path: Path) -> str:
    """What to call a calendar file: example-calendar.yaml -> example.calendar.yaml."""
    stem = path.name.removesuffix(".yaml").removesuffix("calendar").rstrip("-_.")
    return f"{stem or 'school'}{CALENDAR_SUFFIX}"


def load_policy(source: str | Path, *, base: str | Path | None = None, calendar: str | Path | None = None,
                device_groups: dict[str, list[str]] | None = None,
                timezone: str = "Europe/London") -> Policy:
    """Load and check a whole policy; raises ``FileProblems`` listing every problem found.

    The shipped policy ("builtin") without a calendar uses its example calendar (2026-27), as the copy
    `rules init` writes is set up to: its messaging window fails safe (closed) on dates no calendar covers,
    so without one it would never open.

    ``base`` (the setting ``rules.base``) is the trust's base rules, a file or a folder: the policy is then
    the base's files and ``source``'s loaded together, base first, and every way the school's files would
    weaken the base is a problem too (see ``layering``).
    """
    if str(source) == BUILTIN and calendar is None:
        calendar = builtin_calendar()
    unlisted: list[Problem] = []  # the folder problems of the base and of the school's policy, together
    base_files = _listed(lambda: _layer_files(base, calendar), unlisted) if base is not None else []
    files = _listed(lambda: policy_files(source, calendar=calendar), unlisted)
    shared = unlisted or layering.shared_files(base_files, files)
    if shared:
        raise FileProblems(shared)
    problems: list[Problem] = []
    documents: list[_RuleFile] = []
    digest = hashlib.sha256()
    skipped = False  # a file that could not be read as rules at all: what it defines is unknown
    in_base = {str(p) for p in base_files}
    files = base_files + files
    for path in files:
        try:
            located = yamlfile.load(path)
        except FileProblems as exc:
            problems.extend(exc.problems)
            skipped = True
            continue
        if located.data is None:
            located.data = {}
        misplaced = not_a_rule_file(located)
        if misplaced is not None:
            problems.append(misplaced)
            skipped = True
            continue
        schema = schemaproblems.validator("dojoguard.rules", "schema.json")
        found = schemaproblems.check(located, schema, codes.RULES)
        problems.extend(found)
        # Built even when the schema refused some of it (all but the refused parts), so that
        # every problem is found in one pass; a document that is not a mapping has no parts.
        if isinstance(located.data, dict):
            broken = schemaproblems.broken_parts(located.data, schema) if found else frozenset()
            layer = str(path) in in_base
            documents.append(_RuleFile(located.data, located.file, located.marks, located.key_marks, broken,
                                       base=layer))
            digest.update((b"base\0" if layer else b"rules\0") + path.name.encode() + b"\0" + path.read_bytes()
                          + b"\0")
        else:
            skipped = True
    try:
        tz = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(Problem(Code.RULES_TIMEZONE, f"unknown time zone {timezone!r}", "<timezone>",
                                hint="Use an IANA name such as Europe/London."))
        tz = zoneinfo.ZoneInfo("UTC")
    school_calendar = EMPTY
    if calendar is not None:
        try:
            school_calendar = load_calendar(calendar)
        except FileProblems as exc:
            problems.extend(exc.problems)
    if not documents:
        raise FileProblems(in_file_order(problems, files))
    builder = _Builder(documents, tz, school_calendar, device_groups or {}, digest, complete=not skipped)
    policy = builder.build()
    if problems or builder.problems:
        raise FileProblems(in_file_order(problems + builder.problems, files))
    return policy


def _listed(files, problems: list[Problem]) -> list[Path]:
    """``files()``, or none after adding its problems to ``problems``."""
    try:
        return files()
    except FileProblems as exc:
        problems.extend(exc.problems)
        return []


def _layer_files(base: str | Path, calendar: str | Path | None) -> list[Path]:
    """The base's rule files; a base that names no rule files says it is the base (`rules.base`)."""
    try:
        return policy_files(base, calendar=calendar)
    except FileProblems as exc:
        raise FileProblems([replace(p, message=f"{p.message} (the trust's base rules, `{layering.SETTING}`)",
                                    hint=p.hint.replace("`rules.policy`", f"`{layering.SETTING}`"))
                            for p in exc.problems]) from None


def in_file_order(problems: list[Problem], files: list[Path]) -> list[Problem]:
    """Problems by file (in the order the files are read), then line and column, as people read them."""
    rank = {str(f): i for i, f in enumerate(files)}
    return sorted(problems, key=lambda p: (rank.get(p.file, len(rank)), p.file, p.line, p.column))


@dataclass
class _RuleFile(Located):
    """A rule file as the builder reads it: with the parts its schema refused, and problems that name the rule.

    A problem inside a rule says which rule, by id where it has one, as the
    schema's own problems do: ``rules[late-messages].when.outside: no window
    named 'school-hour'`` (still at the line and column of the value).
    """

    broken: frozenset[tuple] = frozenset()
    # Whether the file is one of the trust's base rules (the setting rules.base), not the school's own.
    base: bool = False

    def sound(self, *path) -> bool:
        """Whether the part at ``path`` passed the schema (nothing in it or above it refused), so can be built."""
        return schemaproblems.sound(self.broken, path)

    def names_known(self) -> bool:
        """Whether every name the file defines could be read: no section of names, or unknown
        top-level key (a misspelt `windows:`), was refused whole."""
        return not any(len(b) <= 1 and (not b or b[0] not in _UNNAMED_SECTIONS) for b in self.broken)

    def section(self, key: str, kind: type) -> dict | list:
        """The top-level ``key`` when it is the kind of value it should be (else empty: the schema said so)."""
        value = self.data.get(key)
        if not isinstance(value, kind):
            return kind()
        if isinstance(value, dict):
            # A name that is not text was refused by the schema; no condition could name it.
            return {k: v for k, v in value.items() if isinstance(k, str)}
        return value

    def problem(self, path, code: str, message: str, hint: str = "", *, key: bool = False) -> Problem:
        path = tuple(path)
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            message = f"{schemaproblems.dotted(path, self.data)}: {message}"
        return super().problem(path, code, message, hint, key=key)


class _Builder:
    """Turns rule files into a Policy, collecting every problem on the way.

    Parts of a file its schema refused are not built, but the names they
    define still count as defined (their own problem is already reported).
    When a file could not be read at all (``complete`` false), what it
    defines is unknown, so no name is reported as undefined and no default
    or rule as missing: those could be in the unread file.
    """

    def __init__(self, documents: list[_RuleFile], tz: zoneinfo.ZoneInfo, calendar: SchoolCalendar,
                 device_overrides: dict[str, list[str]], digest, *, complete: bool = True):
        self.documents = documents
        self.complete = complete and all(d.names_known() for d in documents)
        self.tz = tz
        self.calendar = calendar
        self.device_overrides = device_overrides
        self.digest = digest
        self.problems: list[Problem] = []
        self.read: list[Path] = [Path(d.file) for d in documents]
        # The files of the trust's base rules: a school file's definition of their names is layering's to report.
        self.base_files = frozenset(d.file for d in documents if d.base)
        self.defined: dict[tuple[str, str], Located] = {}
        self.indexes = Indexes()
        self.tallies: dict = {}
        self.strike_rules: set[str] = set()

    def _once(self, located: Located, section: str, name: str) -> bool:
        earlier = self.defined.get((section, name))
        if earlier is not None and layering.crosses(earlier.file, located, self.base_files):
            return False  # a school file redefining the base's: reported by layering.weakenings
        if earlier is not None:
            line = earlier.mark((section, name))[0]
            self.problems.append(located.problem((section, name), Code.RULES_DUPLICATE_ID,
                                                 f"{section}: {name!r} is defined twice",
                                                 f"It is already defined in {earlier.file}:{line}; keep one.",
                                                 key=True))
            return False
        self.defined[(section, name)] = located
        return True

    def build(self) -> Policy:
        region = "england-and-wales"
        # The school's name before the trust's base's (base files sort last here).
        name = next((n for d in sorted(self.documents, key=lambda d: d.base)
                     if d.sound("policy") and (n := (d.data.get("policy") or {}).get("name", ""))), "")
        default = None
        for located in self.documents:
            data = located.data
            if located.sound("bank_holidays"):
                region = data.get("bank_holidays", region)
            if "default" in data:
                # A school's default after the base's: layering.weakenings compares the two.
                if default is not None and not layering.crosses(default[1].file, located, self.base_files):
                    self.problems.append(located.problem(("default",), Code.RULES_DEFAULT,
                                                         "the default verdict is set in two files",
                                                         f"It is already set in {default[1].file}; keep one.",
                                                         key=True))
                # A default the schema refused is still set (its problem is reported): never "no default".
                default = (data["default"] if located.sound("default") else {"verdict": "block"}, located)
        if default is None and self.complete:
            first = self.documents[0] if self.documents else Located({}, "<policy>")
            self.problems.append(first.problem((), Code.RULES_DEFAULT, "the policy has no default verdict",
                                               "Add `default: {verdict: allow}` (or block) so the outcome when "
                                               "no rule matches is explicit."))
            default = ({"verdict": "block"}, first)
        default = default or ({"verdict": "block"}, self.documents[0])
        bank = BankHolidays(region)
        windows = self._windows(bank)
        incomplete = [w for w in windows.values() if w.outside_calendar == INCOMPLETE]
        if incomplete:
            def uncovered(action, tz=self.tz, windows=tuple(incomplete)) -> bool:
                day = action.at.astimezone(tz).date()
                return any(not w.knows(day) for w in windows)
            self.indexes.uncovered = uncovered
        lists = self._lists()
        devices = self._devices()
        teachers = self._teachers()
        rules, compilers = self._rules(windows, lists, devices, teachers)
        checks = self._checks(compilers)
        self._strike_rules_defined(compilers, rules)
        self.problems.extend(layering.weakenings(self.documents, self.device_overrides))
        if not rules and not self.problems and self.complete and not any(d.broken for d in self.documents):
            self.problems.append(self.documents[0].problem((), Code.RULES_EMPTY, "the policy has no rules",
                                                           "Add rules under `rules:`."))
        for kind, name in self.indexes.text.build():
            where = lists[name].file if kind != "regex" and name in lists else None
            self.problems.append(Problem(Code.LIST_SIZE, f"{kind} {name!r} is too large to search in linear time",
                                         where or self.documents[0].file, hint="Split it into several lists."))
        if not self.complete:
            # A name may be defined in what could not be read: saying it is undefined could be wrong.
            self.problems = [p for p in self.problems if p.code != Code.RULES_UNDEFINED]
        self.digest.update(json.dumps({
            "timezone": str(self.tz), "calendar": self.calendar.digest,
            "device_groups": self.device_overrides}, sort_keys=True).encode())
        return Policy(name=name, revision=self.digest.hexdigest(), rules=tuple(rules),
                      default_verdict=Verdict(default[0]["verdict"]), default_notice=default[0].get("notice", ""),
                      windows=windows, lists=lists, timezone=self.tz, calendar=self.calendar,
                      files=tuple(self.read) + ((Path(self.calendar.file),) if self.calendar.file else ()),
                      indexes=self.indexes, devices=devices, tallies=tuple(self.tallies.values()),
                      strike_rules=frozenset(self.strike_rules), checks=tuple(checks),
                      uses_class_names=any(c.class_names_used for c in compilers),
                      base_files=self.base_files, default_file=default[1].file)

    def _windows(self, bank: BankHolidays) -> dict[str, Window]:
        windows = {}
        for located in self.documents:
            for name, spec in located.section("windows", dict).items():
                if not self._once(located, "windows", name) or not located.sound("windows", name):
                    continue
                start, end = minutes(spec["from"]), minutes(spec["to"])
                if spec["from"] == "24:00" or end <= start:
                    self.problems.append(located.problem(("windows", name, "to"), Code.RULES_WINDOW,
                                                         f"window {name!r} closes ({spec['to']}) before it "
                                                         f"opens ({spec['from']})",
                                                         "A window is one stretch of each day, `from` earlier than "
                                                         "`to`; for quiet hours use `outside:` a daytime window."))
                    continue
                windows[name] = build_window(name, spec, self.tz, self.calendar, bank)
        return windows

    def _lists(self) -> dict[str, WordList]:
        lists = {}
        for located in self.documents:
            folder = Path(located.file).parent
            for name, spec in located.section("lists", dict).items():
                if not self._once(located, "lists", name) or not located.sound("lists", name):
                    continue
                if "phrases" in spec:
                    entries = tuple(normalise(p) for p in spec["phrases"])
                    lists[name] = WordList(name, entries)
                    continue
                path = folder / spec["file"]
                try:
                    inside = path.resolve().is_relative_to(folder.resolve())
                except OSError:
                    inside = False
                if not inside:
                    self.problems.append(located.problem(("lists", name, "file"), Code.LIST_PATH,
                                                         f"{spec['file']!r} is outside the rule file's folder",
                                                         "Keep list files beside the rules, e.g. lists/absence.txt."))
                    continue
                before = len(self.problems)
                entries = read_list_file(path, str(path), self.problems)
                if len(self.problems) > before and self.problems[-1].code == Code.LIST_MISSING:
                    line, column = located.mark(("lists", name, "file"))
                    missing = self.problems.pop()
                    self.problems.append(Problem(missing.code, f"list file {spec['file']!r} not found",
                                                 located.file, line, column, missing.hint))
                if entries is not None:
                    lists[name] = WordList(name, entries, str(path))
                    self.read.append(path)
                    self.digest.update(b"list\0" + name.encode() + b"\0" + path.read_bytes() + b"\0")
        return lists

    def _devices(self) -> DeviceGroups:
        groups: dict[str, tuple] = {}
        sources: dict[str, str] = {}
        replaced: dict[str, str] = {}
        for located in self.documents:
            for name, cidrs in located.section("device_groups", dict).items():
                if not self._once(located, "device_groups", name):
                    continue
                sources[name] = Path(located.file).name
                if not located.sound("device_groups", name):
                    groups[name] = ()  # still defined: its own problem is reported
                    continue
                groups[name] = self._networks(cidrs, lambda i, n=name, c=cidrs, loc=located: loc.problem(
                    ("device_groups", n, i), Code.RULES_NETWORK, f"{c[i]!r} is not a network",
                    "Write a CIDR block such as 10.20.0.0/16."))
        for name, cidrs in self.device_overrides.items():
            # The deployment's own network layout replaces the rule file's example (and says so).
            if name in sources:
                replaced[name] = sources[name]
            sources[name] = SETTINGS
            groups[name] = self._networks(list(cidrs), lambda i, n=name, c=cidrs: Problem(
                Code.RULES_NETWORK, f"device group {n!r}: {c[i]!r} is not a network", "<device_groups>",
                hint="Write a CIDR block such as 10.20.0.0/16."))
        return DeviceGroups(groups, sources, replaced)

    def _networks(self, cidrs: list[str], problem) -> tuple:
        networks = []
        for i, cidr in enumerate(cidrs):
            try:
                networks.append(ipaddress.ip_network(str(cidr), strict=False))
            except ValueError:
                self.problems.append(problem(i))
        return tuple(networks)

    def _teachers(self) -> dict[str, frozenset[str]]:
        groups = {}
        for located in self.documents:
            for name, ids in located.section("teacher_groups", dict).items():
                if self._once(located, "teacher_groups", name):
                    groups[name] = frozenset(ids) if located.sound("teacher_groups", name) else frozenset()
        return groups

    def _rules(self, windows, lists, devices, teachers) -> tuple[list[Rule], list[Compiler]]:
        rules: list[Rule] = []
        compilers = []
        seen: dict[str, tuple[str, int]] = {}
        word_lists = {name: wl.entries for name, wl in lists.items()}
        # Names that failed to load are still "defined", in every file: their own problem is already reported.
        known_windows: dict[str, Window | None] = dict(windows)
        for located in self.documents:
            for name in located.section("lists", dict):
                word_lists.setdefault(name, ())
            for name in located.section("windows", dict):
                known_windows.setdefault(name, None)
        for located in self.documents:
            # A file's `exemptable: false` is the default of its rules' own `exemptable`.
            exemptable = located.data.get("exemptable", True) is not False or not located.sound("exemptable")
            compiler = Compiler(located, windows=known_windows,
                                lists=word_lists, devices=devices, teacher_groups=teachers, problems=self.problems,
                                text=self.indexes.text, tallies=self.tallies, timezone=self.tz)
            compilers.append(compiler)
            for i, spec in enumerate(located.section("rules", list)):
                path = ("rules", i)
                line = located.mark(path)[0]
                if not located.sound(*path):
                    self._broken_rule(located, path, spec, compiler, seen)
                    continue
                if not self._new_id(located, path, spec["id"], seen):
                    continue
                verdict = Verdict(spec["verdict"])
                release = self._release_window(located, path, spec, verdict, known_windows)
                compiler.language_used = []
                compiler.strikes_used = False
                test = compiler.compile(spec["when"], path + ("when",), root=True)
                if compiler.strikes_used:
                    self.strike_rules.add(spec["id"])
                description = spec.get("description") or spec["clause"]
                match = Match(rule_id=spec["id"], verdict=verdict, reason=description.strip(),
                              notice=spec["notice"].strip(), clause=spec["clause"].strip(),
                              alert=_alert(spec.get("alert")))
                rules.append(Rule(id=spec["id"], verdict=verdict, notice=match.notice, clause=match.clause,
                                  description=match.reason, test=test, kinds=kinds_of(spec["when"]),
                                  needs=needs_of(spec["when"]), release_window=release,
                                  exemptable=spec.get("exemptable", exemptable), file=located.file, line=line,
                                  match=match, language=tuple(compiler.language_used), when=spec["when"]))
        return rules, compilers

    def _strike_rules_defined(self, compilers: list[Compiler], rules: list[Rule]) -> None:
        """A `strikes` naming a rule the policy does not have would never count anything: say so."""
        known = {rule.id for rule in rules}
        for compiler in compilers:
            for path, rule_id in compiler.strike_rule_refs:
                if rule_id not in known:
                    hint = did_you_mean(rule_id, known) or f"Rule ids: {', '.join(sorted(known)) or 'none'}."
                    self.problems.append(compiler.located.problem(
                        path, Code.RULES_UNDEFINED, f"`strikes` names rule {rule_id!r}, which the policy does not "
                        "have (it would never count a strike)", hint))

    def _checks(self, compilers: list[Compiler]) -> list[Check]:
        checks: list[Check] = []
        seen: dict[str, str] = {}
        for located, compiler in zip(self.documents, compilers, strict=True):
            for i, spec in enumerate(located.section("checks", list)):
                path = ("checks", i)
                if not located.sound(*path):
                    continue  # its own problem is reported; the rest is still checked
                if spec["id"] in seen and layering.crosses(seen[spec["id"]], located, self.base_files):
                    continue  # a school check reusing a base check's id: reported by layering.weakenings
                if spec["id"] in seen:
                    self.problems.append(located.problem(path + ("id",), Code.RULES_DUPLICATE_ID,
                                                         f"check id {spec['id']!r} is used twice", "Rename one."))
                    continue
                seen[spec["id"]] = located.file
                count = spec["count"]
                per = count["per"]
                if per not in ("class", "teacher"):
                    self.problems.append(located.problem(path + ("count", "per"), Code.RULES_CHECK,
                                                         "a scheduled check counts per class or per teacher",
                                                         "Write `per: class` or `per: teacher`."))
                    continue
                tally = compiler.tally(count["of"], [per], path + ("count",))
                span = compiler._span(count["within"], path + ("count", "within"))
                compare, limit = comparison(count)
                checks.append(Check(
                    id=spec["id"], description=(spec.get("description") or spec["clause"]).strip(),
                    clause=spec["clause"].strip(), days=frozenset(DAY_NAMES.index(d) for d in spec["at"]["days"]),
                    minute=minutes(spec["at"]["time"]), tally=tally, span=span, compare=compare, limit=limit,
                    comparison=next(k for k in ("at_least", "more_than", "fewer_than", "at_most") if k in count),
                    per=per, alert=_alert(spec.get("alert")), file=located.file, line=located.mark(path)[0]))
        return checks

    def _new_id(self, located: Located, path: tuple, rule_id: str, seen: dict[str, tuple[str, int]]) -> bool:
        """Whether the rule id is not used before (else a problem says where it was first used)."""
        if rule_id in seen:
            first_file, first_line = seen[rule_id]
            if layering.crosses(first_file, located, self.base_files):
                return False  # a school rule reusing a base rule's id: reported by layering.weakenings
            self.problems.append(located.problem(path + ("id",), Code.RULES_DUPLICATE_ID,
                                                 f"rule id {rule_id!r} is used twice",
                                                 f"It is first used at {first_file}:{first_line}; rename one."))
            return False
        seen[rule_id] = (located.file, located.mark(path)[0])
        return True

    def _broken_rule(self, located: _RuleFile, path: tuple, spec, compiler: Compiler,
                     seen: dict[str, tuple[str, int]]) -> None:
        """What can be checked of a rule the schema refused: the parts of it the schema did not.

        Its id must still be new and the names its condition uses defined; the
        rule itself is not built (the policy is refused for its problem anyway).
        """
        if not isinstance(spec, dict):
            return
        if "id" in spec and located.sound(*path, "id"):
            self._new_id(located, path, spec["id"], seen)
        if "when" in spec and located.sound(*path, "when"):
            compiler.language_used = []
            compiler.compile(spec["when"], path + ("when",), root=True)

    def _release_window(self, located, path, spec, verdict, windows) -> Window | None:
        name = spec.get("release_window")
        if verdict is Verdict.DEFER and name is None:
            self.problems.append(located.problem(path + ("verdict",), Code.RULES_DEFER,
                                                 f"rule {spec['id']!r} defers but does not say until when",
                                                 "Add `release_window: <window name>`: the action is released "
                                                 "when that window next opens."))
            return None
        if name is None:
            return None
        if verdict is not Verdict.DEFER:
            self.problems.append(located.problem(path + ("release_window",), Code.RULES_DEFER,
                                                 "`release_window` only applies to verdict defer",
                                                 "Remove it, or set `verdict: defer`.", key=True))
            return None
        if name not in windows:
            self.problems.append(located.problem(path + ("release_window",), Code.RULES_UNDEFINED,
                                                 f"no window named {name!r}",
                                                 f"Defined windows: {', '.join(sorted(windows)) or 'none'}."))
            return None
        return windows[name]


def companion_tests(policy_file: Path) -> Path:
    """The companion test file of a rule file: rules.yaml -> rules.tests.yaml."""
    return policy_file.with_name(policy_file.name.removesuffix(".yaml") + TESTS_SUFFIX)


def _alert(value) -> Alert | None:
    """A rule's ``alert``: a list of recipient groups (told now), or ``{to: [...], when: now|daily}``."""
    if not value:
        return None
    if isinstance(value, list):
        return Alert(to=tuple(value), when="now")
    return Alert(to=tuple(value["to"]), when=value.get("when", "now"))
