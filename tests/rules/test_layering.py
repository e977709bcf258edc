"""Trust-wide base rules: a school's rule files extend the trust's base and every way to weaken it is refused.

Real rule files in tmp_path, the real loader and engine. For each "cannot
weaken" check there is the test that tries to walk around it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dojoguard.rules import grants
from dojoguard.rules.decision import Verdict
from dojoguard.rules.exemptions import Exemption, Exemptions
from dojoguard.rules.policy import load_policy
from dojoguard.yamlfile import FileProblems, Problem

from .conftest import make_action, write

BASE = """\
policy: {name: Northfield Learning Trust base rules}
default: {verdict: allow}
bank_holidays: england-and-wales
windows:
  messaging-hours: {days: [mon, tue, wed, thu, fri], from: "07:30", to: "18:00", closed_on: [bank_holidays]}
lists:
  safeguarding: {phrases: [scared to go home, hurt me]}
device_groups:
  trust-devices: [10.20.0.0/16]
teacher_groups:
  trust-leaders: [t-head]
rules:
  - id: trust-messaging-hours
    when: {kind: message.send, outside: messaging-hours}
    verdict: block
    notice: Messages go out 7.30am to 6pm on weekdays.
    clause: Messages are sent only in the trust's hours.
  - id: trust-safeguarding
    when: {kind: message.send, phrases: safeguarding}
    verdict: hold
    notice: A leader will read this first.
    clause: Safeguarding concerns go to the DSL.
checks:
  - id: trust-videos
    clause: Two videos a week
    at: {days: [fri], time: "15:00"}
    count: {of: {kind: story.post, attachment: video}, per: class, within: this week, fewer_than: 2}
"""

SCHOOL = """\
policy: {name: "Oak Primary School, Class Dojo policy"}
windows:
  school-hours: {days: [mon, tue, wed, thu, fri], from: "08:00", to: "17:00"}
rules:
  - id: school-hours
    when: {kind: message.send, outside: school-hours}
    verdict: hold
    notice: A leader looks at messages outside 8am to 5pm.
    clause: Messages are sent in school hours.
"""

MONDAY_10 = "2026-11-30T10:00:00+00:00"
MONDAY_1730 = "2026-11-30T17:30:00+00:00"
MONDAY_19 = "2026-11-30T19:00:00+00:00"


def rule(rule_id: str, when: str, verdict: str = "block", *extra: str) -> str:
    return "\n".join([f"  - id: {rule_id}", f"    when: {when}", f"    verdict: {verdict}", "    notice: n",
                      "    clause: c", *extra]) + "\n"


def folders(tmp_path: Path, school: str | dict[str, str], base: str | dict[str, str] = BASE) -> tuple[Path, Path]:
    """A base folder and a school folder, each of one file (a string) or of several (name -> text)."""
    for name, files in (("base", base), ("school", school)):
        for file, text in ({f"{name}.yaml": files} if isinstance(files, str) else files).items():
            write(tmp_path / name / file, text)
    return tmp_path / "base", tmp_path / "school"


def layered(tmp_path: Path, school: str | dict[str, str] = SCHOOL, base: str | dict[str, str] = BASE, **kwargs):
    base_folder, school_folder = folders(tmp_path, school, base)
    return load_policy(school_folder, base=base_folder, **kwargs)


def problems(tmp_path: Path, school: str | dict[str, str], base: str | dict[str, str] = BASE,
             **kwargs) -> list[Problem]:
    with pytest.raises(FileProblems) as caught:
        layered(tmp_path, school, base, **kwargs)
    return caught.value.problems


def weakening(tmp_path: Path, school, base=BASE, **kwargs) -> list[tuple[str, int, str]]:
    """(file name, line, message) of every DG-RULES-BASE problem; there must be nothing else."""
    found = problems(tmp_path, school, base, **kwargs)
    assert {p.code for p in found} == {"DG-RULES-BASE"}, [str(p) for p in found]
    return [(Path(p.file).name, p.line, p.message) for p in found]


# -- the policy in force ----------------------------------------------------------

def test_the_policy_in_force_is_the_base_and_the_school_together(tmp_path):
    """Both sets of rules, the base's first; the school's name; the revision covers the base's files."""
    policy = layered(tmp_path)
    assert [r.id for r in policy.rules] == ["trust-messaging-hours", "trust-safeguarding", "school-hours"]
    assert [policy.from_base(r) for r in policy.rules] == [True, True, False]
    assert policy.name == "Oak Primary School, Class Dojo policy"
    assert set(policy.windows) == {"messaging-hours", "school-hours"}
    assert tmp_path / "base" / "base.yaml" in policy.files
    alone = load_policy(write(tmp_path / "alone" / "school.yaml", SCHOOL + "default: {verdict: allow}\n"))
    assert policy.revision != alone.revision
    (tmp_path / "base" / "base.yaml").write_text(BASE.replace('"18:00"', '"17:45"'), "utf-8")
    assert load_policy(tmp_path / "school", base=tmp_path / "base").revision != policy.revision


