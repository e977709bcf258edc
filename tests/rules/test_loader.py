"""Loading a policy in one pass: structure and meaning problems together, in file order, and never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from dojoguard.rules.policy import builtin_path, load_policy
from dojoguard.yamlfile import FileProblems

from .conftest import write

HEAD = "default: {verdict: allow}\nwindows:\n  school-hours: {days: [mon], from: '08:00', to: '17:00'}\nrules:\n"


def _rule(rule_id: str, when: str, *extra: str) -> str:
    lines = [f"  - id: {rule_id}", f"    when: {when}", "    verdict: block", "    notice: n", "    clause: c",
             *extra]
    return "\n".join(lines) + "\n"


def _problems(path: Path, **kwargs) -> list[tuple[str, int]]:
    with pytest.raises(FileProblems) as caught:
        load_policy(path, **kwargs)
    return [(p.code, p.line) for p in caught.value.problems]


def test_a_misspelt_key_and_an_undefined_window_are_reported_in_one_pass(tmp_path: Path):
    """One rule with a misspelt key, another naming an undefined window: both problems, in one run, in line order."""
    text = HEAD + _rule("a", "{kind: message.send}").replace("verdict: block", "verdic: block") \
        + _rule("b", "{kind: message.send, outside: school-hour}")
    found = _problems(write(tmp_path / "rules.yaml", text))
    assert found == [("DG-RULES-UNKNOWN-KEY", 7), ("DG-RULES-UNDEFINED", 11)]


def test_a_rule_refused_by_the_schema_still_has_its_condition_checked(tmp_path: Path):
    """A misspelt key in a rule does not hide an undefined name in the same rule's `when`."""
    text = HEAD + _rule("a", "{kind: message.send, phrases: absence}", "    colour: red")
    found = _problems(write(tmp_path / "rules.yaml", text))
    assert found == [("DG-RULES-UNDEFINED", 6), ("DG-RULES-UNKNOWN-KEY", 10)]


def test_every_kind_of_problem_of_a_folder_comes_at_once_in_file_order(tmp_path: Path):
    """Structure, meaning, list-file and calendar problems of several files are one report, file by file."""
    write(tmp_path / "a.yaml", HEAD + _rule("a", "{kind: message.send, outside: nowhere}")
          + _rule("b", "{kind: message.sent}")
          + "lists:\n  absence: {file: lists/absence.txt}\n")
    write(tmp_path / "b.yaml", "windows:\n  late: {days: [mon], from: '17:00', to: '08:00'}\n"
          "  early: {days: [mon], from: 800, to: '09:00'}\n"
          "rules:\n" + _rule("a", "{kind: message.send}") + _rule("c", "{regex: '(?<=x)y', inside: early}"))
    with pytest.raises(FileProblems) as caught:
        load_policy(tmp_path, calendar=tmp_path / "missing.calendar.yaml")
    found = [(Path(p.file).name, p.code, p.line) for p in caught.value.problems]
    assert found == [
        ("a.yaml", "DG-RULES-UNDEFINED", 6),      # outside: nowhere
        ("a.yaml", "DG-RULES-VALUE", 11),         # kind: message.sent
        ("a.yaml", "DG-LIST-MISSING", 16),        # lists/absence.txt
        ("b.yaml", "DG-RULES-WINDOW", 2),         # closes before it opens
        ("b.yaml", "DG-RULES-TYPE", 3),           # from: 800
        ("b.yaml", "DG-RULES-DUPLICATE-ID", 5),   # rule a again
        ("b.yaml", "DG-RULES-REGEX", 11),         # look-behind; `inside: early` is defined, though broken
        ("missing.calendar.yaml", "DG-FILE-MISSING", 0),
    ]


def test_a_broken_definition_still_defines_its_name(tmp_path: Path):
    """A window, list or group the schema refused is reported once: rules naming it get no "not defined" too."""
    text = ("default: {verdict: allow}\n"
            "windows:\n  day: {days: mon, from: '08:00', to: '17:00'}\n"
            "lists:\n  words: {phrases: []}\n"
            "device_groups:\n  ipads: 10.20.0.0/16\n"
            "teacher_groups:\n  leaders: [1]\n"
            "rules:\n"
            + _rule("a", "{outside: day, phrases: words, device: {in_group: ipads}, teacher: {in_group: leaders}}"))
    found = _problems(write(tmp_path / "rules.yaml", text))
    assert [code for code, _ in found] == ["DG-RULES-TYPE", "DG-RULES-VALUE", "DG-RULES-TYPE", "DG-RULES-TYPE"]


