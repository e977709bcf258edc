"""Trust-wide base rules through the commands: `rules check`, `rules test` and `decide` use the layered policy,
from the setting `rules.base` or --base; `rules test` runs the base's cases against it too."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from dojoguard import config
from dojoguard.cli import cli
from dojoguard.clock import FixedClock
from dojoguard.environment import Environment

from .conftest import write
from .test_layering import BASE, SCHOOL, rule

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

BASE_TESTS = """\
action_defaults: {kind: message.send, channel: message, teacher: {id: t1}, class: {id: c1}}
cases:
  - name: a message at 7pm is refused
    action: {at: "2026-11-30T19:00:00+00:00", text: PE tomorrow}
    expect: {verdict: block, rules: [trust-messaging-hours]}
  - name: a message at 10am goes
    action: {at: "2026-11-30T10:00:00+00:00", text: PE tomorrow}
    expect: {verdict: allow, by_default: true}
"""

SCHOOL_TESTS = """\
action_defaults: {kind: message.send, channel: message, teacher: {id: t1}, class: {id: c1}}
cases:
  - name: a message at 5.30pm is held for a leader
    action: {at: "2026-11-30T17:30:00+00:00", text: PE tomorrow}
    expect: {verdict: hold, rules: [school-hours], not_rules: [trust-messaging-hours]}