def test_without_a_base_a_policy_loads_exactly_as_before(tmp_path):
    """`base=None` is the old loader: same rules, same revision, nothing is a base rule."""
    path = write(tmp_path / "rules.yaml", BASE)
    plain, none = load_policy(path), load_policy(path, base=None)
    assert plain.revision == none.revision and plain.base_files == frozenset()
    assert not any(plain.from_base(r) for r in plain.rules)


def test_the_school_uses_the_bases_names_in_its_own_rules(tmp_path):
    """A school rule may name the base's windows, lists and groups: extending is what the school is for."""
    school = "rules:\n" + rule("night-words", "{kind: message.send, phrases: safeguarding, outside: school-hours}") \
        + rule("leaders-off-site", "{teacher: {in_group: trust-leaders}, device: {not_in_group: trust-devices}}",
               "warn") + "windows:\n  school-hours: {days: [mon], from: '08:00', to: '17:00'}\n"
    policy = layered(tmp_path, school)
    decision = policy.evaluate(make_action(text="I am scared to go home", at=MONDAY_19))
    assert decision.verdict is Verdict.BLOCK
    assert set(decision.rule_ids) == {"trust-messaging-hours", "trust-safeguarding", "night-words"}


# -- deny-overrides: a school rule never lowers a base verdict ---------------------

def test_a_school_allow_rule_cannot_override_a_base_block(tmp_path):
    """A school rule that allows exactly the base's blocked action: the engine still blocks, with the base's notice."""
    school = "rules:\n" + rule("evening-messages-ok", "{kind: message.send, outside: messaging-hours}", "allow")
    policy = layered(tmp_path, school)
    decision = policy.evaluate(make_action(text="PE tomorrow", at=MONDAY_19))
    assert decision.verdict is Verdict.BLOCK
    assert decision.rule_ids == ("trust-messaging-hours", "evening-messages-ok")
    assert decision.notice == "Messages go out 7.30am to 6pm on weekdays."


def test_a_school_rule_is_stricter_where_it_is_stricter(tmp_path):
    """Between the school's 17:00 and the trust's 18:00 the school's hold applies; after 18:00 the base's block."""
    policy = layered(tmp_path)
    assert policy.evaluate(make_action(text="hi", at=MONDAY_10)).verdict is Verdict.ALLOW
    assert policy.evaluate(make_action(text="hi", at=MONDAY_1730)).verdict is Verdict.HOLD
    assert policy.evaluate(make_action(text="hi", at=MONDAY_19)).verdict is Verdict.BLOCK


def test_a_school_defer_with_an_earlier_window_does_not_release_a_base_deferral_sooner(tmp_path):
    """Deferred by both: released when the later of the two windows opens (the base's 08:00), never the school's
    06:00."""
    base = BASE.replace("    verdict: block\n    notice: Messages go out",
                        "    verdict: defer\n    release_window: messaging-hours\n    notice: Messages go out")
    school = "windows:\n  early: {days: [mon, tue, wed, thu, fri], from: '06:00', to: '22:00'}\nrules:\n" + \
        rule("early-release", "{kind: message.send, outside: early}", "defer", "    release_window: early")
    decision = layered(tmp_path, school, base).evaluate(make_action(text="hi", at="2026-11-30T23:00:00+00:00"))
    assert decision.verdict is Verdict.DEFER
    assert decision.release_at == datetime(2026, 12, 1, 7, 30, tzinfo=UTC)


