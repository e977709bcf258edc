"""What the app is told: ClassDojo-shaped answers for blocked, held and deferred writes.

ClassDojo's apps show ``error.fallbackMessage`` to the user, so the teacher
sees the school's notice and the decision id to quote when asking for help.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, tzinfo

from dojoguard.rules.decision import Decision, Match, Verdict

DECISION_HEADER = "X-Dojoguard-Decision"

CODES = {
    Verdict.BLOCK: "DOJOGUARD_BLOCKED",
    Verdict.HOLD: "DOJOGUARD_HELD",
    Verdict.DEFER: "DOJOGUARD_DEFERRED",
}


def refusal(decision: Decision, *, code: str | None = None, status: int = 403, tz: tzinfo | None = None,
            duplicate: bool = False) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of the answer the app receives instead of ClassDojo's."""
    notice = decision.notice or "This was stopped by the school's ClassDojo policy."
    if decision.verdict is Verdict.DEFER and decision.release_at is not None:
        queued = f"Queued: it will be sent at {when(decision.release_at, tz)}."
        if duplicate:
            queued += " It was already queued, so it will be sent once."
        notice = f"{queued} {notice}"
    message = f"{notice} (Reference: {decision.decision_id})"
    doc = {"error": {"code": code or CODES.get(decision.verdict, "DOJOGUARD_BLOCKED"), "detail": message,
                     "fallbackMessage": message, "decisionId": decision.decision_id}}
    headers = {"Content-Type": "application/json; charset=utf-8", DECISION_HEADER: decision.decision_id,
               "Cache-Control": "no-store"}
    return status, json.dumps(doc, ensure_ascii=False).encode(), headers


def when(at: datetime, tz: tzinfo | None) -> str:
    """'8.00am on Monday 30 November', in the school's time zone."""
    local = at.astimezone(tz) if tz else at
    hour = local.strftime("%I").lstrip("0") or "12"
    return f"{hour}.{local:%M}{local.strftime('%p').lower()} on {local:%A} {local.day} {local:%B}"


def proxy_block(rule_id: str, reason: str, notice: str, *, revision: str, at: datetime) -> Decision:
    """A block the proxy itself decides (a check could not be completed), with its own decision id."""
    match = Match(rule_id=rule_id, verdict=Verdict.BLOCK, reason=reason, notice=notice, clause="fail closed")
    return Decision(verdict=Verdict.BLOCK, matches=(match,), policy_revision=revision, at=at, notice=notice)


def tighten(decision: Decision, rule_id: str, reason: str, notice: str) -> Decision:
    """The same decision (same id), made a block by a proxy-level check; the rules' matches are kept."""
    match = Match(rule_id=rule_id, verdict=Verdict.BLOCK, reason=reason, notice=notice, clause="fail closed")
    if decision.verdict is Verdict.BLOCK:
        return replace(decision, matches=decision.matches + (match,))
    return replace(decision, verdict=Verdict.BLOCK, matches=decision.matches + (match,), notice=notice,
                   release_at=None, by_default=False)
