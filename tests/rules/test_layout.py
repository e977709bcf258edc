"""A policy folder's files are told apart by name: rules, companion tests, calendars, lists; misnamed files are named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dojoguard.rules.policy import builtin_calendar, builtin_folder, builtin_path, load_policy, policy_files
from dojoguard.yamlfile import FileProblems

from .conftest import write
from .test_cli import run

RULES = ("default: {verdict: allow}\nrules:\n"
         "  - {id: r, when: {kind: message.send}, verdict: block, notice: n, clause: c}\n")
CALENDAR = "school: Test School\nterms:\n  - {name: Autumn, from: 2026-09-03, to: 2026-12-18}\n"


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    return write(tmp_path / "config.yaml", f"data_dir: {tmp_path / 'data'}\n")


def _problems(source, **kwargs) -> list:
    with pytest.raises(FileProblems) as caught:
        load_policy(source, **kwargs)
    return caught.value.problems


def _copy_as_the_old_docs_said(folder: Path) -> Path:
    """The rules, lists and companion tests copied by hand, without the calendar the tests name."""
    folder.mkdir()
    shutil.copy(builtin_path(), folder / "st-wilfrids.yaml")
    shutil.copy(builtin_path().with_name("st-wilfrids.tests.yaml"), folder / "st-wilfrids.tests.yaml")
    shutil.copytree(builtin_folder() / "lists", folder / "lists")
    return folder


def test_the_shipped_policy_lives_apart_from_the_code():
    """The shipped rules, tests, calendar and lists are in their own folder, with no code beside them."""
    folder = builtin_folder()
    assert folder.parts[-2:] == ("policies", "st-wilfrids")
    assert builtin_path().parent == builtin_calendar().parent == folder
    assert sorted(p.name for p in folder.iterdir()) == ["example.calendar.yaml", "lists", "st-wilfrids.tests.yaml",
                                                        "st-wilfrids.yaml"]
    assert not list((folder.parent.parent / "rules").glob("*.yaml"))


def test_the_shipped_folder_loads_as_a_policy_folder():
    """Loaded as a folder, the shipped policy is its one rule file: the tests and the calendar are told apart by name."""
    assert policy_files(builtin_folder()) == [builtin_path()]
    assert len(load_policy(builtin_folder(), calendar=builtin_calendar()).rules) == 23


def test_a_calendar_under_a_rule_file_name_gets_one_clear_error(tmp_path):
    """calendar.yaml in the folder: one DG-RULES-FOLDER error at its first key, saying what to call it."""
    write(tmp_path / "rules.yaml", RULES)
    write(tmp_path / "calendar.yaml", "# our dates\n" + CALENDAR)
    [problem] = _problems(tmp_path)
    assert (problem.code, problem.file, problem.line, problem.column) == \
        ("DG-RULES-FOLDER", str(tmp_path / "calendar.yaml"), 2, 1)
    assert problem.message == "this looks like a school calendar, not a rule file"
    assert "Rename it school.calendar.yaml" in problem.hint and "rules.calendar" in problem.hint


def test_the_old_example_calendar_name_is_told_its_new_name(settings, tmp_path):
    """The issue's case through the CLI: example-calendar.yaml in the folder is named, once, with the name to use."""
    folder = _copy_as_the_old_docs_said(tmp_path / "rules")
    shutil.copy(builtin_calendar(), folder / "example-calendar.yaml")
    result = run(settings, "rules", "check", str(folder))
    assert result.exit_code == 2, result.output
    assert result.output.count("DG-") == 1
    line = builtin_calendar().read_text("utf-8").splitlines().index("school: St Wilfrid's CE Primary School") + 1
    assert f"example-calendar.yaml:{line}:1: DG-RULES-FOLDER this looks like a school calendar" in result.output
    assert "Rename it example.calendar.yaml" in result.output
    (folder / "example-calendar.yaml").rename(folder / "example.calendar.yaml")
    assert run(settings, "rules", "check", str(folder)).exit_code == 0
    assert run(settings, "rules", "test", str(folder)).exit_code == 0


def test_a_calendar_with_a_misspelt_key_is_still_recognised(tmp_path):
    """Walking around the check with a typo of the calendar's own (`term:`) still gives the one calendar error."""
    write(tmp_path / "rules.yaml", RULES)
    write(tmp_path / "dates.yaml", "school: Test School\nterm:\n  - {from: 2026-09-03, to: 2026-12-18}\n")
    [problem] = _problems(tmp_path)
    assert "looks like a school calendar" in problem.message and "dates.calendar.yaml" in problem.hint


