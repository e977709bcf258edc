"""Telling a teacher what became of their held or queued items, on their next ClassDojo write.

ClassDojo's apps show the school's words only where they show an error, so a
notice travels with the teacher's next post, message, comment or award
through the proxy:

- when that write is refused anyway (blocked, held, queued), the notice is
  put before the refusal's own words;
- when it would go through and something the teacher meant did not happen
  (rejected, failed, expired, may not have arrived), the write is refused
  this once, with the notice and a request to send it again: that is the only
  way the teacher is sure to see it. The refusal is recorded like any decision
  (rule ``proxy.outcome-notice``), so it is never silent;
- good news alone (approved and posted) does not stop a write: it is carried
  in the answer's ``X-Dojoguard-Notice`` header, and the post itself has
  appeared in ClassDojo.

A notice is deleted once the decision that carried it is recorded, and
``teacher.told`` is recorded for each. Uploads and unrecognised calls never
carry one: the app may make those in the background, where nobody sees an error.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from dojoguard.rules.action import Kind
from dojoguard.rules.decision import Match, Verdict

NOTICE_HEADER = "X-Dojoguard-Notice"
RULE_ID = "proxy.outcome-notice"
_SEND_AGAIN = ("What you have just sent has not been sent, so that you would see this: please send it again.")
# Writes a teacher makes on purpose, whose refusal the app shows them.
TELLABLE = frozenset({Kind.MESSAGE_SEND, Kind.STORY_POST, Kind.COMMENT_POST, Kind.PORTFOLIO_POST, Kind.POINTS_AWARD})


async def attach(services: Any, outcome: Any) -> list:
    """Put the teacher's waiting notices on this write's outcome; the notices it now carries."""
    holds = services.holds
    action = outcome.action
    if holds is None or not holds.teachers_to_tell or action.kind not in TELLABLE:
        return []
    # An item kept before the proxy knew whose login it came from is told to that login.
    login = holds.login_key(outcome.request.header("cookie")) if outcome.request is not None else None
    recipients = [r for r in (action.teacher_id, login) if r is not None and r in holds.teachers_to_tell]
    if not recipients:
        return []
    try:
        notices = await asyncio.to_thread(holds.notices_for, *recipients)
    except Exception:  # noqa: BLE001 - the notices stay kept; the next write tries again
        return []
    if not notices:
        return []
    told = " ".join(n.text for n in notices)
    decision = outcome.decision
    if not decision.verdict.forwards:
        outcome.preface = told  # put before the refusal's own words (see ``enforcement.refusal``)
    elif any(n.interrupts for n in notices):
        match = Match(rule_id=RULE_ID, verdict=Verdict.BLOCK, reason="the teacher had outcomes of held or queued "
                      "items to be told", notice=f"{told} {_SEND_AGAIN}", clause="teachers are told every outcome")
        outcome.decision = replace(decision, verdict=Verdict.BLOCK, matches=decision.matches + (match,),
                                   notice=match.notice, release_at=None, by_default=False)
        outcome.body = None
    outcome.notices = notices
    return notices


def header_value(notices: list) -> str:
    """The notices as one header value (headers are Latin-1: anything else becomes '?')."""
    text = " ".join(n.text for n in notices)
    return text.encode("latin-1", "replace").decode("latin-1")[:1000]


def told(services: Any, notices: list, decision_id: str) -> list[tuple[str, dict]]:
    """Forget notices the recorded decision carried (blocking); the ``teacher.told`` events to record."""
    services.holds.told([n.id for n in notices])
    return [("teacher.told", {"hold": n.hold_id, "teacher_id": n.teacher_id, "outcome": n.outcome,
                              "decision_id": decision_id}) for n in notices]