def test_a_duplicate_id_is_found_even_when_the_rule_is_broken(tmp_path: Path):
    text = HEAD + _rule("a", "{kind: message.send}") + _rule("a", "{kind: story.post}", "    colour: red")
    assert _problems(write(tmp_path / "rules.yaml", text)) == [("DG-RULES-DUPLICATE-ID", 10),
                                                               ("DG-RULES-UNKNOWN-KEY", 15)]


@pytest.mark.parametrize("text", [
    "default: {verdict: deny}\nrules:\n" + _rule("a", "{kind: message.send}"),
    "default: {verdict: allow}\nrules:\n" + _rule("a", "{kind: message.send}").replace("verdict: block", "verdic: x"),
    "default: {verdict: allow}\nrule:\n" + _rule("a", "{kind: message.send}"),
])
def test_a_broken_part_is_not_also_reported_missing(tmp_path: Path, text: str):
    """A refused `default`, a policy's only rule refused, a misspelt `rules:`: one problem each, no "no default"
    or "no rules" as well."""
    found = _problems(write(tmp_path / "rules.yaml", text))
    assert len(found) == 1 and found[0][0] not in ("DG-RULES-DEFAULT", "DG-RULES-EMPTY"), found


def test_a_misspelt_section_does_not_make_its_names_undefined(tmp_path: Path):
    """`window:` for `windows:`: the names under it may be the ones the rules use, so only the key is reported."""
    text = HEAD.replace("windows:", "window:") + _rule("a", "{kind: message.send, outside: school-hours}")
    assert _problems(write(tmp_path / "rules.yaml", text)) == [("DG-RULES-UNKNOWN-KEY", 2)]


def test_an_unreadable_file_of_a_folder_hides_no_problem_of_the_others_but_makes_none_up(tmp_path: Path):
    """A syntax error in one file: the others are still checked, but a name the broken file may define is not
    called undefined, nor the default missing."""
    write(tmp_path / "a.yaml", "windows: {day: [\n")
    write(tmp_path / "b.yaml", "rules:\n" + _rule("b", "{outside: day, kind: message.sent}"))
    found = [(Path(p.file).name, code) for p, code in
             ((p, p.code) for p in pytest.raises(FileProblems, load_policy, tmp_path).value.problems)]
    assert found == [("a.yaml", "DG-YAML-SYNTAX"), ("b.yaml", "DG-RULES-VALUE")]


# Deliberately broken rule files: each must give problems, never a crash (KeyError, TypeError...).
BROKEN = [
    "[1, 2, 3]\n",
    "just text\n",
    "default: allow\nrules: {a: 1}\n",
    "default: {verdict: allow}\nrules: [1, 'two', [3], null]\n",
    "default: {verdict: allow}\nrules:\n  - {id: 5, when: [kind], verdict: [block], notice: {}, clause: 3}\n",
    "default: {verdict: allow}\nrules:\n  - {when: {outside: {a: 1}, phrases: [1, {}]}, verdict: defer}\n",
    "default: {verdict: allow}\nrules:\n  - id: a\n    when: {all: [{kind: x}, 3, {not: []}], any: 5}\n",
    "default: {verdict: allow}\nrules:\n  - {id: a, when: {kind: message.send}, verdict: defer, release_window: [x],"
    " notice: n, clause: c}\n",
    "windows: [a, b]\nlists: 3\ndevice_groups: x\nteacher_groups: [1]\npolicy: 7\nbank_holidays: mars\n"
    "rules:\n" + _rule("a", "{outside: a, phrases: b, device: {in_group: x}}"),
    "windows:\n  1: {days: [mon], from: '08:00', to: '17:00'}\n  null: {days: [mon]}\n  day: 5\n"
    "lists:\n  2: {phrases: [x]}\n  w: {file: 3}\n  v: {file: lists/x.txt, phrases: [x]}\n"
    "device_groups:\n  3: [10.0.0.0/8]\n  g: [1, null]\n"
    "rules:\n" + _rule("a", "{outside: da, phrases: [w, v, z], device: {in_group: [gg]}}"),
    "default: {verdict: allow, notice: 5}\nrules:\n" + _rule("a", "{text_longer_than: -1, regex: 5}"),
    "default: {verdict: allow}\nrules:\n" + _rule("a", "{points: {sign: up, skill_in: 7}, image: [x], video: 1}")
    + _rule("a", "{attachment: sound, channel: [x], incomplete: yes, unclassified: 2}"),
]


