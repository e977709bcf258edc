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
    """A deferred message's answer says it is queued until 8.00am on Monday (local time), that it will be sent
    then by itself, and the deferring rule's description; never the rule's refusal notice."""
    from zoneinfo import ZoneInfo

    monday_8_bst = datetime(2027, 4, 12, 7, 0, tzinfo=UTC)  # 08:00 in London (BST)
    rule = Match("messaging-hours", Verdict.DEFER, "Messages are sent only 8.00am to 5pm, Monday to Friday.",
                 "Messages can only be sent 8.00am to 5pm, so this was not sent.")
    decision = Decision(Verdict.DEFER, (rule,), "rev", AT, notice=rule.notice, release_at=monday_8_bst)
    _, body, _ = enforcement.refusal(decision, tz=ZoneInfo("Europe/London"))
    error = json.loads(body)["error"]
    assert error["code"] == "DOJOGUARD_DEFERRED"
    assert error["fallbackMessage"] == ("Queued until 8.00am on Monday 12 April: it will be sent then, by itself. "
                                        "Messages are sent only 8.00am to 5pm, Monday to Friday. "
                                        f"(Reference: {decision.decision_id})")
    _, again, _ = enforcement.refusal(decision, tz=ZoneInfo("Europe/London"), duplicate=True)
    message = json.loads(again)["error"]["fallbackMessage"]
    assert message.startswith("This was already queued until 8.00am on Monday 12 April: it will be sent then, once.")
    assert "not sent" not in message and "by itself" not in message


def test_deferred_answer_names_only_the_deferring_rules():
    """A warning that matched alongside the deferral adds nothing to the queue notice (it says only what happens)."""
    warn = Match("doorstep-length", Verdict.WARN, "Messages are short.", "Please keep it short.")
    defer = Match("messaging-hours", Verdict.DEFER, "Messages are sent only in school hours.", "Not sent.")
    decision = Decision(Verdict.DEFER, (warn, defer), "rev", AT, notice="Not sent.", release_at=AT)
    message = json.loads(enforcement.refusal(decision)[1])["error"]["fallbackMessage"]
    assert "Messages are sent only in school hours." in message
    assert "short" not in message and "Not sent" not in message


def test_an_upload_the_rules_would_hold_is_passed_with_the_rules_kept():
    """Hold or defer on an upload becomes allow (same id), keeping the rules' matches and a proxy match saying
    the post will be judged; a block is left alone."""
    held = Decision(Verdict.HOLD, (Match("video-review", Verdict.HOLD, "why", "Held."),), "rev", AT, notice="Held.")
    passed = enforcement.upload_passed(held)
    assert passed.decision_id == held.decision_id and passed.verdict is Verdict.ALLOW
    assert passed.rule_ids == ("video-review", enforcement.UPLOAD_PASSED)
    assert "video-review (hold) applies to the post" in passed.matches[-1].reason
    assert passed.notice == "" and passed.release_at is None
    deferred = Decision(Verdict.DEFER, (Match("r", Verdict.DEFER, "why", "Later."),), "rev", AT, release_at=AT)
    assert enforcement.upload_passed(deferred).verdict is Verdict.ALLOW
    assert enforcement.upload_passed(deferred).release_at is None
    blocked = Decision(Verdict.BLOCK, (Match("r", Verdict.BLOCK, "why", "No."),), "rev", AT, notice="No.")
    assert enforcement.upload_passed(blocked) is blocked