"""


@pytest.fixture
def trust(tmp_path: Path) -> tuple[Path, Path]:
    """The trust's base folder and a school's folder, each with companion tests."""
    write(tmp_path / "trust" / "trust.yaml", BASE)
    write(tmp_path / "trust" / "trust.tests.yaml", BASE_TESTS)
    write(tmp_path / "oak" / "oak.yaml", SCHOOL)
    write(tmp_path / "oak" / "oak.tests.yaml", SCHOOL_TESTS)
    return tmp_path / "trust", tmp_path / "oak"


def settings(tmp_path: Path, **rules: str) -> Path:
    return write(tmp_path / "config.yaml", json.dumps({"data_dir": str(tmp_path / "data"), "rules": rules}))


def run(config_file: Path, *args: str, input: str | None = None):
    env = Environment(clock=FixedClock(NOW))
    return CliRunner().invoke(cli, ["--config", str(config_file), *args], obj=env, input=input)


# -- the setting -----------------------------------------------------------------------

def test_the_setting_defaults_to_no_base_and_takes_a_path(tmp_path):
    assert config.load(None)["rules"]["base"] is None
    loaded = config.load(settings(tmp_path, base="trust"))
    assert loaded.path("rules", "base") == tmp_path / "data" / "trust"


def test_the_proxy_settings_carry_the_base(tmp_path):
    from dojoguard.proxy.settings import Settings

    assert Settings.from_config(config.load(settings(tmp_path))).base is None
    assert Settings.from_config(config.load(settings(tmp_path, base=str(tmp_path / "trust")))).base == \
        str(tmp_path / "trust")


# -- rules check ---------------------------------------------------------------------

def test_rules_check_with_base_checks_the_layered_policy(tmp_path, trust):
    base, school = trust
    result = run(settings(tmp_path), "rules", "check", str(school), "--base", str(base))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('ok: Oak Primary School, Class Dojo policy: 3 rules, 2 windows, 1 lists;')
    assert f"base: 2 rules from the trust's base rules {base}, 1 from the school's own" in result.stdout


def test_rules_check_uses_the_configured_base_and_reports_a_weakening(tmp_path, trust):
    base, school = trust
    (school / "oak.yaml").write_text(SCHOOL + "default: {verdict: block}\n" + "bank_holidays: none\n", "utf-8")
    result = run(settings(tmp_path, policy=str(school), base=str(base)), "rules", "check")
    assert result.exit_code == 2
    assert f"{school / 'oak.yaml'}:11:16: DG-RULES-BASE bank_holidays 'none'" in result.output
    assert "Hint: Leave `bank_holidays` out of the school's files." in result.output


def test_base_none_leaves_the_configured_base_out(tmp_path, trust):
    base, school = trust
    (school / "oak.yaml").write_text(SCHOOL + "default: {verdict: allow}\nlists:\n  safeguarding: {phrases: [x]}\n",
                                     "utf-8")
    configured = settings(tmp_path, policy=str(school), base=str(base))
    assert "DG-RULES-BASE list 'safeguarding'" in run(configured, "rules", "check").output  # layered: redefined
    alone = run(configured, "rules", "check", "--base", "none")
    assert alone.exit_code == 0, alone.output
    assert "1 rules" in alone.stdout and "base:" not in alone.stdout


def test_checking_the_base_itself_checks_it_alone(tmp_path, trust):
    """With `rules.base` set, `rules check BASE` is the trust checking its base: not the base laid over itself."""
    base, school = trust
    configured = settings(tmp_path, policy=str(school), base=str(base))
    for path in (base, base / "trust.yaml"):
        result = run(configured, "rules", "check", str(path))
        assert result.exit_code == 0, result.output
        assert "ok: Northfield Learning Trust base rules: 2 rules" in result.stdout and "base:" not in result.stdout


# -- decide ---------------------------------------------------------------------------------

def test_decide_with_base_decides_by_the_layered_policy(tmp_path, trust):
    base, school = trust
    (school / "oak.yaml").write_text(SCHOOL + rule("evening-ok", "{kind: message.send, outside: messaging-hours}",
                                                   "allow"), "utf-8")
    action = json.dumps({"kind": "message.send", "channel": "message", "text": "PE tomorrow"})
    result = run(settings(tmp_path), "decide", "--action", "-", "--at", "2026-11-30T19:00", "--policy", str(school),
                 "--base", str(base), input=action)
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["verdict"] == "block"
    assert [m["rule"] for m in decision["matched"]] == ["trust-messaging-hours", "school-hours", "evening-ok"]
    configured = run(settings(tmp_path, policy=str(school), base=str(base)), "decide", "--action", "-", "--at",
                     "2026-11-30T19:00", input=action)
    assert json.loads(configured.stdout)["verdict"] == "block"


# -- rules test --------------------------------------------------------------------------------

def test_rules_test_runs_the_schools_cases_and_the_bases_against_the_layered_policy(tmp_path, trust):
    base, school = trust
    result = run(settings(tmp_path, policy=str(school), base=str(base)), "rules", "test")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "PASS  a message at 5.30pm is held for a leader",
        f"the trust's base cases ({base / 'trust.tests.yaml'}), against the base and the school's rules together:",
        "PASS  [base] a message at 7pm is refused",
        "PASS  [base] a message at 10am goes",
        "3 passed, 0 failed",
    ]


def test_a_base_case_made_stricter_by_the_school_is_a_note_not_a_failure(tmp_path, trust):
    base, school = trust
    (school / "oak.yaml").write_text(SCHOOL + rule("no-messages", "{kind: message.send}", "warn"), "utf-8")
    (school / "oak.tests.yaml").write_text(SCHOOL_TESTS.replace("name: a message", "name: x"), "utf-8")
    result = run(settings(tmp_path), "rules", "test", str(school), "--base", str(base))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"NOTE  [base] a message at 10am goes  ({base / 'trust.tests.yaml'}:6)" in lines
    assert "      stricter under the school's rules (allowed): expected allow, got warn; a rule matched where the " \
           "default decided" in lines
    assert f"      school rule no-messages ({school / 'oak.yaml'}:10) matched (warn)" in lines
    assert lines[-1] == "2 passed, 0 failed, 1 stricter under the school's rules (notes)"


COUNTED_BASE = BASE.replace("checks:", rule(
    "trust-photo-posts", "{kind: story.post, attachment: photo, count: {of: {kind: story.post, attachment: photo}, "
    "per: class, within: this week, more_than: 2}}", "warn").rstrip("\n") + "\nchecks:")

PHOTO_CASES = """\
  - name: the third photo post of the week is a reminder
    earlier: [{times: 2, action: {kind: story.post, channel: class_story, at: "2026-11-30T10:00:00+00:00",
                                  attachments: [{kind: photo}]}}]
    action: {kind: story.post, channel: class_story, at: "2026-12-02T10:00:00+00:00", attachments: [{kind: photo}]}
    expect: {verdict: warn, rules: [trust-photo-posts]}
