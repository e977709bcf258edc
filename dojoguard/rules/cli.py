"""Commands of the rules package: `rules check`, `rules test`, `decide` and `exempt`."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from dojoguard.clitools import fail, pass_env
from dojoguard.environment import Environment
from dojoguard.rules import exemption_store, grants
from dojoguard.rules.exemption_store import ExemptionStoreUnavailable
from dojoguard.rules.action import Action, ActionError
from dojoguard.rules.reachable import unreachable_rules
from dojoguard.rules.basecases import NOTE, PASS, BaseOutcome, run_base_cases
from dojoguard.rules.casebook import Outcome, load_casebook, run_cases
from dojoguard.rules.codes import Code
from dojoguard.rules.devices import SETTINGS
from dojoguard.names import UNSEEN, NameProblem
from dojoguard.names_cli import labelled, name_table, open_names
from dojoguard.rules.exemption_trail import granted_fields
from dojoguard.rules.exemptions import Exemption, load_exemptions
from dojoguard.rules.policy import BUILTIN, EXAMPLES, TESTS_SUFFIX, Policy, builtin_path, companion_tests, load_policy
from dojoguard.yamlfile import FileProblems, Problem


# -- settings ---------------------------------------------------------------

def _settings(env: Environment):
    try:
        return env.config
    except FileProblems as exc:
        raise fail(exc) from None


def _policy_source(env: Environment, path: str | None) -> str | Path:
    if path is not None:
        return path if path == BUILTIN else Path(path)
    value = _settings(env)["rules"]["policy"]
    return BUILTIN if value == BUILTIN else env.config.path("rules", "policy")


NO_BASE = "none"
_CONFIGURED = object()


def _base_source(env: Environment, path: str | None, source) -> str | Path | None:
    """The trust's base rules to lay under ``source``: --base PATH ("none": none), else the setting `rules.base`.

    None when there is none, or when ``source`` is the base itself (or inside it): then the base is
    checked, tested or asked on its own.
    """
    if path is not None:
        base = None if path == NO_BASE else path if path == BUILTIN else Path(path)
    else:
        base = _settings(env).path("rules", "base")
    if base is None or _within(source, base):
        return None
    return base


def _within(source, base) -> bool:
    if BUILTIN in (str(source), str(base)):
        return str(source) == str(base)
    inner, outer = Path(source).resolve(), Path(base).resolve()
    return inner == outer or outer in inner.parents


def _load(env: Environment, source, *, base=_CONFIGURED, calendar=None, device_groups=None,
          use_config: bool = True) -> Policy:
    """The policy at ``source`` with its base (default: the setting `rules.base`), or every problem and exit 2.

    ``use_config`` false leaves out the deployment's calendar and device groups (never the base: the base
    is part of the policy, not of the machine)."""
    config = _settings(env)
    if base is _CONFIGURED:
        base = _base_source(env, None, source)
    if use_config:
        calendar = calendar if calendar is not None else config.path("rules", "calendar")
        device_groups = device_groups if device_groups is not None else config["proxy"]["device_groups"]
    try:
        return load_policy(source, base=base, calendar=calendar, device_groups=device_groups,
                           timezone=config["timezone"])
    except FileProblems as exc:
        raise fail(exc) from None


_BASE_HELP = ('The trust\'s base rules (a rule file or folder) to lay under the policy (default: the setting '
              '`rules.base`; "none": no base).')


def _when(text: str, tz: ZoneInfo, now: datetime, *, end_of_day: bool = False) -> datetime:
    """An ISO time, a date (its start, or its end for --until) or "now"; local time when no offset."""
    if text == "now":
        return now
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        if len(text) == 10:
            start = datetime.combine(day + timedelta(days=1) if end_of_day else day, time(0, 0), tz)
            return start
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time; write e.g. 2026-12-10T17:00, 2026-12-10 or now") \
            from None
    return at if at.tzinfo is not None else at.replace(tzinfo=tz)


# -- rules ------------------------------------------------------------------

@click.group("rules")
def rules_group() -> None:
    """Check the policy's rule files and run their companion tests.

    \b
    Example:
      dojoguard rules init /etc/dojoguard/rules
      dojoguard rules check
      dojoguard rules test
    """


@rules_group.command("init")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace files of the same name already in FOLDER.")
@click.option("--example", type=click.Choice(EXAMPLES), default=EXAMPLES[0], show_default=True,
              help="Which shipped policy to copy: St Wilfrid's, or Oakfield (a made-up school using roles, "
                   "classes, counts, replies and a scheduled check).")
def rules_init(folder: Path, force: bool, example: str) -> None:
    """Write St Wilfrid's rules (or another shipped example), lists, companion tests, an example calendar and the
    JSON Schemas into FOLDER.

    The folder checks and tests clean as written: edit the copy, run `rules check`
    and `rules test` on it, and point the settings it prints at it. Files already
    there are left alone unless --force is given.

    \b
    Example:
      dojoguard rules init /etc/dojoguard/rules
    """
    from dojoguard.rules import starter

    try:
        written = starter.write_starter(folder, force=force, example=example)
    except starter.InitError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(starter.report(written))


@rules_group.command("check")
@click.argument("path", required=False)
@click.option("--calendar", type=click.Path(dir_okay=False, path_type=Path),
              help="School calendar to check with the rules (default: the configured one).")
@click.option("--base", "base_path", help=_BASE_HELP)
@pass_env
def rules_check(env: Environment, path: str | None, calendar: Path | None, base_path: str | None) -> None:
    """Validate a rule file or folder (default: the configured policy); non-zero exit with every problem.

    PATH is a rule file, a folder of rule files, or "builtin" (St Wilfrid's rules).
    With a base (--base or the setting rules.base), the policy checked is the
    trust's base rules and PATH's together, and every way PATH's files would
    weaken the base is a problem too (DG-RULES-BASE).

    \b
    Example:
      dojoguard rules check /etc/dojoguard/rules
    """
    source = _policy_source(env, path)
    base = _base_source(env, base_path, source)
    policy = _load(env, source, base=base, calendar=calendar)
    click.echo(f"ok: {policy.name or 'policy'}: {len(policy.rules)} rules, {len(policy.windows)} windows, "
               f"{len(policy.lists)} lists; revision {policy.revision[:16]}")
    if base is not None:
        from_base = sum(policy.from_base(rule) for rule in policy.rules)
        click.echo(f"base: {from_base} rules from the trust's base rules {base}, "
                   f"{len(policy.rules) - from_base} from the school's own")
    for line in _device_groups(policy, _settings(env)):
        click.echo(line)
    for warning in _calendar_warnings(policy, env.clock.now()):
        click.echo(f"warning: {warning}", err=True)
    for warning in unreachable_rules(policy.rules):
        click.echo(f"warning: {warning}", err=True)


def _calendar_warnings(policy: Policy, now: datetime) -> list[str]:
    covers = policy.calendar.covers
    depending = sorted(w.name for w in policy.windows.values() if w.depends_on_calendar)
    if covers is None:
        if not depending:
            return []
        states = sorted({policy.windows[n].outside_calendar for n in depending})
        return [f"no school calendar is set, but window(s) {', '.join(depending)} close on school holidays, INSET "
                f"days or closures: without a calendar they are {' or '.join(states)} on every day "
                "(`outside_calendar`). Set `rules.calendar` (or pass --calendar)."]
    today = now.astimezone(policy.timezone).date()
    if covers[1] < today:
        return [f"the school calendar ends on {covers[1]}; after it no school holidays are known. "
                "Add next year's terms."]
    if covers[1] - today < timedelta(days=60):
        return [f"the school calendar ends on {covers[1]}; add next year's terms soon."]
    return []


@rules_group.command("test")
@click.argument("path", required=False)
@click.option("--base", "base_path", help=_BASE_HELP)
@pass_env
def rules_test(env: Environment, path: str | None, base_path: str | None) -> None:
    """Run every companion test case: PASS or FAIL for each; non-zero on any failure or when none ran.

    PATH is a rule file (its companion is NAME.tests.yaml beside it), a
    .tests.yaml file, a folder, or "builtin". Cases use the calendar and
    device groups named in the test file, not the deployment's, so they
    mean the same on every machine.

    With a base (--base or the setting rules.base), PATH's cases run against
    the base and PATH's rules together, and so do the base's own companion
    cases: a base case that comes out less strict fails, naming the school
    rule that caused it; one that comes out stricter is a NOTE.

    \b
    Example:
      dojoguard rules test builtin
    """
    source = _policy_source(env, path)
    pairs = _test_pairs(source)
    base = _base_source(env, base_path, pairs[0][0])
    passed = failed = noted = 0
    for policy_source, tests_file in pairs:
        casebook = _casebook(tests_file)
        policy = _load(env, policy_source, base=base, calendar=casebook.calendar,
                       device_groups=casebook.device_groups, use_config=False)
        unknown = casebook.unknown_rules(policy)
        if unknown:
            raise fail(FileProblems(unknown))
        for outcome in run_cases(casebook, policy):
            _report(outcome, casebook.file)
            passed += outcome.passed
            failed += not outcome.passed
    if base is not None:
        for base_source, tests_file in _test_pairs(base):
            casebook = _casebook(tests_file)
            layered = _load(env, pairs[0][0], base=base, calendar=casebook.calendar,
                            device_groups=casebook.device_groups, use_config=False)
            unknown = casebook.unknown_rules(layered)
            if unknown:
                raise fail(FileProblems(unknown))
            click.echo(f"the trust's base cases ({tests_file}), against the base and the school's rules together:")
            for base_outcome in run_base_cases(casebook, layered, _alone(env, base_source, casebook)):
                _report_base(base_outcome, casebook.file)
                passed += base_outcome.status == PASS
                noted += base_outcome.status == NOTE
                failed += not base_outcome.passed
    click.echo(f"{passed} passed, {failed} failed" + (f", {noted} stricter under the school's rules (notes)"
                                                      if noted else ""))
    if failed:
        raise click.ClickException(f"{failed} case(s) failed")
    if not passed + noted:
        raise click.ClickException("no case ran: add cases to the companion test file")


def _casebook(tests_file: Path):
    try:
        return load_casebook(tests_file)
    except FileProblems as exc:
        raise fail(exc) from None


def _alone(env: Environment, base_source, casebook) -> Policy | None:
    """The base by itself, with a base test file's calendar and device groups (None when it does not load)."""
    try:
        return load_policy(base_source, calendar=casebook.calendar, device_groups=casebook.device_groups,
                           timezone=_settings(env)["timezone"])
    except FileProblems:
        return None


def _report_base(outcome: BaseOutcome, file: str) -> None:
    if outcome.status == PASS:
        click.echo(f"PASS  [base] {outcome.case.name}")
        return
    click.echo(f"{outcome.status}  [base] {outcome.case.name}  ({file}:{outcome.case.line})")
    for line in outcome.lines:
        click.echo(f"      {line}")


def _test_pairs(source) -> list[tuple[str | Path, Path]]:
    if source == BUILTIN:
        return [(BUILTIN, companion_tests(builtin_path()))]
    path = Path(source)
    if path.name.endswith(TESTS_SUFFIX):
        return [(path.with_name(path.name.removesuffix(TESTS_SUFFIX) + ".yaml"), path)]
    if path.is_dir():
        tests = sorted(path.glob(f"*{TESTS_SUFFIX}"))
        if not tests:
            raise fail(FileProblems([Problem(Code.RULETEST_MISSING, "no companion test files (*.tests.yaml)",
                                             str(path), hint="Every rule file needs a NAME.tests.yaml beside it.")]))
        return [(path, t) for t in tests]
    return [(path, companion_tests(path))]


def _report(outcome: Outcome, file: str) -> None:
    if outcome.passed:
        click.echo(f"PASS  {outcome.case.name}")
        return
    click.echo(f"FAIL  {outcome.case.name}  ({file}:{outcome.case.line})")
    for failure in outcome.failures:
        click.echo(f"      {failure}")


# -- decide -----------------------------------------------------------------

@click.command("decide")
@click.option("--action", "action_file", required=True, type=click.File("r", encoding="utf-8"),
              help="The action as JSON (docs/actions.md); - reads standard input.")
@click.option("--at", "at_text", help="Decide as if at this time (ISO; local time when no offset).")
@click.option("--policy", "policy_path", help='Rule file or folder, or "builtin" (default: the configured policy).')
@click.option("--exemptions", "exemptions_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Exemptions file (default: the configured one).")
@click.option("--calendar", type=click.Path(dir_okay=False, path_type=Path),
              help="School calendar (default: the configured one).")
@click.option("--base", "base_path", help=_BASE_HELP)
@pass_env
def decide(env: Environment, action_file, at_text: str | None, policy_path: str | None,
           exemptions_path: Path | None, calendar: Path | None, base_path: str | None) -> None:
    """Print, as JSON, the decision the proxy would make about an action.

    \b
    Example:
      echo '{"kind": "message.send", "channel": "message", "text": "PE tomorrow!",
             "device": {"address": "10.20.1.5"}}' | dojoguard decide --action - --at 2026-11-30T18:00
    """
    config = _settings(env)
    tz = config.timezone
    now = env.clock.now()
    try:
        doc = json.loads(action_file.read())
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"the action is not JSON: {exc}") from None
    try:
        action = Action.from_dict(doc, default_at=now)
    except ActionError as exc:
        raise click.ClickException(f"the action is not valid: {exc} (see docs/actions.md)") from None
    if at_text is not None:
        action = action.with_time(_when(at_text, tz, now))
    source = _policy_source(env, policy_path)
    policy = _load(env, source, base=_base_source(env, base_path, source), calendar=calendar)
    day = action.at.astimezone(policy.timezone).date()
    for window in policy.windows.values():
        if not window.knows(day):
            # Said, so a block "because the calendar ran out" is not a puzzle.
            click.echo(f"window {window.name}: {day} is outside the school calendar "
                       f"({_coverage(policy)}), so it is {window.outside_calendar} that day "
                       "(its `outside_calendar`)", err=True)
    try:
        if exemptions_path is not None:
            exemptions = load_exemptions(exemptions_path, max_days=config["exemptions"]["max_days"])
        else:
            exemptions = exemption_store.current(config, max_days=config["exemptions"]["max_days"])
    except (FileProblems, ExemptionStoreUnavailable) as exc:
        raise fail(exc) from None
    for line in _device_groups_said(policy, action, config):
        click.echo(line, err=True)
    # What the text tests found, as written (on stderr: the JSON stays clean).
    for (kind, name), written in policy.found_in_text(action.text or ""):
        what = {"language": "language list", "phrases": "phrase list", "regex": "pattern"}.get(kind, kind)
        click.echo(f"found in the text by the {what} {name}: {written!r}", err=True)
    click.echo(json.dumps(policy.evaluate(action, exemptions).to_dict(), indent=2, ensure_ascii=False))