# -- ids --------------------------------------------------------------------------

def test_a_school_rule_may_not_reuse_a_base_rule_id(tmp_path):
    """Reusing a base id would replace the base's rule: refused, naming the school's line and the base's rule."""
    school = "rules:\n" + rule("trust-messaging-hours", "{kind: message.send, outside: messaging-hours}", "warn")
    (found,) = weakening(tmp_path, school)
    assert found[:2] == ("school.yaml", 2)
    assert "rule id 'trust-messaging-hours' is the trust's base rule" in found[2]
    assert f"{tmp_path / 'base' / 'base.yaml'}:13" in found[2]


@pytest.mark.parametrize("written", ["Trust-Messaging-Hours", "' trust-messaging-hours'", "'trust-messaging-hours '",
                                     "trust\u2010messaging\u2010hours", "TRUST-MESSAGING-HOURS"])
def test_the_same_id_in_another_case_or_with_spaces_is_refused_not_loaded_as_a_new_rule(tmp_path, written):
    """Ids are not normalised, so a base id in capitals, with a space or a look-alike hyphen is no new rule that could
    sit beside the base's: the schema refuses it and the policy does not load."""
    school = "rules:\n" + rule(written, "{kind: message.send}", "warn")
    found = problems(tmp_path, school)
    assert [(Path(p.file).name, p.code) for p in found] == [("school.yaml", "DG-RULES-VALUE")]


def test_a_school_check_may_not_reuse_a_base_check_id(tmp_path):
    school = SCHOOL + "checks:\n  - id: trust-videos\n    clause: c\n    at: {days: [mon], time: '09:00'}\n" \
                      "    count: {of: {kind: story.post}, per: class, within: this week, fewer_than: 1}\n"
    (found,) = weakening(tmp_path, school)
    assert found[0] == "school.yaml" and "scheduled check id 'trust-videos' is the trust's base" in found[2]


def test_two_base_files_reusing_an_id_is_still_a_duplicate_not_a_weakening(tmp_path):
    """Inside the base (and inside the school) the old duplicate check stands."""
    base = {"a.yaml": BASE, "b.yaml": "rules:\n" + rule("trust-safeguarding", "{kind: story.post}")}
    found = problems(tmp_path, SCHOOL, base)
    assert [(Path(p.file).name, p.code) for p in found] == [("b.yaml", "DG-RULES-DUPLICATE-ID")]


# -- named definitions -----------------------------------------------------------------

@pytest.mark.parametrize("section, definition", [
    ("windows", "messaging-hours: {days: [mon, tue, wed, thu, fri, sat, sun], from: '00:00', to: '24:00'}"),
    ("lists", "safeguarding: {phrases: [zzzz]}"),
    ("device_groups", "trust-devices: [0.0.0.0/0]"),
    ("teacher_groups", "trust-leaders: [t1, t2, t3]"),
])
def test_a_school_file_may_not_redefine_a_base_name(tmp_path, section, definition):
    """Redefining the base's window, list or group would change what base rules match: refused at the school's key."""
    school = SCHOOL.replace("windows:\n", f"windows:\n  {definition}\n") if section == "windows" else \
        SCHOOL + f"{section}:\n  {definition}\n"
    (found,) = weakening(tmp_path, school)
    name = definition.split(":")[0]
    assert found[0] == "school.yaml"
    assert f"{name!r} is defined by the trust's base rules" in found[2] and "may not redefine it" in found[2]


