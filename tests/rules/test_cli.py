"""The rules commands, run in-process: rules check/test, decide, exempt grant/list/revoke (with a real audit log)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from dojoguard.cli import cli
from dojoguard.rules.policy import builtin_calendar, builtin_path
from dojoguard.clock import FixedClock
from dojoguard.environment import Environment

from .conftest import deferring_copy, write

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HERE = Path(__file__).parent


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    """A deployment settings file whose data folder is a fresh temporary folder."""
    return write(tmp_path / "config.yaml", f"data_dir: {tmp_path / 'data'}\n"
                 "proxy:\n  device_groups:\n    school-devices: [10.20.0.0/16]\n")


def run(settings: Path, *args: str, input: str | None = None, now: datetime = NOW):
    env = Environment(clock=FixedClock(now))
    return CliRunner().invoke(cli, ["--config", str(settings), *args], obj=env, input=input)


def test_rules_check_builtin(settings):
    """`rules check` with no path validates the configured (builtin) policy."""
    result = run(settings, "rules", "check")
    assert result.exit_code == 0, result.output
    assert "ok: St Wilfrid's" in result.output and "23 rules" in result.output


def test_rules_check_says_where_each_device_group_came_from_and_which_the_settings_replaced(settings):
    """A settings group replacing the rule file's of the same name is said, not silent; so is each group's origin."""
    result = run(settings, "rules", "check", "builtin")
    assert result.exit_code == 0, result.output
    assert f"device group school-devices: 10.20.0.0/16 (from the settings file {settings} (proxy.device_groups))" \
        in result.stdout
    assert "device group school-devices: the settings' group replaces the one in the rule file st-wilfrids.yaml" \
        in result.stdout


def test_rules_check_names_a_rule_file_group_as_the_rule_files(settings, tmp_path):
    """A group the settings do not define is the rule file's, and nothing is said to be replaced."""
    plain = write(tmp_path / "plain.yaml", f"data_dir: {tmp_path / 'data'}\nproxy:\n  device_groups:\n"
                                           "    staff-laptops: [10.30.0.0/16]\n")
    policy = write(tmp_path / "rules" / "school.yaml", builtin_path().read_text("utf-8").replace(
        "school-devices", "school-ipads"))
    shutil.copytree(builtin_path().parent / "lists", tmp_path / "rules" / "lists")
    result = run(plain, "rules", "check", str(policy))
    assert result.exit_code == 0, result.output
    assert "device group school-ipads: 10.20.0.0/16, 10.21.0.0/16, 10.99.0.0/24 (from the rule file school.yaml)" in result.stdout
    assert "device group staff-laptops: 10.30.0.0/16 (from the settings file" in result.stdout
    assert "replaces" not in result.stdout


@pytest.mark.parametrize("address, says", [
    ("10.20.3.14", "device 10.20.3.14: in group school-devices (from the settings)"),
    ("192.168.1.1", "device 192.168.1.1: in no device group"),
])
def test_decide_says_which_device_groups_the_address_is_in_and_where_they_came_from(settings, address, says):
    """`decide` names the groups the device was found in, each with its origin, and the group the settings replaced."""
    action = {"kind": "message.send", "channel": "message", "text": "PE tomorrow", "device": {"address": address}}
    result = run(settings, "decide", "--action", "-", "--at", "2026-11-30T10:00", input=json.dumps(action))
    assert result.exit_code == 0, result.output
    assert says in result.stderr.splitlines()
    assert "device group school-devices: the settings' group replaces the one in the rule file st-wilfrids.yaml" \
        in result.stderr
    assert address not in result.stdout  # the decision itself (what is recorded) does not gain the address


def test_rules_check_reports_every_problem(settings):
    """`rules check` on a broken file exits 2 and prints each problem with file:line:column and a hint."""
    result = run(settings, "rules", "check", str(HERE / "invalid" / "unknown-key.yaml"))
    assert result.exit_code == 2, result.output
    assert "unknown-key.yaml:7:5: DG-RULES-UNKNOWN-KEY" in result.output
    assert "Hint: Did you mean 'verdict'?" in result.output


def test_rules_check_names_the_rule_a_problem_is_in(settings):
    """A problem inside a rule reads `rules[late].when.outside`, after its file:line:column."""
    result = run(settings, "rules", "check", str(HERE / "invalid" / "undefined-window.yaml"))
    assert result.exit_code == 2, result.output
    assert "undefined-window.yaml:8:21: DG-RULES-UNDEFINED rules[late].when.outside: no window named 'school-hour'" \
        in result.output