def _coverage(policy: Policy) -> str:
    covers = policy.calendar.covers
    return f"which covers {covers[0]} to {covers[1]}" if covers else "none is set"


def _device_groups_said(policy: Policy, action: Action, config) -> list[str]:
    """Where the device groups came from and which the action's device is in (on stderr: the JSON stays clean).

    A `decide` run without the school's settings counts only this computer as
    a school device; saying so is the difference between a puzzling "block"
    and an obvious one. The address is only printed here, never recorded.
    """
    devices = policy.devices
    lines = _device_groups(policy, config)
    if lines and action.device_address:
        found = devices.found_in(action.device_address)
        where = ", ".join(f"{name} ({_from(source, short=True)})" for name, source in found)
        lines.append(f"device {action.device_address}: " + (
            f"in group{'s' if len(found) > 1 else ''} {where}" if found else "in no device group"))
    return lines


def _device_groups(policy: Policy, config) -> list[str]:
    """A line for each device group, its networks and where it came from, and one for each the settings replaced.

    A group in the settings (`proxy.device_groups`) replaces the rule file's
    group of the same name; `rules check` and `decide` say so, so an edit to
    the rule file's networks that changes nothing is not a mystery.
    """
    devices = policy.devices
    if devices is None or not devices.groups:
        return []
    settings = "the embedded default settings" if config.source.startswith("<") else f"the settings file {config.source}"
    lines = []
    for name, networks in sorted(devices.groups.items()):
        lines.append(f"device group {name}: {', '.join(map(str, networks)) or 'no networks'} "
                     f"(from {_from(devices.sources.get(name, ''), settings=settings)})")
        if name in devices.replaced:
            lines.append(f"device group {name}: the settings' group replaces the one in the rule file "
                         f"{devices.replaced[name]}")
    return lines