def test_redefining_a_base_window_through_a_second_school_file_is_refused_too(tmp_path):
    """The school's folder is one policy with the base: a second school file is no way round."""
    school = {"school.yaml": SCHOOL,
              "zz-hours.yaml": "windows:\n  messaging-hours: {days: [sat], from: '00:00', to: '01:00'}\n"}
    assert weakening(tmp_path, school) == [
        ("zz-hours.yaml", 2, f"window 'messaging-hours' is defined by the trust's base rules "
                             f"({tmp_path / 'base' / 'base.yaml'}:5); a school file may not redefine it")]


def test_the_base_file_put_in_the_school_folder_is_refused(tmp_path):
    """The same file in both (a link to the base in the school's folder) is one clear problem, not a screenful of
    redefinitions."""
    base_folder, school_folder = folders(tmp_path, SCHOOL)
    os.symlink(base_folder / "base.yaml", school_folder / "trust.yaml")
    with pytest.raises(FileProblems) as caught:
        load_policy(school_folder, base=base_folder)
    (found,) = caught.value.problems
    assert found.code == "DG-RULES-BASE" and found.file == str(school_folder / "trust.yaml")
    with pytest.raises(FileProblems) as caught:
        load_policy(base_folder, base=base_folder)
    assert {p.code for p in caught.value.problems} == {"DG-RULES-BASE"}


def test_a_copy_of_the_base_edited_in_the_school_folder_is_refused(tmp_path):
    """Copying the base's file and loosening it: every base id and name it repeats is refused."""
    loosened = BASE.replace("verdict: block", "verdict: warn").replace("policy: {name: Northfield", "policy: {name: X")
    found = weakening(tmp_path, {"school.yaml": SCHOOL, "trust-copy.yaml": loosened.replace("default: {verdict: allow}\n",
                                                                                         "")})
    assert {f[0] for f in found} == {"trust-copy.yaml"}
    assert len(found) == 7  # a window, a list, two groups, two rules and a check


# -- defaults and verdicts --------------------------------------------------------

ORDERED = list(Verdict)  # the engine's own order, least strict first


@pytest.mark.parametrize("base_default", ORDERED, ids=str)
@pytest.mark.parametrize("school_default", ORDERED, ids=str)
def test_the_school_default_is_at_least_as_strict_as_the_bases(tmp_path, base_default, school_default):
    """Every pair of verdicts, by the engine's order: a less strict school default is refused, any other is in force."""
    base = BASE.replace("default: {verdict: allow}", f"default: {{verdict: {base_default}}}").replace(
        "verdict: hold\n", "verdict: block\n")
    school = "rules:\n" + rule("school-late", "{kind: message.send, outside: messaging-hours}") \
        + f"default: {{verdict: {school_default}}}\n"
    if school_default.strictness < base_default.strictness:
        (found,) = weakening(tmp_path, school, base)
        assert found[0] == "school.yaml" and found[2].startswith(
            f"the school's default verdict {school_default} is less strict than the trust's base default "
            f"{base_default}")
    else:
        policy = layered(tmp_path, school, base)
        assert policy.default_verdict is school_default


def test_a_school_default_of_allow_when_the_base_says_block_is_refused(tmp_path):
    base = BASE.replace("default: {verdict: allow}", "default: {verdict: block}")
    (found,) = weakening(tmp_path, SCHOOL.replace("verdict: hold", "verdict: block") + "default: {verdict: allow}\n",
                         base)
    assert found[:2] == ("school.yaml", 10)


def test_a_school_without_a_default_has_the_bases(tmp_path):
    policy = layered(tmp_path)
    assert policy.default_verdict is Verdict.ALLOW and policy.default_file == str(tmp_path / "base" / "base.yaml")


def test_a_school_rule_less_strict_than_the_base_default_is_refused(tmp_path):
    """With the base's default `block`, a school `allow` rule would let through what no base rule matches (the
    default's, not a rule's): refused, while a school `block` rule is welcome."""
    base = BASE.replace("default: {verdict: allow}", "default: {verdict: block}")
    school = "rules:\n" + rule("stories-ok", "{kind: story.post}", "allow") + rule("no-points", "{kind: points.award}")
    (found,) = weakening(tmp_path, school, base)
    assert found[:2] == ("school.yaml", 4)
    assert "verdict allow is less strict than the trust's base default block" in found[2]
    policy = layered(tmp_path / "ok", "rules:\n" + rule("no-points", "{kind: points.award}"), base)
    assert policy.evaluate(make_action(kind="story.post", channel="class_story")).verdict is Verdict.BLOCK
    assert policy.evaluate(make_action(kind="points.award", channel="points")).verdict is Verdict.BLOCK


