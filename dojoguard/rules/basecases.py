"""The trust's base cases run against a school's layered policy: stricter is a note, less strict a failure.

With a base (the setting ``rules.base``), `dojoguard rules test` runs the
base's own companion cases against the base and the school's rules loaded
together. A case says what the trust expects. Under the school's additions
its outcome may come out stricter (the school added a stricter rule): that
is allowed, and reported as a note naming the school rules that matched.
It may never come out less strict: that fails, naming what of the school's
caused it, found by deciding the case again against the base alone (with the
same calendar and device groups): a school rule that decided the action, the
school's default, or a school rule that decided the case's earlier actions
differently (which changes what the base's counts and strikes see). A case
the base alone fails too is a failure of the base's, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dojoguard.rules.action import Action
from dojoguard.rules.casebook import Case, Casebook, CheckCase, compare, counted
from dojoguard.rules.decision import Decision, Verdict
from dojoguard.rules.exemptions import NONE, Exemptions
from dojoguard.rules.policy import Policy

PASS, NOTE, FAIL = "PASS", "NOTE", "FAIL"


@dataclass(frozen=True)
class BaseOutcome:
    """A base case under the layered policy: PASS, NOTE (stricter) or FAIL, with what to say."""

    case: Case | CheckCase
    status: str
    lines: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status != FAIL


def run_base_cases(casebook: Casebook, layered: Policy, alone: Policy | None) -> list[BaseOutcome]:
    """Every case of the base's ``casebook`` against ``layered`` (base and school), ``alone`` (the base by
    itself, None when it does not load on its own) to tell what the school changed."""
    outcomes = [_case(case, layered, alone) for case in casebook.cases]
    outcomes += [_check_case(case, layered, alone) for case in casebook.check_cases]
    return outcomes


@dataclass(frozen=True)
class _Run:
    decision: Decision
    earlier: tuple[Decision, ...]


def _decide(policy: Policy, action: Action, earlier: tuple[Action, ...], exemptions: Exemptions) -> _Run:
    """The decision on ``action`` after ``earlier``, each decided and counted as the proxy counts it."""
    history, decided = counted(policy, earlier, exemptions)
    return _Run(policy.evaluate(action, exemptions, history), decided)


def _case(case: Case, layered: Policy, alone: Policy | None) -> BaseOutcome:
    run = _decide(layered, case.action, case.earlier, case.exemptions)
    failures = compare(case.expect, run.decision, layered)
    if not failures:
        return BaseOutcome(case, PASS)
    alone_run = _decide(alone, case.action, case.earlier, case.exemptions) if alone is not None else None
    if alone_run is not None and compare(case.expect, alone_run.decision, alone):
        return BaseOutcome(case, FAIL, ("the base's own case fails against the base alone too, so not because of "
                                        "the school's rules:", *failures))
    weaker, stricter = differences(case.expect, run.decision)
    if weaker:
        return BaseOutcome(case, FAIL, ("less strict under the school's rules than the base expects: "
                                        + "; ".join(weaker), *_causes(layered, run, alone_run)))
    return BaseOutcome(case, NOTE, ("stricter under the school's rules (allowed): " + "; ".join(stricter),
                                    *_stricter_by(layered, run.decision)))


def _check_case(case: CheckCase, layered: Policy, alone: Policy | None) -> BaseOutcome:
    found = _found(layered, case)
    if found is None:
        return BaseOutcome(case, FAIL, (f"the policy has no scheduled check {case.check!r}",))
    wanted = set(case.expect["found"])
    if found == wanted:
        return BaseOutcome(case, PASS)
    if alone is not None and _found(alone, case) != wanted:
        return BaseOutcome(case, FAIL, ("the base's own case fails against the base alone too, so not because of "
                                        "the school's rules",))
    missing, extra = sorted(wanted - found), sorted(found - wanted)
    runs = counted(layered, case.earlier, NONE)[1]
    alone_runs = counted(alone, case.earlier, NONE)[1] if alone is not None else None
    if missing:
        return BaseOutcome(case, FAIL, (f"less strict under the school's rules than the base expects: the check no "
                                        f"longer finds {', '.join(missing)}",
                                        *_earlier_causes(layered, runs, alone_runs)))
    return BaseOutcome(case, NOTE, (f"stricter under the school's rules (allowed): the check also finds "
                                    f"{', '.join(extra)}",))


def _found(policy: Policy, case: CheckCase) -> set[str] | None:
    check = next((c for c in policy.checks if c.id == case.check), None)
    if check is None:
        return None
    history, _ = counted(policy, case.earlier, NONE)
    return {key for key, _ in check.run(case.at, history, case.keys, policy.timezone)}


def differences(expect: dict, decision: Decision) -> tuple[list[str], list[str]]:
    """How ``decision`` differs from what a case expects: (less strict, stricter), each a list of sentences.

    Strictness is the engine's verdict order; a rule that no longer matches,
    a release sooner, fewer people alerted or the default deciding in a rule's
    place are less strict; the opposite of each is stricter.
    """
    weaker: list[str] = []
    stricter: list[str] = []
    expected = Verdict(expect["verdict"])
    got = decision.verdict
    verdict_side = weaker if got.strictness < expected.strictness else stricter
    if got is not expected:
        verdict_side.append(f"expected {expected}, got {got}")
    matched = set(decision.rule_ids)
    exempted = {m.rule_id for m in decision.exempted}
    for rule_id in expect.get("rules", []):
        if rule_id not in matched:
            weaker.append(f"rule {rule_id} did not match")
    for rule_id in expect.get("not_rules", []):
        if rule_id in matched:
            stricter.append(f"rule {rule_id} matched")
    for rule_id in expect.get("exempted", []):
        if rule_id in matched:
            stricter.append(f"rule {rule_id} applied (not exempted)")
        elif rule_id not in exempted:
            weaker.append(f"rule {rule_id} did not match")
    if "by_default" in expect and expect["by_default"] != decision.by_default:
        if decision.by_default:
            weaker.append("no rule matched: the default decided")
        else:
            stricter.append("a rule matched where the default decided")
    if "release_at" in expect:
        wanted = datetime.fromisoformat(expect["release_at"])
        at = decision.release_at
        if at is None and got is not expected:
            pass  # the verdict's difference says it
        elif at is None or at < wanted:
            weaker.append(f"released at {at.isoformat() if at else 'no time'}, not {wanted.isoformat()}")
        elif at > wanted:
            stricter.append(f"released at {at.isoformat()}, not {wanted.isoformat()}")
    if "alerts" in expect:
        wanted_groups = set(expect["alerts"])
        told = {group for alert in decision.alerts for group in alert["to"]}
        if wanted_groups - told:
            weaker.append(f"{', '.join(sorted(wanted_groups - told))} not alerted")
        elif told - wanted_groups:
            stricter.append(f"{', '.join(sorted(told - wanted_groups))} alerted too")
    return weaker, stricter


def _school_rule(policy: Policy, rule_id: str) -> str | None:
    """How to name a school rule for people (None for a base rule)."""
    rule = policy.rule(rule_id)
    if rule is None or policy.from_base(rule):
        return None
    return f"school rule {rule_id} ({rule.file}:{rule.line})"


def _causes(layered: Policy, run: _Run, alone_run: _Run | None) -> list[str]:
    """What of the school's made a base case less strict, in sentences (the most direct first)."""
    decision = run.decision
    causes = [f"caused by: {named}, which decided it ({m.verdict})" for m in decision.matches
              if m.verdict is decision.verdict and (named := _school_rule(layered, m.rule_id))]
    if decision.by_default and layered.default_file not in layered.base_files:
        causes.append(f"caused by: the school's default ({layered.default_file}), which decided it "
                      f"({decision.verdict})")
    causes += _earlier_causes(layered, run.earlier, alone_run.earlier if alone_run is not None else None)
    return causes or ["caused by: the school's rule files, though no school rule decided the case or its earlier "
                      "actions: compare the school's definitions with what the base's rules use"]


def _earlier_causes(layered: Policy, earlier: tuple[Decision, ...],
                    alone: tuple[Decision, ...] | None) -> list[str]:
    """The school rules that decided the case's earlier actions otherwise than the base alone would."""
    changed: dict[str, list[str]] = {}
    for i, decision in enumerate(earlier):
        before = alone[i].verdict if alone is not None else None
        if before is decision.verdict:
            continue
        for m in decision.matches:
            named = _school_rule(layered, m.rule_id)
            if named and m.verdict is decision.verdict:
                changed.setdefault(named, []).append(
                    f"{decision.verdict}" + (f" instead of {before}" if before is not None else ""))
    return [f"caused by: {named}, which decided {len(how)} of the case's earlier actions ({', '.join(sorted(set(how)))}):"
            " what the base's counts and strikes count changed with them" for named, how in changed.items()]


def _stricter_by(layered: Policy, decision: Decision) -> list[str]:
    named = [f"{n} matched ({m.verdict})" for m in decision.matches if (n := _school_rule(layered, m.rule_id))]
    return named