def _from(source: str, *, settings: str = "the settings", short: bool = False) -> str:
    if source == SETTINGS:
        return "from the settings" if short else f"{settings} (proxy.device_groups)"
    return f"from the rule file {source}" if short else f"the rule file {source}"


# -- exempt -----------------------------------------------------------------

@click.group("exempt")
def exempt_group() -> None:
    """Grant, list and revoke the headteacher's exemptions from rules.

    \b
    Example:
      dojoguard exempt list
    """


class AuditFailed(Exception):
    """The audit event could not be written, so the change was not made."""


def _audit(env: Environment, event: str, fields: dict) -> None:
    # The audit package is imported only here: the rule engine itself never writes the log.
    try:
        from dojoguard.audit.log import AuditLog

        log = AuditLog.open(env.config.path("audit", "database"), clock=env.clock)
        try:
            log.append_event(event, fields)
        finally:
            log.close()
    except Exception as exc:  # any failure: the change must not apply unaudited
        raise AuditFailed(str(exc)) from exc


@exempt_group.command("grant")
@click.option("--rule", "rules", multiple=True, required=True, help="Rule id to set aside (repeatable).")
@click.option("--teacher", "teachers", multiple=True,
              help="Teacher it covers, by name (as `dojoguard names list` shows it) or ClassDojo id (repeatable).")