# -- what base rules name ---------------------------------------------------------

@pytest.mark.parametrize("base_rule, school_defines", [
    (rule("trust-stories", "{kind: story.post, outside: story-hours}"),
     "windows:\n  story-hours: {days: [mon, tue, wed, thu, fri, sat, sun], from: '00:00', to: '24:00'}\n"),
    (rule("trust-trips", "{kind: message.send, phrases: trip-words}"), "lists:\n  trip-words: {phrases: [zzzz]}\n"),
    (rule("trust-points", "{kind: points.award, points: {skill_not_in: skills}}", "warn"),
     "lists:\n  skills: {phrases: [anything]}\n"),
    (rule("trust-devices", "{kind: story.post, device: {not_in_group: story-devices}}"),
     "device_groups:\n  story-devices: [0.0.0.0/0]\n"),
    (rule("trust-leaders", "{kind: story.post, channel: school_story, not: {teacher: {in_group: leaders}}}"),
     "teacher_groups:\n  leaders: [t1]\n"),
    (rule("trust-defer", "{kind: message.send, text_longer_than: 900}", "defer", "    release_window: later"),
     "windows:\n  later: {days: [mon], from: '08:00', to: '09:00'}\n"),
    (rule("trust-strikes", "{strikes: {rules: [school-hours], within: 7 days, at_least: 3}}"), ""),
])
def test_a_base_rule_may_not_name_what_only_the_school_defines(tmp_path, base_rule, school_defines):
    """The school would decide what the base's rule tests (a window open all week, a list of nothing, a rule that
    never blocks): refused in the base's file, naming the school's."""
    school = SCHOOL.replace("windows:\n", school_defines, 1) if school_defines.startswith("windows:") else \
        SCHOOL + school_defines
    (found,) = weakening(tmp_path, school, BASE.replace("checks:", base_rule.rstrip("\n") + "\nchecks:"))
    assert found[0] == "base.yaml" and "which only the school's file" in found[2]


def test_a_base_rule_may_name_a_device_group_only_the_settings_define(tmp_path):
    """The school's networks live in its settings (proxy.device_groups), not in its rule files."""
    base = BASE.replace("checks:", rule("trust-ipads", "{kind: story.post, device: {not_in_group: school-devices}}")
                        .rstrip("\n") + "\nchecks:")
    policy = layered(tmp_path, SCHOOL, base, device_groups={"school-devices": ["10.30.0.0/16"]})
    assert policy.rule("trust-ipads") is not None


def test_a_name_defined_nowhere_is_undefined_not_a_weakening(tmp_path):
    base = BASE.replace("checks:", rule("trust-x", "{kind: story.post, inside: nowhere}").rstrip("\n") + "\nchecks:")
    assert [p.code for p in problems(tmp_path, SCHOOL, base)] == ["DG-RULES-UNDEFINED"]


# -- bank holidays and incomplete --------------------------------------------------

def test_a_school_may_not_change_the_bank_holidays_base_windows_close_on(tmp_path):
    """`bank_holidays: none` would open the trust's messaging hours on Christmas Day: refused."""
    (found,) = weakening(tmp_path, SCHOOL + "bank_holidays: none\n")
    assert found[0] == "school.yaml" and "would change the days the base's window 'messaging-hours'" in found[2]
    christmas = "2026-12-25T10:00:00+00:00"
    assert layered(tmp_path / "ok", SCHOOL + "bank_holidays: england-and-wales\n").evaluate(
        make_action(text="hi", at=christmas)).verdict is Verdict.BLOCK


