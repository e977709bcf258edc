"""Companion rule tests: named cases, each an action and the decision it must get.

Every rule file has a companion (``rules.yaml`` -> ``rules.tests.yaml``);
``dojoguard rules test`` runs every case and reports PASS or FAIL for each.
A case may carry its own exemptions, written exactly as in the exemptions
file, to show an exemption inside and outside its window.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dojoguard import schemaproblems, yamlfile
from dojoguard.rules import codes
from dojoguard.rules.action import Action, ActionError
from dojoguard.rules.codes import Code
from dojoguard.rules.decision import Decision
from dojoguard.rules.exemptions import NONE, Exemptions, parse_exemptions
from dojoguard.rules.history import History
from dojoguard.rules.policy import Policy
from dojoguard.yamlfile import FileProblems, Located, Problem


@dataclass(frozen=True)
class Case:
    name: str
    action: Action
    expect: dict
    exemptions: Exemptions = NONE
    line: int = 0
    # Actions decided (and counted) before this one, in order.
    earlier: tuple[Action, ...] = ()


@dataclass(frozen=True)
class CheckCase:
    """A case for a scheduled check: what it finds at ``at`` after the ``earlier`` actions."""

    name: str
    check: str
    at: datetime
    keys: tuple[str, ...]
    expect: dict
    line: int = 0
    earlier: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Mention:
    """A rule id a case names in what it expects, with its place in the file."""

    rule_id: str
    case: str
    key: str  # rules, not_rules or exempted
    line: int
    column: int


@dataclass(frozen=True)
class Casebook:
    file: str
    cases: tuple[Case, ...]
    calendar: Path | None = None
    device_groups: dict[str, list[str]] | None = None
    mentions: tuple[Mention, ...] = ()
    check_cases: tuple[CheckCase, ...] = ()

    def unknown_rules(self, policy: Policy) -> list[Problem]:
        """A problem for every rule id the cases name that the policy does not have.

        Without this a case expecting ``not_rules: [trip-mony]`` would pass
        for ever: a misspelt rule never matches.
        """
        known = sorted(r.id for r in policy.rules)
        problems = []
        for m in self.mentions:
            if policy.rule(m.rule_id) is None:
                near = difflib.get_close_matches(m.rule_id, known, n=1)
                hint = f"Did you mean {near[0]!r}?" if near else f"Rule ids: {', '.join(known)}."
                problems.append(Problem(Code.RULETEST_UNKNOWN_RULE,
                                        f"case {m.case!r}: {m.key} names rule {m.rule_id!r}, which the policy "
                                        "does not have (the case could never fail)", self.file, m.line, m.column,
                                        hint))
        return problems


@dataclass(frozen=True)
class Outcome:
    case: Case
    decision: Decision
    failures: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.failures


def load_casebook(path: str | Path) -> Casebook:
    """Read and check a rule-test file; raises ``FileProblems`` with every problem found."""
    path = Path(path)
    if not path.exists():
        raise FileProblems([Problem(Code.RULETEST_MISSING, "no companion test file", str(path),
                                    hint=f"Create {path.name} beside the rule file, with `cases:` "
                                         "(see docs/rules.md, 'Companion tests').")])
    located = yamlfile.load(path)
    if located.data is None:
        located.data = {}
    schema = schemaproblems.validator("dojoguard.rules", "ruletests.schema.json")
    problems = schemaproblems.check(located, schema, codes.RULETEST)
    if problems:
        raise FileProblems(problems)
    data = located.data
    defaults = data.get("action_defaults") or {}
    cases = []
    mentions: list[Mention] = []
    for i, doc in enumerate(data.get("cases") or []):
        where = ("cases", i)
        try:
            action = Action.from_dict({**defaults, **doc["action"]})
        except ActionError as exc:
            # At the bad field's own line where it is written in the case (not in action_defaults).
            problems.append(located.problem(where + ("action", *_steps(exc.path)), Code.RULETEST_ACTION,
                                            f"case {doc['name']!r}: the action is not valid: {exc}",
                                            "See docs/actions.md for the action format."))
            continue
        exemptions = NONE
        if "exemptions" in doc:
            try:
                exemptions = parse_exemptions(_subtree(located, where + ("exemptions",)))
            except FileProblems as exc:
                problems.extend(exc.problems)
                continue
        release = doc["expect"].get("release_at")
        if release is not None:
            try:
                datetime.fromisoformat(release)
            except ValueError:
                problems.append(located.problem(where + ("expect", "release_at"), Code.RULETEST_VALUE,
                                                f"{release!r} is not an ISO time",
                                                'Write it like "2026-12-01T08:00:00+00:00".'))
                continue
        earlier = _earlier(located, where, doc, defaults, problems)
        if earlier is None:
            continue
        cases.append(Case(doc["name"], action, doc["expect"], exemptions, located.mark(where)[0], earlier))
        for key in ("rules", "not_rules", "exempted"):
            for j, rule_id in enumerate(doc["expect"].get(key, [])):
                line, column = located.mark(where + ("expect", key, j))
                mentions.append(Mention(rule_id, doc["name"], key, line, column))
        for k, record in enumerate(doc.get("exemptions") or []):
            for j, rule_id in enumerate(record.get("rules") or [] if isinstance(record, dict) else []):
                line, column = located.mark(where + ("exemptions", k, "rules", j))
                mentions.append(Mention(str(rule_id), doc["name"], "an exemption", line, column))
    check_cases = []
    for i, doc in enumerate(data.get("check_cases") or []):
        where = ("check_cases", i)
        try:
            at = datetime.fromisoformat(doc["at"])
            if at.tzinfo is None:
                raise ValueError
        except ValueError:
            problems.append(located.problem(where + ("at",), Code.RULETEST_VALUE,
                                            f"{doc['at']!r} is not an ISO time with an offset",
                                            'Write it like "2026-12-04T15:00:00+00:00".'))
            continue
        earlier = _earlier(located, where, doc, defaults, problems)
        if earlier is not None:
            check_cases.append(CheckCase(doc["name"], doc["check"], at, tuple(doc.get("keys") or ()),
                                         doc["expect"], located.mark(where)[0], earlier))
    calendar = path.parent / data["calendar"] if "calendar" in data else None
    if calendar is not None and not calendar.is_file():
        problems.append(located.problem(("calendar",), Code.RULETEST_CALENDAR,
                                        f"the calendar {data['calendar']!r} the cases assume is not there "
                                        f"({calendar})",
                                        "Put the calendar file beside the tests (`dojoguard rules init` writes the "
                                        "example one), or correct the name."))
    if problems:
        raise FileProblems(problems)
    return Casebook(str(path), tuple(cases), calendar, data.get("device_groups"), tuple(mentions),
                    tuple(check_cases))


def _earlier(located: Located, where: tuple, doc: dict, defaults: dict,
             problems: list[Problem]) -> tuple[Action, ...] | None:
    """A case's earlier actions, each repeated ``times`` (a minute apart); None after adding a problem."""
    actions: list[Action] = []
    for j, item in enumerate(doc.get("earlier") or []):
        try:
            action = Action.from_dict({**defaults, **item["action"]})
        except ActionError as exc:
            problems.append(located.problem(where + ("earlier", j, "action", *_steps(exc.path)),
                                            Code.RULETEST_ACTION,
                                            f"case {doc['name']!r}: an earlier action is not valid: {exc}",
                                            "See docs/actions.md for the action format."))
            return None
        actions.extend(action.with_time(action.at + timedelta(minutes=n)) for n in range(item.get("times", 1)))
    return tuple(actions)


