"""Loading a whole policy and evaluating actions: deny-overrides, defaults, revisions, fail closed."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from dojoguard.rules.decision import Verdict
from dojoguard.rules.policy import builtin_calendar, builtin_folder, builtin_path, load_policy
from dojoguard.yamlfile import FileProblems

from .conftest import make_action, write

RULE = "  - {{id: {id}, when: {when}, verdict: {verdict}, notice: {notice}, clause: {clause}}}\n"


def _policy(tmp_path: Path, *rules: str, default: str = "allow") -> Path:
    return write(tmp_path / "rules.yaml", f"default: {{verdict: {default}, notice: All fine.}}\nrules:\n"
                 + "".join(rules))


def test_builtin_policy_loads_under_200_ms():
    """The shipped St Wilfrid's rules load, within the time the design allows."""
    policy = load_policy("builtin")  # the first load also compiles the JSON Schema validator, once
    start = time.perf_counter()
    load_policy("builtin")
    assert time.perf_counter() - start < 0.2
    assert policy.rule("messaging-hours") is not None
    assert len(policy.revision) == 64


def test_shipped_rules_cite_the_policy(policy):
    """Every shipped rule has a notice for the teacher and the clause it enforces."""
    for rule in policy.rules:
        assert rule.notice and rule.clause, rule.id


def test_a_loaded_rule_carries_what_its_file_says(tmp_path: Path):
    """Each part of a rule in the file lands in the matching field of the loaded rule."""
    from dojoguard.rules.action import Kind
    from dojoguard.rules.conditions import NEEDS_TEXT

    path = write(tmp_path / "rules.yaml", "default: {verdict: allow}\nwindows:\n"
                 "  day: {days: [mon], from: '08:00', to: '17:00'}\nrules:\n"
                 "  - {id: long, when: {kind: message.send, text_longer_than: 3}, verdict: warn, notice: ' Shorter. ',"
                 " clause: ' 4.1 ', description: Too long}\n"
                 "  - {id: late, when: {outside: day}, verdict: defer, release_window: day, notice: Later.,"
                 " clause: '4.2', exemptable: false}\n")
    policy = load_policy(path)
    long, late = policy.rule("long"), policy.rule("late")
    assert (long.id, long.verdict, long.notice, long.clause, long.description) == \
        ("long", Verdict.WARN, "Shorter.", "4.1", "Too long")
    assert (long.kinds, long.needs, long.release_window, long.exemptable) == \
        (frozenset({Kind.MESSAGE_SEND}), NEEDS_TEXT, None, True)
    assert (long.file, long.line) == (str(path), 5)
    assert (long.match.rule_id, long.match.reason, long.match.notice, long.match.clause) == \
        ("long", "Too long", "Shorter.", "4.1")
    assert (late.kinds, late.needs, late.exemptable, late.line) == (None, 0, False, 6)
    assert late.release_window is policy.windows["day"]
    assert late.description == late.match.reason == "4.2"  # no description: the clause describes it


@pytest.mark.parametrize(("name", "schema"), [("st-wilfrids.yaml", "schema.json"),
                                              ("st-wilfrids.tests.yaml", "ruletests.schema.json"),
                                              ("example.calendar.yaml", "calendar.schema.json")])