def test_a_school_may_name_its_region_when_no_base_window_closes_on_bank_holidays(tmp_path):
    base = BASE.replace(", closed_on: [bank_holidays]", "").replace("bank_holidays: england-and-wales\n", "")
    assert layered(tmp_path, SCHOOL + "bank_holidays: scotland\n", base).rule("school-hours") is not None


def test_the_default_region_is_the_bases_when_it_states_none(tmp_path):
    """A base that leaves `bank_holidays` out means England and Wales: a school may not pick another."""
    base = BASE.replace("bank_holidays: england-and-wales\n", "")
    (found,) = weakening(tmp_path, SCHOOL + "bank_holidays: scotland\n", base)
    assert "leaves it at 'england-and-wales'" in found[2]


INCOMPLETE_WINDOW = ("windows:\n  term-hours: {days: [mon], from: '08:00', to: '17:00', closed_on: [school_holidays],"
                     " outside_calendar: incomplete}\n")


@pytest.mark.parametrize("base_when, verdict", [
    ("{kind: message.send, incomplete: false, text_longer_than: 10}", "block"),
    ("{kind: message.send, not: {incomplete: true}, text_longer_than: 10}", "block"),
    ("{kind: message.send, incomplete: true}", "allow"),
])
def test_a_school_window_may_not_make_actions_incomplete_where_that_weakens_a_base_rule(tmp_path, base_when, verdict):
    """A window with `outside_calendar: incomplete` makes every action off the calendar incomplete, for every rule:
    a base rule that stops matching then (or, less strict than the base's default, starts) would be weakened."""
    base = BASE.replace("default: {verdict: allow}", "default: {verdict: warn}").replace(
        "checks:", rule("trust-incomplete", base_when, verdict).rstrip("\n") + "\nchecks:")
    school = "rules:\n" + rule("term-messages", "{kind: message.send, outside: term-hours}") + INCOMPLETE_WINDOW
    (found,) = weakening(tmp_path, school, base)
    assert found[0] == "school.yaml" and "would switch off the base's rule 'trust-incomplete'" in found[2]


def test_a_school_window_making_actions_incomplete_is_fine_beside_a_fail_closed_base_rule(tmp_path):
    """`incomplete: true` → block in the base only gets stricter when more is incomplete."""
    base = BASE.replace("checks:", rule("trust-incomplete", "{incomplete: true}").rstrip("\n") + "\nchecks:")
    school = "rules:\n" + rule("term-messages", "{kind: message.send, outside: term-hours}") + INCOMPLETE_WINDOW
    policy = layered(tmp_path, school, base)
    assert policy.evaluate(make_action(text="hi", at=MONDAY_10)).verdict is Verdict.BLOCK  # no calendar: incomplete


# -- exemptions ---------------------------------------------------------------------

def _exemption(*rules: str) -> Exemptions:
    start = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    return Exemptions((Exemption("ex-1", rules, start, start + timedelta(hours=4), "Head", "Concert",
                                 everyone=True),))


def test_a_base_file_can_say_no_school_may_exempt_its_rules(tmp_path):
    """`exemptable: false` at the top of the base's file: a headteacher's exemption does not switch its rules off
    (a rule saying `exemptable: true` still can be), and `exempt grant` refuses to write one."""
    base = BASE.replace("rules:\n", "exemptable: false\nrules:\n", 1).replace(
        "    clause: Safeguarding concerns go to the DSL.\n",
        "    clause: Safeguarding concerns go to the DSL.\n    exemptable: true\n")
    policy = layered(tmp_path, SCHOOL, base)
    assert [r.exemptable for r in policy.rules] == [False, True, True]
    decision = policy.evaluate(make_action(text="I am scared to go home", at=MONDAY_19),
                               _exemption("trust-messaging-hours", "trust-safeguarding", "school-hours"))
    assert decision.verdict is Verdict.BLOCK and decision.rule_ids == ("trust-messaging-hours",)
    assert {m.rule_id for m in decision.exempted} == {"trust-safeguarding", "school-hours"}
    with pytest.raises(grants.GrantError, match="one of the trust's base rules"):
        grants.grant(tmp_path / "exemptions.yaml", policy=policy, rules=["trust-messaging-hours"], teachers=[],
                     classes=[], everyone=True, starts=datetime(2026, 12, 1, 17, tzinfo=UTC),
                     ends=datetime(2026, 12, 1, 19, tzinfo=UTC), granted_by="Head", reason="Concert",
                     now=datetime(2026, 12, 1, 9, tzinfo=UTC), max_days=14)