def test_a_rule_file_with_a_calendar_key_is_still_checked_as_rules(tmp_path):
    """A real rule file that also carries `terms:` is not waved through as a calendar: its unknown key is reported."""
    write(tmp_path / "rules.yaml", RULES + "terms: []\n")
    [problem] = _problems(tmp_path)
    assert problem.code == "DG-RULES-UNKNOWN-KEY" and "terms" in problem.message


def test_calendar_files_by_name_are_never_rules(tmp_path):
    """NAME.calendar.yaml beside the rules is left out of the rules, and used when named as the calendar."""
    write(tmp_path / "rules.yaml", RULES)
    calendar = write(tmp_path / "school.calendar.yaml", CALENDAR)
    assert policy_files(tmp_path) == [tmp_path / "rules.yaml"]
    policy = load_policy(tmp_path, calendar=calendar)
    assert Path(policy.calendar.file) == calendar and len(policy.rules) == 1


def test_the_calendar_the_setting_names_is_never_rules(settings, tmp_path):
    """A calendar in the folder under any name is not read as rules when `rules.calendar` names it."""
    folder = tmp_path / "rules"
    write(folder / "rules.yaml", RULES)
    write(folder / "term-dates.yaml", CALENDAR)
    assert policy_files(folder, calendar=folder / "term-dates.yaml") == [folder / "rules.yaml"]
    configured = write(tmp_path / "site.yaml", f"data_dir: {tmp_path / 'data'}\n"
                       f"rules:\n  policy: {folder}\n  calendar: {folder / 'term-dates.yaml'}\n")
    result = run(configured, "rules", "check")
    assert result.exit_code == 0, result.output
    assert "1 rules" in result.output


def test_a_calendar_passed_as_the_policy_is_told_where_it_belongs(tmp_path):
    """Pointing the policy at a calendar file: the hint says to use `rules.calendar`, not rename it."""
    [problem] = _problems(write(tmp_path / "school.calendar.yaml", CALENDAR))
    assert "looks like a school calendar" in problem.message
    assert "not `rules.policy`" in problem.hint and "Rename" not in problem.hint


def test_companion_tests_under_a_rule_file_name_get_one_clear_error(tmp_path):
    """Tests saved as st-wilfrids-tests.yaml are not read as a rule file with unknown keys: one error names the fix."""
    write(tmp_path / "st-wilfrids.yaml", RULES)
    write(tmp_path / "st-wilfrids-tests.yaml", "calendar: x.calendar.yaml\ncases: []\n")
    [problem] = _problems(tmp_path)
    assert (problem.code, problem.line) == ("DG-RULES-FOLDER", 2)
    assert problem.message == "this looks like companion tests, not a rule file"
    assert ".tests.yaml" in problem.hint


@pytest.mark.parametrize("name", ["extra.yml", "extra.YAML", "extra.Yml"])
def test_a_yml_file_is_not_left_out_silently(tmp_path, name):
    """A rule file saved as .yml (or in capitals) is an error naming it, not a rule quietly missing from the policy."""
    write(tmp_path / "rules.yaml", RULES)
    write(tmp_path / name, RULES.replace("id: r", "id: s"))
    [problem] = _problems(tmp_path)
    assert (problem.code, problem.file) == ("DG-RULES-FOLDER", str(tmp_path / name))
    assert "Rename it extra.yaml" in problem.hint


def test_a_folder_of_only_tests_and_calendars_has_no_rule_files(tmp_path):
    """Tests and calendars alone are no policy: the folder error, not an empty policy that allows everything."""
    write(tmp_path / "a.tests.yaml", "cases: []\n")
    write(tmp_path / "a.calendar.yaml", CALENDAR)
    [problem] = _problems(tmp_path)
    assert problem.code == "DG-RULES-FOLDER" and "no rule files" in problem.message


def test_a_hand_copy_without_the_calendar_says_which_line_needs_it(settings, tmp_path):
    """The issue's case: the tests' calendar missing from a hand copy is named at the test file's line, with a hint."""
    folder = _copy_as_the_old_docs_said(tmp_path / "rules")
    tests = folder / "st-wilfrids.tests.yaml"
    line = tests.read_text("utf-8").splitlines().index("calendar: example.calendar.yaml") + 1
    result = run(settings, "rules", "test", str(folder))
    assert result.exit_code == 2, result.output
    assert f"{tests}:{line}:11: DG-RULETEST-CALENDAR the calendar 'example.calendar.yaml' the cases assume is not there" in result.output
    assert "rules init" in result.output
    assert "DG-FILE-MISSING" not in result.output
