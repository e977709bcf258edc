"""What the app is told when a write is stopped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from dojoguard.proxy import enforcement
from dojoguard.rules.decision import Decision, Match, Verdict

AT = datetime(2026, 11, 30, 18, tzinfo=UTC)


def test_refusal_is_classdojo_shaped_with_notice_and_reference():
    """A block answers 403 with error.code/detail/fallbackMessage, the notice and the decision id."""
    decision = Decision(Verdict.BLOCK, (Match("r", Verdict.BLOCK, "why", "Not after 5pm."),), "rev", AT,
                        notice="Not after 5pm.")
    status, body, headers = enforcement.refusal(decision)
    error = json.loads(body)["error"]
    assert status == 403 and error["code"] == "DOJOGUARD_BLOCKED"
    assert error["fallbackMessage"] == f"Not after 5pm. (Reference: {decision.decision_id})"
    assert headers[enforcement.DECISION_HEADER] == decision.decision_id


def test_tighten_keeps_the_decision_id_and_matches():
    """A proxy-level block keeps the rules' matches and decision id, and takes over the notice."""
    decision = Decision(Verdict.DEFER, (Match("r", Verdict.DEFER, "why", "Later."),), "rev", AT, notice="Later.",
                        release_at=AT)
    tightened = enforcement.tighten(decision, "proxy.x", "reason", "Stopped.")
    assert tightened.decision_id == decision.decision_id
    assert tightened.verdict is Verdict.BLOCK and tightened.rule_ids == ("r", "proxy.x")
    assert tightened.notice == "Stopped." and tightened.release_at is None


def test_deferred_answer_says_when_it_will_be_sent_in_school_time():
    """A deferred message's answer says 'Queued: it will be sent at 8.00am on Monday ...' in local time."""
    from zoneinfo import ZoneInfo

    monday_8_bst = datetime(2027, 4, 12, 7, 0, tzinfo=UTC)  # 08:00 in London (BST)
    decision = Decision(Verdict.DEFER, (Match("messaging-hours", Verdict.DEFER, "why", "Out of hours."),), "rev",
                        AT, notice="Out of hours.", release_at=monday_8_bst)
    _, body, _ = enforcement.refusal(decision, tz=ZoneInfo("Europe/London"))
    error = json.loads(body)["error"]
    assert error["code"] == "DOJOGUARD_DEFERRED"
    assert error["fallbackMessage"].startswith("Queued: it will be sent at 8.00am on Monday 12 April. Out of hours.")
    _, again, _ = enforcement.refusal(decision, tz=ZoneInfo("Europe/London"), duplicate=True)
    assert "already queued, so it will be sent once" in json.loads(again)["error"]["fallbackMessage"]