@click.option("--class", "classes", multiple=True,
              help="Class it covers, by name (e.g. 3B) or ClassDojo id (repeatable).")
@click.option("--everyone", is_flag=True, help="It covers every teacher.")
@click.option("--from", "from_text", required=True, help="Start: ISO time, a date, or now.")
@click.option("--until", "until_text", required=True, help="End: ISO time, or a date (the end of that day).")
@click.option("--reason", required=True, help="The exceptional circumstance.")
@click.option("--by", "granted_by", required=True, help="Who gave permission (the headteacher).")
@pass_env
def exempt_grant(env: Environment, rules, teachers, classes, everyone, from_text, until_text, reason,
                 granted_by) -> None:
    """Grant an exemption, time-boxed (at most exemptions.max_days) and recorded in the audit log.

    A teacher or class is named as the proxy knows it: a name learned from
    ClassDojo or imported (`dojoguard names`), or its id. Anything else is
    refused with the nearest names, so no exemption is granted that no
    request could match.

    \b
    Example:
      dojoguard exempt grant --rule messaging-hours --class 3B \\
        --from 2026-12-10T17:00 --until 2026-12-10T20:00 \\
        --reason "Christmas concert: reminders to parents" --by "Mrs Patel (headteacher)"
    """
    config = _settings(env)
    teachers, classes = _resolve(env, "teacher", teachers), _resolve(env, "class", classes)
    now = env.clock.now()
    starts = _when(from_text, config.timezone, now)
    ends = _when(until_text, config.timezone, now, end_of_day=True)
    policy = _load(env, _policy_source(env, None))
    trail: list[tuple[str, dict]] = []

    def record(exemption: Exemption) -> None:
        # The proxy compares the file with these records: anything else in it was edited by hand.
        _audit(env, "exemption.granted", granted_fields(exemption))
        trail.append(("exemption.granted", granted_fields(exemption)))

    def change(target: Path) -> Exemption:
        return grants.grant(target, policy=policy, rules=list(rules), teachers=list(teachers),
                            classes=list(classes), everyone=everyone, starts=starts, ends=ends,
                            granted_by=granted_by, reason=reason, now=now,
                            max_days=config["exemptions"]["max_days"], before_commit=record)

    try:
        exemption = exemption_store.change(config, change, trail)
    except (grants.GrantError, FileProblems, ExemptionStoreUnavailable) as exc:
        raise fail(exc) from None
    except AuditFailed as exc:
        raise click.ClickException(f"not granted: the audit log could not be written ({exc})") from None
    click.echo(f"granted {exemption.id}: {', '.join(exemption.rules)} for {_whom(exemption, name_table(env))}, "
               f"{_local(exemption.starts, config.timezone)} until {_local(exemption.ends, config.timezone)}")


