"""The second shipped example policy (Oakfield, a made-up school): it loads, its companion tests pass, it uses
the newer parts of the rule language, and `rules init --example oakfield` copies it in working order."""

from __future__ import annotations

from pathlib import Path

from dojoguard.rules.casebook import load_casebook, run_cases
from dojoguard.rules.policy import EXAMPLES, builtin_folder, companion_tests, load_policy

from .conftest import write
from .test_cli import run


def test_every_shipped_example_passes_its_companion_tests():
    for example in EXAMPLES:
        folder = builtin_folder(example)
        [rules] = [p for p in folder.glob("*.yaml") if not p.name.endswith((".tests.yaml", ".calendar.yaml"))]
        casebook = load_casebook(companion_tests(rules))
        policy = load_policy(folder, calendar=casebook.calendar)
        outcomes = run_cases(casebook, policy)
        failed = [(o.case.name, o.failures) for o in outcomes if not o.passed]
        assert outcomes and failed == [], example


def test_oakfield_uses_roles_classes_comments_replies_counts_strikes_and_a_check():
    policy = load_policy(builtin_folder("oakfield"), calendar=builtin_folder("oakfield") / "example.calendar.yaml")
    text = "\n".join(str(rule.when) for rule in policy.rules)
    for key in ("'role'", "'taught_by_author'", "'on'", "'reply'", "'count'", "'strikes'"):
        assert key in text, key
    assert [c.id for c in policy.checks] == ["two-videos-a-week"]
    assert policy.strike_rules == {"repeated-misuse"}


def test_rules_init_copies_oakfield_and_the_copy_checks_and_tests_clean(tmp_path: Path):
    settings = write(tmp_path / "config.yaml", f"data_dir: {tmp_path / 'data'}\n")
    folder = tmp_path / "oakfield"
    result = run(settings, "rules", "init", "--example", "oakfield", str(folder))
    assert result.exit_code == 0, result.output
    assert (folder / "oakfield.yaml").is_file() and (folder / "schema.json").is_file()
    tested = run(settings, "rules", "test", str(folder))
    assert tested.exit_code == 0 and "22 passed, 0 failed" in tested.output, tested.output
    checked = run(settings, "rules", "check", str(folder), "--calendar", str(folder / "example.calendar.yaml"))
    assert checked.exit_code == 0 and "8 rules" in checked.output, checked.output


def test_an_unknown_example_is_refused(tmp_path: Path):
    settings = write(tmp_path / "config.yaml", f"data_dir: {tmp_path / 'data'}\n")
    result = run(settings, "rules", "init", "--example", "hogwarts", str(tmp_path / "x"))
    assert result.exit_code == 2 and "st-wilfrids" in result.output
