"""The judge on real writes: recognised, decided by the test policy, kept when held, recorded before the answer.

Real settings, policy, audit log and hold store (see ``conftest.py``); no
mitmproxy hooks: a request goes in, an outcome comes out.
"""

from __future__ import annotations

from dataclasses import replace

from dojoguard.audit.fingerprints import key_path_for
from dojoguard.audit.log import AuditLog
from dojoguard.proxy import flows
from dojoguard.proxy.judge import Judge
from dojoguard.proxy.refusal_notices import NOTICE_NOT_QUEUED, NOTICE_NOT_RECORDED, NOTICE_TOO_LARGE
from dojoguard.rules.action import Kind
from dojoguard.rules.decision import Verdict
from tests.proxy.conftest import CLASS_ID, MONDAY_18, THREAD_ID, audit_rows, write_flow

MESSAGE = f"/api/message-thread/{THREAD_ID}/message"
AWARD = f"/api/dojoClass/{CLASS_ID}/awardBatch"


async def judge(judge: Judge, path: str, body, *, keep: bool = True):
    """Judge one write as the addon hands it over: its request, and (``keep``) how to store it if held."""
    flow = write_flow(path, body)
    return await judge.judge(flows.request_of(flow), stored=(lambda: flows.stored_request(flow)) if keep else None)


async def test_an_allowed_write_is_recorded_and_its_flush_travels_with_it(services):
    """A message in school hours is allowed and committed at once; the flush is left for the answer to wait on."""
    outcome = await judge(Judge(services), MESSAGE, {"body": "Reading books tomorrow"})
    assert outcome.decision.verdict is Verdict.ALLOW and outcome.action.kind is Kind.MESSAGE_SEND
    assert outcome.body is None and outcome.hold_id is None
    assert services.audit.get(outcome.decision.decision_id) is not None
    assert outcome.durable is not None
    assert await outcome.durable.wait() is None
    assert services.audit.synced_seq >= services.audit.get(outcome.decision.decision_id).seq


async def test_a_blocked_write_is_on_disk_before_the_judge_answers(services, clock):
    """A message at 18:00 is blocked by the rules; a refusal waits for its record's flush, so none is handed on."""
    clock.set(MONDAY_18)
    outcome = await judge(Judge(services), MESSAGE, {"body": "Reading books tomorrow"})
    assert outcome.decision.verdict is Verdict.BLOCK
    assert outcome.decision.rule_ids == ("messages-in-school-hours",)
    assert outcome.durable is None
    assert services.audit.synced_seq >= services.audit.get(outcome.decision.decision_id).seq


async def test_a_negative_award_is_blocked(services):
    """An award of negative points is judged as an award, and blocked by the positive-points rule."""
    outcome = await judge(Judge(services), AWARD, {"points": -1, "studentIds": ["p1"]})
    assert outcome.action.kind is Kind.POINTS_AWARD
    assert outcome.decision.verdict is Verdict.BLOCK
    assert "positive-points-only" in outcome.decision.rule_ids


async def test_a_held_write_is_kept_and_a_retry_joins_the_same_item(services):
    """A held message is kept in the hold store and linked to its decision; sent again, it joins that item."""
    j = Judge(services)
    first = await judge(j, MESSAGE, {"body": "please hold for review"})
    again = await judge(j, MESSAGE, {"body": "please hold for review"})
    assert first.decision.verdict is again.decision.verdict is Verdict.HOLD
    assert first.hold_id and first.hold_kind == "hold" and not first.hold_duplicate
    assert again.hold_id == first.hold_id and again.hold_duplicate
    assert len(services.holds.list()) == 1
    created = audit_rows(services.settings.audit_path, "hold.created")
    joined = audit_rows(services.settings.audit_path, "hold.joined")
    assert [(e["hold"], e["decision_id"]) for e in created] == [(first.hold_id, first.decision.decision_id)]
    assert [(e["hold"], e["decision_id"]) for e in joined] == [(first.hold_id, again.decision.decision_id)]


async def test_a_hold_that_cannot_be_kept_becomes_a_block(services):
    """With no way to store the request, a hold is a block saying it could not be queued, and nothing is kept."""
    outcome = await judge(Judge(services), MESSAGE, {"body": "please hold for review"}, keep=False)
    assert outcome.decision.verdict is Verdict.BLOCK
    assert "proxy.hold-unavailable" in outcome.decision.rule_ids
    assert outcome.decision.notice == NOTICE_NOT_QUEUED
    assert outcome.hold_id is None and services.holds.list() == []


async def test_an_unreadable_write_is_incomplete_and_blocked(services):
    """A known write whose JSON cannot be read carries its problem in the action and is blocked, recorded."""
    outcome = await judge(Judge(services), MESSAGE, b'{"body": "unterminated')
    assert outcome.action.problems
    assert outcome.decision.verdict is Verdict.BLOCK
    assert "proxy.incomplete-action" in outcome.decision.rule_ids
    assert services.audit.get(outcome.decision.decision_id) is not None


async def test_an_unknown_write_is_judged_and_summarised_or_refused_by_setting(services):
    """A write no catalogue entry describes is recorded as unclassified; with unknown_writes: block it is refused."""
    j = Judge(services)
    allowed = await judge(j, "/api/newThing/5f0000000000000000000c01", {"note": "words", "count": 3})
    assert allowed.recognition.endpoint is None and allowed.decision.verdict is Verdict.ALLOW
    (event,) = audit_rows(services.settings.audit_path, "write.unclassified")
    assert event["path"] == "/api/newThing/{id}" and event["decision_id"] == allowed.decision.decision_id
    services.settings = replace(services.settings, unknown_writes="block")
    refused = await judge(j, "/api/newThing", {"a": 1})
    assert refused.decision.verdict is Verdict.BLOCK and "proxy.unknown-write" in refused.decision.rule_ids


async def test_a_write_over_the_size_cap_is_blocked_unread(services):
    """A body over max_write_body_mb is not recognised at all: it is blocked with the proxy's own notice."""
    services.settings = replace(services.settings, max_write_bytes=64)
    outcome = await judge(Judge(services), MESSAGE, {"body": "x" * 100})
    assert outcome.recognition is None and outcome.action.endpoint == "oversized"
    assert outcome.decision.rule_ids == ("proxy.body-too-large",)
    assert outcome.decision.notice == NOTICE_TOO_LARGE
    assert services.audit.get(outcome.decision.decision_id) is not None


async def test_a_write_that_cannot_be_recorded_is_blocked_and_the_gap_is_recorded_later(services, clock):
    """While the audit log refuses writes, every write is blocked; once it is back, one event says how many were."""
    j = Judge(services)
    services.audit.close()
    for _ in range(2):
        refused = await judge(j, MESSAGE, {"body": "Reading books tomorrow"})
        assert refused.decision.verdict is Verdict.BLOCK and refused.decision.notice == NOTICE_NOT_RECORDED
        assert refused.decision.rule_ids[-1] == "proxy.audit-unavailable"
    settings = services.settings
    services.audit = AuditLog.open(settings.audit_path, clock=clock, emit_decisions=False, deferred_sync=True,
                                   fingerprint_key=key_path_for(settings.config, settings.audit_path))
    recorded = await judge(j, MESSAGE, {"body": "Reading books tomorrow"})
    assert recorded.decision.verdict is Verdict.ALLOW
    (gap,) = audit_rows(settings.audit_path, "audit.write_failed")
    assert gap["failures"] == 2 and gap["error"]