def run_cases(casebook: Casebook, policy: Policy) -> list[Outcome]:
    """Evaluate every case against ``policy`` and compare with what it expects."""
    outcomes: list = []
    for case in casebook.cases:
        history, _ = counted(policy, case.earlier, case.exemptions)
        decision = policy.evaluate(case.action, case.exemptions, history)
        outcomes.append(Outcome(case, decision, tuple(compare(case.expect, decision, policy))))
    for check_case in casebook.check_cases:
        outcomes.append(_run_check(check_case, policy))
    return outcomes


@dataclass(frozen=True)
class CheckOutcome:
    case: CheckCase
    found: tuple[str, ...]
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


def counted(policy: Policy, earlier: tuple[Action, ...],
            exemptions: Exemptions) -> tuple[History, tuple[Decision, ...]]:
    """A history holding ``earlier``, each decided by ``policy`` and counted as the proxy counts it; and those
    decisions, in order."""
    history = History()
    decided = []
    for action in earlier:
        decision = policy.evaluate(action, exemptions, history)
        policy.remember(action, decision, history)
        decided.append(decision)
    return history, tuple(decided)


def _run_check(case: CheckCase, policy: Policy) -> CheckOutcome:
    check = next((c for c in policy.checks if c.id == case.check), None)
    if check is None:
        known = ", ".join(c.id for c in policy.checks) or "none"
        return CheckOutcome(case, (), (f"the policy has no scheduled check {case.check!r} (checks: {known})",))
    history, _ = counted(policy, case.earlier, NONE)
    found = tuple(key for key, _ in check.run(case.at, history, case.keys, policy.timezone))
    wanted = tuple(sorted(case.expect["found"]))
    failures = () if tuple(sorted(found)) == wanted else (
        f"expected the check to find {', '.join(wanted) or 'nothing'}, found {', '.join(found) or 'nothing'}",)
    return CheckOutcome(case, found, failures)


