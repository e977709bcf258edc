"""The audit entry for one decision: what happened, never what was said or shown.

``decision_fields`` is the redact step of the write path for decisions: it
reads the Action and the Decision and keeps identifiers, hashes and counts.
Message text becomes its keyed fingerprint (``fingerprints``: HMAC-SHA256
with a key kept outside the database, and the key's id) and its length, so
a copy of the log cannot be used to test a guessed message; attachments become their SHA-256
and the image check's counts; the teacher's name is dropped; pupils are kept
as ids here and pseudonymised by the log before sealing. ``masked`` lists what
was withheld, so a reader knows the record is incomplete on purpose.
"""

from __future__ import annotations

from typing import Any

from dojoguard.audit.fingerprints import FingerprintKey
from dojoguard.rules.action import Action
from dojoguard.rules.decision import Decision

DEFAULT_REASON = "no rule matched: the policy's default applied"


def decision_fields(action: Action, decision: Decision, key: FingerprintKey) -> dict[str, Any]:
    masked: list[str] = []
    hashes: dict[str, Any] = {}
    counts: dict[str, Any] = {"attachments": len(action.attachments)}
    if action.text is not None:
        hashes["text_hmac"] = key.of_text(action.text)
        hashes["text_key"] = key.key_id
        counts["text_chars"] = len(action.text)
        masked.append("text")
    if action.teacher_name:
        masked.append("teacher_name")
    if action.students:
        masked.append("pupils")  # recorded as pseudonyms
    if action.attachments:
        hashes["attachment_sha256"] = [a.sha256 for a in action.attachments]
        masked.append("attachments")
        _count_findings(action, counts)
    if action.problems:
        counts["problems"] = len(action.problems)
        masked.append("problems")  # free text built from the request; may quote it
    if action.points is not None and action.points.skill is not None:
        masked.append("points.skill")

    fields: dict[str, Any] = {
        "policy_revision": decision.policy_revision,
        "decided_at": decision.at.isoformat(),
        "acted_at": action.at.isoformat(),
        "kind": str(action.kind),
        "channel": str(action.channel),
        "endpoint": action.endpoint,
        "teacher": action.teacher_id,
        "device": action.device_address,
        "class": action.class_id,
        "pupils": list(action.students),
        "verdict": str(decision.verdict),
        "rules": list(decision.rule_ids),
        "matched": [{"rule": m.rule_id, "verdict": str(m.verdict)} for m in decision.matches],
        "reason": _reason(decision),
        "by_default": decision.by_default,
        "exemptions_used": list(decision.exemptions_used),
        "exempted_rules": [m.rule_id for m in decision.exempted],
        "release_at": decision.release_at.isoformat() if decision.release_at else None,
        # Who must be told (the alert sender reads this from the log); absent when nobody.
        "alerts": decision.alerts or None,
        "hashes": hashes,
        "counts": counts,
        "masked": masked,
    }
    if action.points is not None:
        fields["points"] = {"value": action.points.value, "skill_id": action.points.skill_id}
    return {k: v for k, v in fields.items() if v is not None}


def _reason(decision: Decision) -> str:
    if decision.by_default or not decision.matches:
        return DEFAULT_REASON
    deciding = [m for m in decision.matches if m.verdict == decision.verdict] or list(decision.matches)
    seen: list[str] = []
    for m in deciding:
        text = m.reason or m.rule_id
        if text not in seen:
            seen.append(text)
    return "; ".join(seen)[:900]


def _count_findings(action: Action, counts: dict[str, Any]) -> None:
    totals = {"faces_found": 0, "faces_matched": 0, "faces_not_permitted": 0, "faces_unidentified": 0,
              "people_unverified": 0, "video_frames_checked": 0, "gps_present": 0, "not_checked": 0, "unreadable": 0}
    for attachment in action.attachments:
        f = attachment.findings
        if f is None:
            totals["not_checked"] += 1
            continue
        totals["faces_found"] += f.faces_found
        totals["faces_matched"] += f.faces_permitted
        totals["faces_not_permitted"] += f.faces_not_permitted
        totals["faces_unidentified"] += f.faces_unidentified
        totals["people_unverified"] += f.people_unverified
        totals["video_frames_checked"] += f.frames_checked
        totals["gps_present"] += int(f.gps_present)
        totals["unreadable"] += int(not f.is_complete)
    counts.update(totals)