@pytest.mark.parametrize("text", BROKEN, ids=range(len(BROKEN)))
def test_a_broken_rule_file_gives_problems_never_a_crash(tmp_path: Path, text: str):
    """Whatever the schema refused, the builder skips it rather than tripping over it."""
    path = write(tmp_path / "rules.yaml", text)
    with pytest.raises(FileProblems) as caught:
        load_policy(path)
    assert caught.value.problems
    assert all(p.code.startswith("DG-") and p.message for p in caught.value.problems)


def test_every_single_value_of_the_shipped_rules_broken_in_turn_never_crashes(tmp_path: Path):
    """Values of St Wilfrid's rules replaced by a value of the wrong shape, one at a time: problems, no crash.

    Every section, definition and key of a definition is broken in turn, and the first two rules and each of
    their keys (the other rules and the values deeper down, in conditions, are left to the list above: loading
    the shipped rules 300 times would take too long)."""
    import copy
    import shutil

    import yaml

    from dojoguard.yamlfile import parse

    shutil.copytree(builtin_path().parent / "lists", tmp_path / "lists")
    base = parse(builtin_path().read_text("utf-8")).data
    paths: list[tuple] = []

    def walk(node, path=()):
        if path and len(path) <= 3 and not (path[0] == "rules" and len(path) > 1 and path[1] >= 2):
            paths.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            walk(value, path + (key,))

    walk(base)
    target = tmp_path / "rules.yaml"
    for i, path in enumerate(paths):
        data = copy.deepcopy(base)
        node = data
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = [[], {}, 7, "Bad Name", None][i % 5]
        target.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
        try:
            load_policy(target)
        except FileProblems:
            pass


def _messages(path: Path) -> list[tuple[int, int, str]]:
    with pytest.raises(FileProblems) as caught:
        load_policy(path)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def test_a_problem_inside_a_rule_names_the_rule_by_its_id(tmp_path: Path):
    """Meaning problems say which rule, by id, as structure problems do, and keep their line and column."""
    text = HEAD + _rule("late", "{kind: message.send, outside: school-hour}") \
        + _rule("late", "{kind: story.post}") \
        + _rule("held", "{kind: message.send}", "    release_window: school-hours")
    assert _messages(write(tmp_path / "rules.yaml", text)) == [
        (6, 41, "rules[late].when.outside: no window named 'school-hour'"),
        (10, 9, "rules[late].id: rule id 'late' is used twice"),
        (20, 5, "rules[held].release_window: `release_window` only applies to verdict defer"),
    ]


def test_a_rule_without_an_id_is_named_by_its_position(tmp_path: Path):
    """No id to name it by: its position, counted from 0, for the structure and the meaning problem alike."""
    text = HEAD + _rule("a", "{kind: message.send}") + _rule("b", "{phrases: absence}").replace("  - id: b\n    ", "  - ")
    assert _messages(write(tmp_path / "rules.yaml", text)) == [
        (10, 5, "rules.1: the key 'id' is missing"),
        (10, 21, "rules.1.when.phrases: no list named 'absence'"),
    ]


def test_problems_outside_the_rules_read_as_before(tmp_path: Path):
    """Windows, lists and groups name themselves in their messages already: no path is put in front."""
    text = "default: {verdict: allow}\nwindows:\n  late: {days: [mon], from: '17:00', to: '08:00'}\nrules:\n" \
        + _rule("a", "{kind: message.send}")
    assert _messages(write(tmp_path / "rules.yaml", text)) == [
        (3, 42, "window 'late' closes (08:00) before it opens (17:00)")]
