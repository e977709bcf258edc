"""What the app is told: ClassDojo-shaped answers for blocked, held and deferred writes.

ClassDojo's apps show ``error.fallbackMessage`` to the user, so the teacher
sees the school's notice and the decision id to quote when asking for help.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, tzinfo

from dojoguard.clock import when
from dojoguard.rules.decision import Decision, Match, Verdict

DECISION_HEADER = "X-Dojoguard-Decision"
# The proxy's match on an upload forwarded although a rule would hold or defer it (see ``upload_passed``).
UPLOAD_PASSED = "proxy.upload-judged-with-post"

CODES = {
    Verdict.BLOCK: "DOJOGUARD_BLOCKED",
    Verdict.HOLD: "DOJOGUARD_HELD",
    Verdict.DEFER: "DOJOGUARD_DEFERRED",
}


def refusal(decision: Decision, *, code: str | None = None, status: int = 403, tz: tzinfo | None = None,
            duplicate: bool = False, preface: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of the answer the app receives instead of ClassDojo's.

    ``preface`` (what became of the teacher's earlier held or queued items) comes first.
    """
    notice = decision.notice or "This was stopped by the school's ClassDojo policy."
    if decision.verdict is Verdict.DEFER and decision.release_at is not None:
        notice = queued_notice(decision, tz, duplicate=duplicate)
    if preface:
        notice = f"{preface} {notice}"
    message = f"{notice} (Reference: {decision.decision_id})"
    doc = {"error": {"code": code or CODES.get(decision.verdict, "DOJOGUARD_BLOCKED"), "detail": message,
                     "fallbackMessage": message, "decisionId": decision.decision_id}}
    headers = {"Content-Type": "application/json; charset=utf-8", DECISION_HEADER: decision.decision_id,
               "Cache-Control": "no-store"}
    return status, json.dumps(doc, ensure_ascii=False).encode(), headers


def queued_notice(decision: Decision, tz: tzinfo | None, *, duplicate: bool = False) -> str:
    """What a teacher is told about a deferred write: when it goes, that it goes by itself, and the policy.

    The deferring rules' descriptions (the policy statement) follow, never
    their notices: a rule's notice is written for a refusal ("so this was not
    sent"), and a rule switched from block to defer keeps it for the day it
    is switched back.
    """
    at = when(decision.release_at, tz)  # type: ignore[arg-type] - refusal calls it only with a release time
    if duplicate:
        lines = [f"This was already queued until {at}: it will be sent then, once."]
    else:
        lines = [f"Queued until {at}: it will be sent then, by itself."]
    for match in decision.matches:
        if match.verdict is Verdict.DEFER and match.reason and match.reason not in lines:
            lines.append(match.reason)
    return " ".join(lines)


def proxy_block(rule_id: str, reason: str, notice: str, *, revision: str, at: datetime) -> Decision:
    """A block the proxy itself decides (a check could not be completed), with its own decision id."""
    match = Match(rule_id=rule_id, verdict=Verdict.BLOCK, reason=reason, notice=notice, clause="fail closed")
    return Decision(verdict=Verdict.BLOCK, matches=(match,), policy_revision=revision, at=at, notice=notice)


def upload_passed(decision: Decision) -> Decision:
    """An upload the rules would hold or defer, forwarded instead (same decision id; the rules' matches kept).

    An upload reaches ClassDojo's storage and publishes nothing: the post
    that names it does, and is judged with the upload's findings (a leader
    approving a held upload would send the file but never the post). So a
    hold or defer applies to that post, and the record says so: the rules
    that matched stay listed, and a proxy match with verdict allow explains
    why the upload went. Blocks are not touched.
    """
    if decision.verdict not in (Verdict.HOLD, Verdict.DEFER):
        return decision
    rules = ", ".join(m.rule_id for m in decision.matches if m.verdict is decision.verdict)
    reason = (f"an upload publishes nothing, so it was forwarded; {rules} ({decision.verdict}) "
              "applies to the post that names it, which is judged with this upload's findings")
    match = Match(rule_id=UPLOAD_PASSED, verdict=Verdict.ALLOW, reason=reason, notice="",
                  clause="the post is judged")
    return replace(decision, verdict=Verdict.ALLOW, matches=decision.matches + (match,), notice="",
                   release_at=None, by_default=False)


def tighten(decision: Decision, rule_id: str, reason: str, notice: str) -> Decision:
    """The same decision (same id), made a block by a proxy-level check; the rules' matches are kept."""
    match = Match(rule_id=rule_id, verdict=Verdict.BLOCK, reason=reason, notice=notice, clause="fail closed")
    if decision.verdict is Verdict.BLOCK:
        return replace(decision, matches=decision.matches + (match,))
    return replace(decision, verdict=Verdict.BLOCK, matches=decision.matches + (match,), notice=notice,
                   release_at=None, by_default=False)