def compare(expect: dict, decision: Decision, policy: Policy) -> list[str]:
    """What differs between the expected and the actual decision (empty: the case passes)."""
    failures = []
    matched = set(decision.rule_ids)
    exempted = {m.rule_id for m in decision.exempted}
    if str(decision.verdict) != expect["verdict"]:
        failures.append(f"expected {expect['verdict']}, got {decision.verdict}")
    for rule_id in expect.get("rules", []):
        if policy.rule(rule_id) is None:
            failures.append(f"the policy has no rule {rule_id!r}")
        elif rule_id not in matched:
            failures.append(f"rule {rule_id} did not match")
    for rule_id in expect.get("not_rules", []):
        if policy.rule(rule_id) is None:
            failures.append(f"the policy has no rule {rule_id!r}")
        elif rule_id in matched:
            failures.append(f"rule {rule_id} matched but should not")
    for rule_id in expect.get("exempted", []):
        if rule_id not in exempted:
            failures.append(f"rule {rule_id} was not exempted")
    if "by_default" in expect and expect["by_default"] != decision.by_default:
        failures.append(f"expected by_default {expect['by_default']}, got {decision.by_default}")
    if "release_at" in expect:
        wanted = datetime.fromisoformat(expect["release_at"])
        if decision.release_at is None or decision.release_at != wanted:
            got = decision.release_at.isoformat() if decision.release_at else "none"
            failures.append(f"expected release at {wanted.isoformat()}, got {got}")
    if "alerts" in expect:
        # Exactly who is told: a case that expects nobody (``alerts: []``) fails when someone would be.
        wanted_groups = sorted(set(expect["alerts"]))
        told = sorted({group for alert in decision.alerts for group in alert["to"]})
        if told != wanted_groups:
            failures.append(f"expected alerts to {', '.join(wanted_groups) or 'nobody'}, "
                            f"got {', '.join(told) or 'nobody'}")
    if failures and decision.matches:
        failures.append("matched: " + ", ".join(f"{m.rule_id} ({m.verdict})" for m in decision.matches))
    return failures


def _steps(path: str) -> tuple:
    """An action error's path ("attachments[0].kind") as a YAML path ("attachments", 0, "kind")."""
    steps: list = []
    for part in filter(None, path.split(".")):
        name, *indexes = part.replace("]", "").split("[")
        steps += [name, *(int(i) for i in indexes if i.isdigit())]
    return tuple(steps)


def _subtree(located: Located, prefix: tuple) -> Located:
    """The part of a document under ``prefix``, keeping its positions in the file."""
    data = located.data
    for key in prefix:
        data = data[key]
    n = len(prefix)
    marks = {path[n:]: mark for path, mark in located.marks.items() if path[:n] == prefix}
    key_marks = {path[n:]: mark for path, mark in located.key_marks.items() if path[:n] == prefix}
    return Located(data, located.file, marks, key_marks)
