"""`dojoguard rules init DIR`: the built-in policy as a folder that checks and tests clean, as docs/rules.md says."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from dojoguard import config
from dojoguard.cli import cli
from dojoguard.proxy.services import load_policy
from dojoguard.proxy.settings import Settings
from dojoguard.rules.policy import builtin_path


def run(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def test_the_folder_checks_and_tests_clean_and_the_printed_settings_load_it(tmp_path):
    """The docs' steps: init, check, test, then the printed settings are what the proxy loads."""
    folder = tmp_path / "rules"
    made = run("rules", "init", folder)
    assert made.exit_code == 0, made.output
    assert {p.name for p in folder.iterdir()} >= {"st-wilfrids.yaml", "st-wilfrids.tests.yaml", "lists",
                                                  "example.calendar.yaml", "schema.json", "ruletests.schema.json",
                                                  "calendar.schema.json"}
    checked = run("rules", "check", folder)
    assert checked.exit_code == 0 and checked.output.startswith("ok: "), checked.output
    tested = run("rules", "test", folder)
    assert tested.exit_code == 0 and re.search(r"\n(\d+) passed, 0 failed", tested.output), tested.output
    settings_lines = made.output[made.output.index("rules:\n"):]
    settings_file = tmp_path / "config.yaml"
    settings_file.write_text(f"data_dir: {tmp_path / 'data'}\n{settings_lines}", encoding="utf-8")
    settings = Settings.from_config(config.load(settings_file))
    policy = load_policy(settings)
    assert policy.rule("messaging-hours") is not None
    assert policy.calendar.covers is not None and str(settings.calendar).endswith("example.calendar.yaml")


def test_the_written_files_point_editors_at_the_schemas_beside_them(tmp_path):
    """Each file's first line names a schema that is in the folder (the packaged path is rewritten)."""
    run("rules", "init", tmp_path / "rules")
    for name in ("st-wilfrids.yaml", "st-wilfrids.tests.yaml", "example.calendar.yaml"):
        first = (tmp_path / "rules" / name).read_text("utf-8").splitlines()[0]
        schema = re.fullmatch(r"# yaml-language-server: \$schema=\./(\S+)", first)
        assert schema and (tmp_path / "rules" / schema.group(1)).is_file(), first


def test_a_mistake_made_in_the_written_folder_is_caught(tmp_path):
    """Editing the copy is checked like any rule file: a misspelt verdict fails with its line."""
    folder = tmp_path / "rules"
    run("rules", "init", folder)
    rules = folder / "st-wilfrids.yaml"
    text = rules.read_text("utf-8")
    rules.write_text(text.replace("verdict: block", "verdict: blok", 1), encoding="utf-8")
    checked = run("rules", "check", folder)
    assert checked.exit_code == 2 and "st-wilfrids.yaml:" in checked.output and "blok" in checked.output


def test_init_never_overwrites_without_force_and_refuses_a_file(tmp_path):
    """An existing folder's files are kept (nothing written) unless --force; a file is not a folder."""
    folder = tmp_path / "rules"
    run("rules", "init", folder)
    edited = folder / "st-wilfrids.yaml"
    edited.write_text(edited.read_text("utf-8") + "\n# our edit\n", encoding="utf-8")
    again = run("rules", "init", folder)
    assert again.exit_code == 1 and "nothing was written" in again.output and "--force" in again.output
    assert edited.read_text("utf-8").endswith("# our edit\n")
    forced = run("rules", "init", folder, "--force")
    assert forced.exit_code == 0 and edited.read_bytes() == run_bytes(builtin_path())
    afile = tmp_path / "a-file"
    afile.write_text("x", encoding="utf-8")
    refused = run("rules", "init", afile)
    assert refused.exit_code == 1 and "is a file, not a folder" in refused.output


def run_bytes(packaged):
    return packaged.read_text("utf-8").replace("$schema=../../rules/", "$schema=./").encode("utf-8")


def test_a_calendar_under_a_rule_files_name_is_one_clear_error(tmp_path):
    """A calendar saved as term-dates.yaml in the policy folder: one problem saying what it is and how to name it."""
    folder = tmp_path / "rules"
    run("rules", "init", folder)
    (folder / "example.calendar.yaml").rename(folder / "term-dates.yaml")
    checked = run("rules", "check", folder)
    problems = [line for line in checked.output.splitlines() if re.search(r":\d+:\d+: DG-", line)]
    assert checked.exit_code == 2 and len(problems) == 1, checked.output
    assert "term-dates.yaml:1:1: DG-RULES-NOT-A-RULE-FILE this is a school calendar" in problems[0]
    assert "Name it term-dates.calendar.yaml" in checked.output


def test_the_configured_calendar_in_the_policy_folder_is_not_read_as_rules(tmp_path):
    """rules.calendar may name a file in the policy folder by any name: it is the calendar, never a rule file."""
    folder = tmp_path / "rules"
    run("rules", "init", folder)
    (folder / "example.calendar.yaml").rename(folder / "term-dates.yaml")
    settings_file = tmp_path / "config.yaml"
    settings_file.write_text(f"data_dir: {tmp_path / 'data'}\nrules:\n  policy: {folder}\n"
                             f"  calendar: {folder / 'term-dates.yaml'}\n", encoding="utf-8")
    policy = load_policy(Settings.from_config(config.load(settings_file)))
    assert policy.calendar.covers is not None


def test_a_companion_test_naming_a_rule_that_does_not_exist_fails(tmp_path):
    """`not_rules: [messaging-hour]` could never fail: `rules test` refuses it, naming the rule meant."""
    folder = tmp_path / "rules"
    run("rules", "init", folder)
    tests = folder / "st-wilfrids.tests.yaml"
    text = tests.read_text("utf-8")
    assert "not_rules: [messaging-hours]" in text
    tests.write_text(text.replace("not_rules: [messaging-hours]", "not_rules: [messaging-hour]", 1), encoding="utf-8")
    result = run("rules", "test", folder)
    assert result.exit_code == 2, result.output
    assert "DG-RULETEST-UNKNOWN-RULE" in result.output and "'messaging-hour'" in result.output
    assert "Did you mean 'messaging-hours'?" in result.output
    assert re.search(r"st-wilfrids\.tests\.yaml:\d+:\d+: DG-RULETEST-UNKNOWN-RULE", result.output)


def test_a_missing_calendar_named_by_the_tests_is_reported_at_its_line(tmp_path):
    """The companion tests' calendar is not there: the error names the line and says how to get it."""
    folder = tmp_path / "rules"
    run("rules", "init", folder)
    (folder / "example.calendar.yaml").unlink()
    result = run("rules", "test", folder)
    assert result.exit_code == 2
    assert re.search(r"st-wilfrids\.tests\.yaml:\d+:\d+: DG-RULETEST-CALENDAR the calendar "
                     r"'example\.calendar\.yaml' the cases assume is not there", result.output)
    assert "rules init" in result.output


@pytest.mark.parametrize("name", ["st-wilfrids.yaml", "lists/urgent.txt", "example.calendar.yaml"])
def test_the_built_in_policy_ships_in_its_own_folder_of_the_package(name):
    """The policy's data live apart from the engine's code (dojoguard/policies/, not dojoguard/rules/)."""
    folder = builtin_path().parent
    assert folder.parts[-2:] == ("policies", "st-wilfrids") and (folder / name).is_file()
    assert not list((folder.parent.parent / "rules").glob("*.txt"))