def test_rules_check_warns_when_the_calendar_runs_out(settings):
    """`rules check` warns (without failing) when the school calendar is about to end."""
    calendar = builtin_path().parent / "example.calendar.yaml"
    result = run(settings, "rules", "check", "builtin", "--calendar", str(calendar),
                 now=datetime(2027, 6, 30, tzinfo=UTC))
    assert result.exit_code == 0, result.output
    assert "the school calendar ends on 2027-07-21" in result.output


def test_rules_test_builtin(settings):
    """`rules test` runs the shipped companion cases: PASS per case, zero failures."""
    result = run(settings, "rules", "test", "builtin")
    assert result.exit_code == 0, result.output
    assert result.output.count("PASS  ") >= 50
    assert "FAIL" not in result.output
    assert result.output.strip().endswith("0 failed")


def test_rules_test_fails_on_a_failing_case(settings, tmp_path):
    """`rules test` prints FAIL with the reason and exits non-zero when a case fails."""
    rules = write(tmp_path / "p.yaml", "default: {verdict: allow}\nrules:\n"
                  "  - {id: r, when: {kind: message.send}, verdict: block, notice: n, clause: c}\n")
    write(tmp_path / "p.tests.yaml", "cases:\n  - {name: should pass, action: {kind: message.send, at: "
          "'2026-11-30T10:00:00Z'}, expect: {verdict: allow}}\n")
    result = run(settings, "rules", "test", str(rules))
    assert result.exit_code == 1, result.output
    assert "FAIL  should pass" in result.output and "expected allow, got block" in result.output


def test_rules_test_fails_when_no_case_ran(settings, tmp_path):
    """`rules test` exits non-zero when the companion file has no cases."""
    rules = write(tmp_path / "p.yaml", "default: {verdict: allow}\nrules:\n"
                  "  - {id: r, when: {kind: message.send}, verdict: block, notice: n, clause: c}\n")
    write(tmp_path / "p.tests.yaml", "cases: []\n")
    result = run(settings, "rules", "test", str(rules))
    assert result.exit_code == 1, result.output
    assert "no case ran" in result.output


def test_rules_test_without_companion(settings, tmp_path):
    """`rules test` on a rule file with no companion reports the missing file."""
    rules = write(tmp_path / "p.yaml", "default: {verdict: allow}\nrules: []\n")
    result = run(settings, "rules", "test", str(rules))
    assert result.exit_code == 2
    assert "DG-RULETEST-MISSING" in result.output


def test_decide_from_stdin(settings):
    """`decide --action -` reads JSON and prints the decision: verdict, matches, notice and revision."""
    action = {"kind": "message.send", "channel": "message", "text": "PE tomorrow",
              "device": {"address": "10.20.1.5"}}
    result = run(settings, "decide", "--action", "-", "--at", "2026-11-30T18:00", input=json.dumps(action))
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["verdict"] == "block"
    assert decision["matched"][0]["rule"] == "messaging-hours"
    assert "8.00am and 5pm" in decision["notice"]
    assert decision["release_at"] is None
    assert len(decision["policy_revision"]) == 64


def test_decide_says_what_the_text_tests_found_as_it_was_written(settings):
    """A disguised word is reported as the teacher wrote it (fullwidth), on stderr; the JSON stays clean."""
    action = {"kind": "message.send", "channel": "message", "text": "That was \uff53\uff48\uff49\uff54, sorry",
              "device": {"address": "10.20.1.5"}}
    result = run(settings, "decide", "--action", "-", "--at", "2026-11-30T10:00", input=json.dumps(action))
    assert result.exit_code == 0, result.output
    assert "found in the text by the language list inappropriate-language: '\uff53\uff48\uff49\uff54'" \
        in result.stderr
    assert json.loads(result.stdout)["matched"][0]["rule"] == "appropriate-language"


def test_decide_with_the_defer_option_gives_the_release_time(settings, tmp_path):
    """With the rule file's `defer` option on, `decide` gives when the message would be sent."""
    policy = deferring_copy(tmp_path / "policy")
    action = {"kind": "message.send", "channel": "message", "text": "PE tomorrow",
              "device": {"address": "10.20.1.5"}}
    result = run(settings, "decide", "--policy", str(policy), "--calendar", str(builtin_calendar()), "--action", "-",
                 "--at", "2026-11-30T18:00", input=json.dumps(action))
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["verdict"] == "defer"
    assert decision["release_at"] == "2026-12-01T08:00:00+00:00"


def test_decide_uses_clock_when_no_time(settings, tmp_path):
    """Without `at` in the action or --at, the decision is for now."""
    path = write(tmp_path / "a.json", json.dumps({"kind": "points.award", "channel": "points",
                                                  "points": {"value": -1}, "device": {"address": "10.20.1.5"}}))
    result = run(settings, "decide", "--action", str(path))
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["at"] == NOW.isoformat() and decision["verdict"] == "block"


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ('{"kind": "message.sent"}', "not valid"),
    ('{"kind": "message.send", "colour": 1}', "unknown field"),
])
def test_decide_rejects_bad_actions(settings, text, message):
    """A bad action document is an error saying what is wrong, never a decision."""
    result = run(settings, "decide", "--action", "-", input=text)
    assert result.exit_code == 1
    assert message in result.output