def test_builtin_files_reference_their_schema(name, schema):
    """Each shipped policy file's first line points editors at its JSON Schema, and the path resolves."""
    first = (builtin_folder() / name).read_text("utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema=../../rules/{schema}"
    assert (builtin_folder() / "../../rules" / schema).resolve().is_file()


def test_strictest_verdict_wins_and_every_match_is_listed(tmp_path: Path):
    """Deny-overrides: block beats warn, both matches are listed, the notice is the blocking one."""
    path = _policy(tmp_path,
                   RULE.format(id="w", when="{kind: message.send}", verdict="warn", notice="Careful.", clause="c1"),
                   RULE.format(id="b", when="{text_longer_than: 3}", verdict="block", notice="Too long.",
                               clause="c2"))
    decision = load_policy(path).evaluate(make_action(text="hello"))
    assert decision.verdict is Verdict.BLOCK
    assert decision.rule_ids == ("w", "b")
    assert decision.notice == "Too long."
    assert [m.clause for m in decision.matches] == ["c1", "c2"]
    assert not decision.by_default


def test_default_decides_when_nothing_matches(tmp_path: Path):
    """With no match, the explicit default's verdict and notice decide, and the decision says so."""
    path = _policy(tmp_path, RULE.format(id="w", when="{kind: story.post}", verdict="warn", notice="n",
                                         clause="c"), default="hold")
    decision = load_policy(path).evaluate(make_action(text="hi"))
    assert decision.verdict is Verdict.HOLD
    assert decision.by_default and decision.matches == ()
    assert decision.notice == "All fine."


def test_decision_carries_revision_time_and_unique_id(policy):
    """Every decision names the policy revision, the action's time and its own id."""
    action = make_action(text="PE tomorrow")
    first, second = policy.evaluate(action), policy.evaluate(action)
    assert first.policy_revision == policy.revision
    assert first.at == action.at
    assert first.decision_id != second.decision_id and len(first.decision_id) == 32
    assert first.to_dict()["verdict"] == "allow"


def test_revision_changes_when_a_list_file_changes(tmp_path: Path):
    """The revision hashes everything loaded: editing a list file gives a new revision."""
    folder = tmp_path / "policy"
    shutil.copytree(builtin_path().parent / "lists", folder / "lists")
    shutil.copy(builtin_path(), folder / "rules.yaml")
    before = load_policy(folder / "rules.yaml", calendar=builtin_calendar()).revision
    assert load_policy(folder / "rules.yaml", calendar=builtin_calendar()).revision == before
    with (folder / "lists" / "urgent.txt").open("a") as handle:
        handle.write("pronto\n")
    after = load_policy(folder / "rules.yaml", calendar=builtin_calendar())
    assert after.revision != before
    assert after.evaluate(make_action(text="Reply pronto")).rule_ids == ("urgent-messages",)


def test_revision_covers_calendar_and_device_groups(tmp_path: Path):
    """A different calendar or deployment device groups give a different revision."""
    plain = load_policy("builtin").revision
    assert load_policy("builtin", calendar=builtin_calendar()).revision == plain  # its default calendar
    other = tmp_path / "other.calendar.yaml"
    other.write_text("school: Other\nterms:\n  - {name: Autumn, from: 2026-09-01, to: 2026-12-18}\n")
    assert load_policy("builtin", calendar=other).revision != plain
    assert load_policy("builtin", device_groups={"school-devices": ["192.168.0.0/16"]}).revision != plain


def test_deployment_device_groups_replace_the_rule_files():
    """Device groups from the settings replace the example networks in the rule file."""
    policy = load_policy("builtin", device_groups={"school-devices": ["192.168.0.0/16"]})
    assert policy.evaluate(make_action(device={"address": "192.168.4.4"})).verdict is Verdict.ALLOW
    assert policy.evaluate(make_action(device={"address": "10.20.1.5"})).rule_ids == ("school-devices",)


def test_bad_deployment_device_group_is_reported():
    """A device group from the settings that is not a network is a problem, not a silent hole."""
    with pytest.raises(FileProblems) as caught:
        load_policy("builtin", device_groups={"school-devices": ["not-a-network"]})
    assert caught.value.problems[0].code == "DG-RULES-NETWORK"


def test_unknown_timezone_is_reported():
    """A time zone that does not exist is refused with its own code."""
    with pytest.raises(FileProblems) as caught:
        load_policy("builtin", timezone="Europe/Londres")
    assert [p.code for p in caught.value.problems] == ["DG-RULES-TIMEZONE"]


def test_folder_of_rule_files_is_one_policy(tmp_path: Path):
    """A folder's rule files load together (companion test files are skipped)."""
    write(tmp_path / "a.yaml", "default: {verdict: allow}\nwindows:\n"
          "  day: {days: [mon], from: '08:00', to: '17:00'}\nrules:\n"
          + RULE.format(id="a", when="{kind: message.send, outside: day}", verdict="block", notice="n", clause="c"))
    write(tmp_path / "b.yaml", "rules:\n"
          + RULE.format(id="b", when="{kind: message.send, inside: day}", verdict="warn", notice="n", clause="c"))
    write(tmp_path / "a.tests.yaml", "cases: []\n")
    policy = load_policy(tmp_path)
    assert [r.id for r in policy.rules] == ["a", "b"]
    assert policy.evaluate(make_action()).rule_ids == ("b",)


def test_folder_problems_name_both_files(tmp_path: Path):
    """A name defined in two files of a folder is reported with where the first one is."""
    write(tmp_path / "a.yaml", "default: {verdict: allow}\nlists:\n  x: {phrases: [a]}\nrules:\n"
          + RULE.format(id="a", when="{phrases: x}", verdict="block", notice="n", clause="c"))
    write(tmp_path / "b.yaml", "lists:\n  x: {phrases: [b]}\nrules:\n"
          + RULE.format(id="a", when="{phrases: x}", verdict="block", notice="n", clause="c"))
    with pytest.raises(FileProblems) as caught:
        load_policy(tmp_path)
    problems = caught.value.problems
    assert {p.code for p in problems} == {"DG-RULES-DUPLICATE-ID"}
    assert all(p.file.endswith("b.yaml") for p in problems)
    assert any("a.yaml" in p.hint for p in problems)


def test_empty_folder_is_refused(tmp_path: Path):
    """A folder with no rule files is an error, never an empty (allow-everything) policy."""
    with pytest.raises(FileProblems) as caught:
        load_policy(tmp_path)
    assert caught.value.problems[0].code == "DG-RULES-FOLDER"


def test_missing_rule_file_is_refused(tmp_path: Path):
    """A policy path that does not exist is an error."""
    with pytest.raises(FileProblems) as caught:
        load_policy(tmp_path / "nope.yaml")
    assert caught.value.problems[0].code == "DG-FILE-MISSING"


def test_broken_edit_leaves_no_half_policy(tmp_path: Path):
    """Loading is all-or-nothing: a file with one bad rule gives problems, not a policy missing that rule."""
    path = _policy(tmp_path, RULE.format(id="ok", when="{kind: message.send}", verdict="warn", notice="n",
                                         clause="c"))
    good = load_policy(path)
    path.write_text(path.read_text() + RULE.format(id="bad", when="{outside: nowhere}", verdict="block",
                                                   notice="n", clause="c"))
    with pytest.raises(FileProblems):
        load_policy(path)
    assert good.evaluate(make_action()).rule_ids == ("ok",)


def test_policy_files_lists_what_was_read(policy):
    """The policy names every file it read, so a watcher can reload when one changes."""
    names = {p.name for p in policy.files}
    assert {"st-wilfrids.yaml", "absence.txt", "example.calendar.yaml"} <= names


def test_never_opening_defer_window_holds_instead(tmp_path: Path):
    """A defer whose window never opens again goes to a person (hold), never silently through."""
    calendar = write(tmp_path / "cal.yaml", "terms:\n  - {from: 2026-01-01, to: 2026-01-02}\n"
                     "closures:\n  - {from: 2026-01-03, to: 2027-01-31, reason: building work}\n"
                     "  - {from: 2027-02-01, to: 2028-02-28, reason: more building work}\n"
                     "  - {from: 2028-02-29, to: 2029-03-31, reason: still more}\n")
    path = write(tmp_path / "rules.yaml", "default: {verdict: allow}\nwindows:\n"
                 "  day: {days: [mon, tue, wed, thu, fri], from: '08:00', to: '17:00', closed_on: [closures]}\n"
                 "rules:\n  - {id: late, when: {outside: day}, verdict: defer, release_window: day, notice: n,"
                 " clause: c}\n")
    decision = load_policy(path, calendar=calendar).evaluate(make_action(at="2026-06-01T10:00:00+00:00"))
    assert decision.verdict is Verdict.HOLD
    assert decision.release_at is None


def test_problems_of_a_folder_come_file_by_file_in_line_order(tmp_path: Path):
    """Every problem of every file at once, in the order the files are read, then by line."""
    (tmp_path / "b.yaml").write_text("default: {verdict: allow}\nrules:\n  - id: x\n    when: {kind: nope}\n"
                                     "    verdict: block\n    notice: n\n    clause: c\n", encoding="utf-8")
    (tmp_path / "a.yaml").write_text("windows:\n  day: {days: [mon], from: '08:00', to: '17:00'}\n"
                                     "rules:\n  - id: y\n    when: {kind: message.send}\n    verdict: blok\n"
                                     "    notice: n\n    clause: c\n  - id: z\n    colour: red\n", encoding="utf-8")
    with pytest.raises(FileProblems) as caught:
        load_policy(tmp_path)
    places = [(Path(p.file).name, p.line) for p in caught.value.problems]
    assert places == sorted(places) and places[0][0] == "a.yaml" and places[-1][0] == "b.yaml"
    assert len({name for name, _ in places}) == 2