def test_without_the_option_base_rules_are_exemptable_as_before(tmp_path):
    policy = layered(tmp_path)
    decision = policy.evaluate(make_action(text="hi", at=MONDAY_19), _exemption("trust-messaging-hours",
                                                                                "school-hours"))
    assert decision.verdict is Verdict.ALLOW


# -- one pass ------------------------------------------------------------------------

def test_every_problem_of_the_base_and_the_school_comes_at_once_base_first(tmp_path):
    base = BASE.replace("from: \"07:30\"", "from: 730")
    school = SCHOOL + "lists:\n  safeguarding: {phrases: [x]}\n" + "  other: {file: lists/missing.txt}\n"
    found = [(Path(p.file).name, p.code) for p in problems(tmp_path, school, base)]
    assert found == [("base.yaml", "DG-RULES-TYPE"), ("school.yaml", "DG-RULES-BASE"),
                     ("school.yaml", "DG-LIST-MISSING")]


def test_a_base_folder_without_rule_files_says_it_is_the_base(tmp_path):
    (tmp_path / "base").mkdir()
    write(tmp_path / "school" / "school.yaml", SCHOOL + "default: {verdict: allow}\n")
    with pytest.raises(FileProblems) as caught:
        load_policy(tmp_path / "school", base=tmp_path / "base")
    (found,) = caught.value.problems
    assert found.code == "DG-RULES-FOLDER" and "the trust's base rules, `rules.base`" in found.message
    assert "`rules.base`" in found.hint


# -- the documentation's example ----------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def _docs_block(first_line: str) -> str:
    return DOCS.read_text("utf-8").split(f"```yaml\n{first_line}\n", 1)[1].split("```", 1)[0]


def test_the_example_in_the_docs_loads_and_decides_as_the_docs_say(tmp_path):
    """docs/rules.md's base and school folders load together; 5.30pm is held, 7pm blocked, a school `allow` for the
    evening changes nothing, and no base rule can be exempted."""
    write(tmp_path / "trust-base" / "trust.yaml", _docs_block("# trust-base/trust.yaml"))
    write(tmp_path / "trust-base" / "lists" / "safeguarding.txt", "scared to go home\n")
    school = _docs_block("# rules/oak.yaml")
    write(tmp_path / "rules" / "oak.yaml", school)
    policy = load_policy(tmp_path / "rules", base=tmp_path / "trust-base")
    assert policy.evaluate(make_action(text="hi", at=MONDAY_1730)).verdict is Verdict.HOLD
    assert policy.evaluate(make_action(text="hi", at=MONDAY_19)).verdict is Verdict.BLOCK
    assert [r.exemptable for r in policy.rules] == [False, False, True, True]
    write(tmp_path / "rules" / "oak.yaml", school + rule("evenings", "{kind: message.send, outside: messaging-hours}",
                                                          "allow"))
    evening = load_policy(tmp_path / "rules", base=tmp_path / "trust-base")
    assert evening.evaluate(make_action(text="hi", at=MONDAY_19)).verdict is Verdict.BLOCK


def test_the_folder_problems_of_the_base_and_the_school_come_together(tmp_path):
    (tmp_path / "base").mkdir()
    write(tmp_path / "base" / "trust.yml", BASE)
    (tmp_path / "school").mkdir()
    with pytest.raises(FileProblems) as caught:
        load_policy(tmp_path / "school", base=tmp_path / "base")
    assert [(p.code, Path(p.file).name) for p in caught.value.problems] == [("DG-RULES-FOLDER", "trust.yml"),
                                                                            ("DG-RULES-FOLDER", "school")]