"""


def test_a_base_case_made_less_strict_fails_naming_the_school_rule_that_caused_it(tmp_path, trust):
    """The school holds Monday's photo posts: held posts do not go out, so the base's count never reaches its
    limit and Wednesday's third post is no longer a reminder. The failure names the school rule."""
    base, school = trust
    (base / "trust.yaml").write_text(COUNTED_BASE, "utf-8")
    (base / "trust.tests.yaml").write_text(BASE_TESTS + PHOTO_CASES, "utf-8")
    (school / "oak.yaml").write_text(SCHOOL.replace("windows:\n", "windows:\n  mondays: {days: [mon], from: '00:00', "
                                                                  "to: '24:00'}\n")
                                     + rule("monday-photos", "{kind: story.post, attachment: photo, inside: mondays}",
                                            "hold"), "utf-8")
    result = run(settings(tmp_path), "rules", "test", str(school), "--base", str(base))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"FAIL  [base] the third photo post of the week is a reminder  ({base / 'trust.tests.yaml'}:9)" in lines
    assert "      less strict under the school's rules than the base expects: expected warn, got allow; rule " \
           "trust-photo-posts did not match" in lines
    assert f"      caused by: school rule monday-photos ({school / 'oak.yaml'}:11), which decided 2 of the case's " \
           "earlier actions (hold instead of allow): what the base's counts and strikes count changed with them" \
           in lines
    assert lines[-1] == "3 passed, 1 failed"
    # Without the school's rule the same case passes: the base alone is sound.
    alone = run(settings(tmp_path), "rules", "test", str(base), "--base", "none")
    assert alone.exit_code == 0, alone.output


def test_a_base_case_the_base_fails_by_itself_is_not_blamed_on_the_school(tmp_path, trust):
    base, school = trust
    (base / "trust.tests.yaml").write_text(BASE_TESTS.replace("expect: {verdict: allow, by_default: true}",
                                                              "expect: {verdict: warn}"), "utf-8")
    result = run(settings(tmp_path), "rules", "test", str(school), "--base", str(base))
    assert result.exit_code == 1
    assert "      the base's own case fails against the base alone too, so not because of the school's rules:" \
        in result.stdout.splitlines()
    assert "caused by" not in result.stdout


def test_a_base_check_case_finding_less_under_the_school_fails(tmp_path, trust):
    """A scheduled check of the base that finds classes posting too many photos finds none once the school holds
    them: less strict, a failure naming the school rule."""
    base, school = trust
    (base / "trust.yaml").write_text(BASE + "  - id: too-many-photos\n    clause: c\n"
                                            "    at: {days: [fri], time: '15:00'}\n"
                                            "    count: {of: {kind: story.post, attachment: photo}, per: class, "
                                            "within: this week, more_than: 1}\n", "utf-8")
    (base / "trust.tests.yaml").write_text(BASE_TESTS + """\
check_cases:
  - name: a class with three photo posts is found
    check: too-many-photos
    at: "2026-12-04T15:00:00+00:00"
    keys: [c1, c2]
    earlier: [{times: 3, action: {kind: story.post, channel: class_story, at: "2026-11-30T10:00:00+00:00",
                                  attachments: [{kind: photo}]}}]
    expect: {found: [c1]}
""", "utf-8")
    (school / "oak.yaml").write_text(SCHOOL + rule("photos-held", "{kind: story.post, attachment: photo}", "hold"),
                                     "utf-8")
    result = run(settings(tmp_path), "rules", "test", str(school), "--base", str(base))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "      less strict under the school's rules than the base expects: the check no longer finds c1" in lines
    assert any(line.startswith("      caused by: school rule photos-held") for line in lines)


def test_a_weakening_school_policy_fails_rules_test_with_the_problems(tmp_path, trust):
    base, school = trust
    (school / "oak.yaml").write_text(SCHOOL + rule("trust-safeguarding", "{kind: story.post}"), "utf-8")
    result = run(settings(tmp_path), "rules", "test", str(school), "--base", str(base))
    assert result.exit_code == 2
    assert "DG-RULES-BASE" in result.output and "rule id 'trust-safeguarding' is the trust's base rule" in result.output


def test_testing_the_base_itself_with_the_setting_runs_its_cases_alone(tmp_path, trust):
    base, school = trust
    result = run(settings(tmp_path, policy=str(school), base=str(base)), "rules", "test", str(base))
    assert result.exit_code == 0, result.output
    assert "[base]" not in result.stdout and result.stdout.splitlines()[-1] == "2 passed, 0 failed"