@exempt_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also show expired and revoked exemptions.")
@pass_env
def exempt_list(env: Environment, show_all: bool) -> None:
    """List the exemptions in force or still to come (--all: every record).

    \b
    Example:
      dojoguard exempt list --all
    """
    config = _settings(env)
    now = env.clock.now()
    try:
        exemptions = exemption_store.current(config)
    except (FileProblems, ExemptionStoreUnavailable) as exc:
        raise fail(exc) from None
    shown = [e for e in exemptions.records if show_all or e.status(now) in ("active", "upcoming")]
    table = name_table(env)
    if not shown:
        click.echo("no exemptions" + ("" if show_all else " in force or to come (--all shows past ones)"))
        return
    for e in shown:
        click.echo(f"{e.id}  {e.status(now):8}  {', '.join(e.rules)}  for {_whom(e, table)}")
        click.echo(f"    {_local(e.starts, config.timezone)} until {_local(e.ends, config.timezone)}; "
                   f"granted by {e.granted_by}: {e.reason}")
        if e.revoked is not None:
            click.echo(f"    revoked {_local(e.revoked.at, config.timezone)} by {e.revoked.by}: {e.revoked.reason}")


@exempt_group.command("revoke")
@click.argument("exemption_id")
@click.option("--by", "revoked_by", required=True, help="Who revokes it.")
@click.option("--reason", required=True, help="Why it is withdrawn.")
@pass_env
def exempt_revoke(env: Environment, exemption_id: str, revoked_by: str, reason: str) -> None:
    """Withdraw an exemption from now on; the record is kept, marked revoked, and audited.

    \b
    Example:
      dojoguard exempt revoke ex-20261210-1 --by "Mrs Patel" --reason "Concert cancelled"
    """
    config = _settings(env)

    trail: list[tuple[str, dict]] = []

    def record(exemption: Exemption) -> None:
        fields = {"exemption": exemption.id, "revoked_by": exemption.revoked.by,
                  "at": exemption.revoked.at.isoformat()}
        _audit(env, "exemption.revoked", fields)
        trail.append(("exemption.revoked", fields))

    def change(target: Path) -> Exemption:
        return grants.revoke(target, exemption_id, by=revoked_by, reason=reason, now=env.clock.now(),
                             before_commit=record)

    try:
        exemption = exemption_store.change(config, change, trail)
    except (grants.GrantError, FileProblems, ExemptionStoreUnavailable) as exc:
        raise fail(exc) from None
    except AuditFailed as exc:
        raise click.ClickException(f"not revoked: the audit log could not be written ({exc})") from None
    click.echo(f"revoked {exemption.id}")


def _resolve(env: Environment, kind: str, given: tuple[str, ...]) -> list[str]:
    """The ids the given names or ids mean; refused (naming candidates) unless each means exactly one."""
    if not given:
        return []
    names = open_names(env, create=True)
    try:
        found = [names.resolve(kind, text) for text in given]
    except NameProblem as exc:
        raise click.ClickException(f"not granted: {exc}") from None
    finally:
        names.close()
    for named in found:
        if named.source == UNSEEN:
            click.echo(f"Note: the proxy has not seen the {kind} {named.id} yet; the exemption applies once that "
                       f"{kind} uses ClassDojo through it. Check the id if you expected a name.", err=True)
    return [named.id for named in found]


def _whom(e: Exemption, table: dict[tuple[str, str], str]) -> str:
    if e.everyone:
        return "everyone"
    parts = []
    if e.teachers:
        parts.append("teacher " + ", ".join(labelled(table, "teacher", t) for t in e.teachers))
    if e.classes:
        parts.append("class " + ", ".join(labelled(table, "class", c) for c in e.classes))
    return "; ".join(parts)


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%a %d %b %Y %H:%M %Z")


COMMANDS = [rules_group, decide, exempt_group]