T1 = "5f00000000000000000000a1"
T2 = "5f00000000000000000000a2"
C3B = "5f00000000000000000000c1"


def named(tmp_path: Path, rows=(("teacher", T1, "Mrs Jones"), ("teacher", T2, "Mr Jones"),
                                ("class", C3B, "3B"))) -> None:
    """Names as the proxy would have learned them from ClassDojo."""
    from dojoguard.names import Names

    (tmp_path / "data").mkdir(exist_ok=True)
    names = Names.open(tmp_path / "data" / "proxy.sqlite")
    try:
        for kind, id_, name in rows:
            names.learn(kind, id_, name, NOW)
    finally:
        names.close()


def test_exempt_grant_list_revoke_with_audit(settings, tmp_path):
    """Grant, list and revoke an exemption; the file applies in `decide`, and both changes are audited."""
    from dojoguard.audit.log import AuditLog

    named(tmp_path)
    granted = run(settings, "exempt", "grant", "--rule", "messaging-hours", "--teacher", T1,
                  "--from", "2026-12-10T17:00", "--until", "2026-12-10T20:00",
                  "--reason", "Christmas concert", "--by", "Mrs Patel")
    assert granted.exit_code == 0, granted.output
    assert "granted ex-20261201-1" in granted.output

    listed = run(settings, "exempt", "list")
    assert listed.exit_code == 0, listed.output
    assert "ex-20261201-1  upcoming" in listed.output and "Mrs Patel" in listed.output
    assert f"for teacher Mrs Jones ({T1})" in listed.output

    action = json.dumps({"kind": "message.send", "channel": "message", "teacher": {"id": T1},
                         "device": {"address": "10.20.1.5"}, "text": "Doors open 6pm"})
    decided = json.loads(run(settings, "decide", "--action", "-", "--at", "2026-12-10T18:30",
                             input=action).stdout)
    assert decided["verdict"] == "allow" and decided["exemptions_used"] == ["ex-20261201-1"]

    revoked = run(settings, "exempt", "revoke", "ex-20261201-1", "--by", "Mrs Patel", "--reason", "Cancelled")
    assert revoked.exit_code == 0, revoked.output
    assert run(settings, "exempt", "list").output.startswith("no exemptions")
    assert "revoked" in run(settings, "exempt", "list", "--all").output

    log = AuditLog.open(tmp_path / "data" / "audit.sqlite")
    try:
        events = [(r.type, r.fields) for r in log.records(types=("exemption.granted", "exemption.revoked"))]
    finally:
        log.close()
    assert [t for t, _ in events] == ["exemption.granted", "exemption.revoked"]
    assert events[0][1]["exemption"] == "ex-20261201-1" and events[0][1]["rules"] == ["messaging-hours"]
    assert events[1][1]["revoked_by"] == "Mrs Patel"


def test_exempt_grant_by_name_applies_to_that_teachers_and_that_classs_requests(settings, tmp_path):
    """`--teacher "Mrs Jones"` and `--class 3B` are granted to the ids they name, so the exemption applies.

    Before names were resolved, the name itself was written to the file and
    matched no request: granted, printed, and never applied.
    """
    named(tmp_path)
    for option, given in (("--teacher", "mrs  jones"), ("--class", "3b")):
        granted = run(settings, "exempt", "grant", "--rule", "messaging-hours", option, given,
                      "--from", "2026-12-10T17:00", "--until", "2026-12-10T20:00", "--reason", "Fair", "--by", "Head")
        assert granted.exit_code == 0, granted.output
    assert f"teacher Mrs Jones ({T1})" in run(settings, "exempt", "list").output
    assert f"class 3B ({C3B})" in run(settings, "exempt", "list").output
    for who, used in (({"teacher": {"id": T1}}, ["ex-20261201-1"]),
                      ({"teacher": {"id": T2}, "class": {"id": C3B}}, ["ex-20261201-2"]),
                      ({"teacher": {"id": T2}}, [])):
        action = json.dumps({"kind": "message.send", "channel": "message", **who,
                             "device": {"address": "10.20.1.5"}, "text": "Doors open 6pm"})
        decided = json.loads(run(settings, "decide", "--action", "-", "--at", "2026-12-10T17:30",
                                 input=action).stdout)
        assert decided["exemptions_used"] == used, who


@pytest.mark.parametrize(("option", "given", "says"), [
    ("--teacher", "Mrs Jnoes", "Did you mean: Mrs Jones"),
    ("--teacher", "Jones", "Mrs Jones (5f00000000000000000000a1)"),
    ("--teacher", "5f00000000000000000000zz", "Known teachers: Mr Jones"),
    ("--class", "5f00000000000000000000a1", "is the teacher Mrs Jones, not a class"),
    ("--class", "3C", "Did you mean: 3B"),
    ("--teacher", "t1", "no teacher called 't1' is known"),
])
def test_exempt_grant_refuses_a_name_or_id_no_request_can_carry(settings, tmp_path, option, given, says):
    """An unknown name, a misspelling or an unseen id is refused with candidates; nothing is written or audited."""
    named(tmp_path)
    result = run(settings, "exempt", "grant", "--rule", "messaging-hours", option, given,
                 "--from", "2026-12-10T17:00", "--until", "2026-12-10T20:00", "--reason", "Fair", "--by", "Head")
    assert result.exit_code == 1
    assert "not granted: " in result.output and says in result.output
    assert not (tmp_path / "data" / "exemptions.yaml").exists()
    assert not (tmp_path / "data" / "audit.sqlite").exists()


def test_exempt_grant_takes_a_classdojo_id_not_seen_yet_and_says_so(settings, tmp_path):
    """A well-formed id can match a request before the proxy has seen its teacher: granted, with a note."""
    named(tmp_path)
    unseen = "5f00000000000000000000ff"
    result = run(settings, "exempt", "grant", "--rule", "messaging-hours", "--teacher", unseen.upper(),
                 "--from", "2026-12-10T17:00", "--until", "2026-12-10T20:00", "--reason", "Fair", "--by", "Head")
    assert result.exit_code == 0, result.output
    assert f"the proxy has not seen the teacher {unseen} yet" in result.stderr
    assert f"teachers:\n  - {unseen}" in (tmp_path / "data" / "exemptions.yaml").read_text()


def test_exempt_grant_refuses_a_name_two_teachers_share(settings, tmp_path):
    """Two teachers of the same name: refused, listing both with their ids, so the head picks one."""
    named(tmp_path, rows=(("teacher", T1, "Mrs Jones"), ("teacher", T2, "Mrs. Jones")))
    result = run(settings, "exempt", "grant", "--rule", "messaging-hours", "--teacher", "Mrs Jones",
                 "--from", "2026-12-10T17:00", "--until", "2026-12-10T20:00", "--reason", "Fair", "--by", "Head")
    assert result.exit_code == 1
    assert "2 teachers are called 'Mrs Jones'" in result.output and T1 in result.output and T2 in result.output


def test_exempt_grant_refuses_over_long(settings, tmp_path):
    """A grant longer than exemptions.max_days is refused and nothing is written or audited."""
    result = run(settings, "exempt", "grant", "--rule", "messaging-hours", "--everyone",
                 "--from", "2026-12-01", "--until", "2027-01-31", "--reason", "Term", "--by", "Head")
    assert result.exit_code == 1
    assert "the most allowed is 14 days" in result.output
    assert not (tmp_path / "data" / "exemptions.yaml").exists()
    assert not (tmp_path / "data" / "audit.sqlite").exists()


def test_exempt_grant_refused_when_audit_cannot_be_written(settings, tmp_path):
    """When the audit log cannot be written, the exemption is not granted (fail closed)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "audit.sqlite").mkdir()  # a folder where the database should be
    named(tmp_path)
    result = run(settings, "exempt", "grant", "--rule", "school-devices", "--teacher", T1,
                 "--from", "now", "--until", "2026-12-02", "--reason", "iPad repair", "--by", "Head")
    assert result.exit_code == 1
    assert "not granted: the audit log could not be written" in result.output
    assert not (tmp_path / "data" / "exemptions.yaml").exists()


def test_exempt_grant_refuses_a_fail_closed_rule(settings):
    """Fail-closed checks (exemptable: false) cannot be exempted."""
    result = run(settings, "exempt", "grant", "--rule", "photo-check-incomplete", "--everyone",
                 "--from", "now", "--until", "2026-12-02", "--reason", "x", "--by", "Head")
    assert result.exit_code == 1
    assert "cannot be exempted" in result.output


def test_exempt_revoke_unknown(settings):
    """Revoking an id that does not exist says so and lists the known ids."""
    result = run(settings, "exempt", "revoke", "ex-nope", "--by", "Head", "--reason", "x")
    assert result.exit_code == 1
    assert "no exemption with id 'ex-nope'" in result.output


def test_every_command_help_ends_with_an_example(settings):
    """Each command's --help ends with an example."""
    for args in (["rules"], ["rules", "check"], ["rules", "test"], ["decide"], ["exempt"],
                 ["exempt", "grant"], ["exempt", "list"], ["exempt", "revoke"]):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output, args
        assert "dojoguard " in result.output.split("Example:")[1]
