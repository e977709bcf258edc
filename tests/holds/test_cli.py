"""Tests for the `dojoguard held` commands leaders use."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from PIL import Image

from dojoguard.audit.log import AuditLog
from dojoguard.cli import cli
from dojoguard.clock import FixedClock
from dojoguard.environment import Environment
from dojoguard.holds.store import HoldState, HoldStore, StoredRequest
from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.decision import Decision, Match, Verdict

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def deployment(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n", "utf-8")
    return config, tmp_path / "data"


def held_photo(data_dir, kind="hold"):
    boundary = "----dojo"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"IMG_1.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg() + f"\r\n--{boundary}--\r\n".encode()
    request = StoredRequest("POST", "https", "teach.classdojo.com", 443, "/api/upload", "HTTP/1.1",
                            (("Content-Type", f"multipart/form-data; boundary={boundary}"),), body, "10.20.1.5")
    verdict = Verdict.HOLD if kind == "hold" else Verdict.DEFER
    decision = Decision(verdict, (Match("video-review", verdict, "needs a leader", "Held"),), "rev", NOW)
    action = Action(Kind.ATTACHMENT_UPLOAD, Channel.CLASS_STORY, NOW, teacher_id="t1", class_id="c1")
    store = HoldStore.open(data_dir / "holds.sqlite")
    item = store.keep(kind, request, decision, action, None if kind == "hold" else NOW)
    store.close()
    return item


def run(config, *args):
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj=Environment(clock=FixedClock(NOW)))


def audit_events(data_dir):
    log = AuditLog.open(data_dir / "audit.sqlite")
    try:
        return [(r.type, r.fields) for r in log.records()]
    finally:
        log.close()


def test_list_shows_who_what_and_why_without_content(deployment):
    """`held list` names the item, teacher, action and reason, and never the body."""
    config, data = deployment
    item = held_photo(data)
    result = run(config, "held", "list")
    assert result.exit_code == 0, result.output
    assert item.id in result.output and "t1" in result.output and "needs a leader" in result.output
    as_json = json.loads(run(config, "held", "list", "--json").output.splitlines()[0])
    assert as_json["id"] == item.id and as_json["content_type"].startswith("multipart/form-data")


def test_show_exports_the_photo_for_review_only_when_asked(deployment, tmp_path):
    """`held show --export` writes the held photo, owner-only, into the folder named."""
    config, data = deployment
    item = held_photo(data)
    result = run(config, "held", "show", item.id, "--export", str(tmp_path / "review"))
    assert result.exit_code == 0, result.output
    (saved,) = (tmp_path / "review").iterdir()
    assert saved.read_bytes() == jpeg() and (saved.stat().st_mode & 0o077) == 0


def test_approve_is_recorded_then_marks_the_item_for_sending(deployment):
    """Approval is written to the audit log with who approved, and the item becomes due."""
    config, data = deployment
    item = held_photo(data)
    result = run(config, "held", "approve", item.id, "--by", "Mrs Head")
    assert result.exit_code == 0, result.output
    store = HoldStore.open(data / "holds.sqlite")
    assert store.get(item.id).state == HoldState.APPROVED
    store.close()
    assert ("hold.approved", {"hold": item.id, "decision_id": item.decision_id, "by": "Mrs Head"}) in [
        (t, {k: f[k] for k in ("hold", "decision_id", "by")}) for t, f in audit_events(data) if t == "hold.approved"]


def test_reject_discards_the_request_and_records_why(deployment):
    """A rejected item is deleted with its request; the reason and who rejected it are recorded."""
    config, data = deployment
    item = held_photo(data)
    result = run(config, "held", "reject", item.id, "--reason", "No consent for one pupil", "--by", "Mrs Head")
    assert result.exit_code == 0, result.output
    assert run(config, "held", "show", item.id).exit_code != 0
    rejected = [f for t, f in audit_events(data) if t == "hold.rejected"]
    assert rejected[0]["reason"] == "No consent for one pupil"


def test_deferred_items_cannot_be_approved_and_unknown_ids_are_clear_errors(deployment):
    """Only pending holds can be approved; an unknown id says so and changes nothing."""
    config, data = deployment
    item = held_photo(data, kind="defer")
    refused = run(config, "held", "approve", item.id, "--by", "Mrs Head")
    assert refused.exit_code == 1 and "only holds waiting for a leader" in refused.output
    missing = run(config, "held", "approve", "0123456789abcdef", "--by", "Mrs Head")
    assert missing.exit_code == 1 and "no held or queued item has the reference" in missing.output
    malformed = run(config, "held", "approve", "nope", "--by", "Mrs Head")
    assert malformed.exit_code == 1 and "'nope' is not a reference" in malformed.output
    assert not [t for t, _ in audit_events(data) if t == "hold.approved"]


def test_an_item_is_found_by_the_reference_the_teacher_reads_out(deployment):
    """`held show` and `held reject` take the decision's reference from the teacher's notice, whole, shortened
    to its first 8 characters, in capitals or spaced out, as well as the item's own id."""
    config, data = deployment
    item = held_photo(data)
    reference = item.decision_id
    for given in (reference, reference[:8], reference[:8].upper(), f"Reference: {reference[:4]} {reference[4:10]}",
                  item.id):
        shown = run(config, "held", "show", given)
        assert shown.exit_code == 0, (given, shown.output)
        assert item.id in shown.output
    too_short = run(config, "held", "show", reference[:6])
    assert too_short.exit_code == 1 and "give at least the first 8 characters" in too_short.output
    rejected = run(config, "held", "reject", reference[:8], "--by", "Mrs Head", "--reason", "No consent")
    assert rejected.exit_code == 0, rejected.output
    assert f"Rejected {item.id}" in rejected.output


def test_retry_requeues_a_failed_release(deployment):
    """`held retry` puts a failed item back in the queue and records who asked."""
    config, data = deployment
    item = held_photo(data, kind="defer")
    store = HoldStore.open(data / "holds.sqlite")
    store.begin_send(item.id, "run1", NOW + timedelta(days=4))
    store.send_failed(item.id, "HTTP 400", state=HoldState.FAILED, retry_at=NOW)
    store.close()
    assert run(config, "held", "list", "--failed").output.count(item.id) == 1
    result = run(config, "held", "retry", item.id, "--by", "IT office")
    assert result.exit_code == 0, result.output
    assert "failed" not in run(config, "held", "list").output.split(item.id, 1)[1].split("\n")[0]


def test_the_review_steps_are_plain_functions_that_raise_hold_error(deployment):
    """A web console calls the same steps as the commands: a refusal is a HoldError with the commands' words."""
    from dojoguard.config import load
    from dojoguard.holds import review
    from dojoguard.holds.store import HoldError

    config, data = deployment
    settings = load(config)
    queued = held_photo(data, kind="defer")
    with pytest.raises(HoldError, match="only holds waiting for a leader can be approved"):
        review.approve(settings, FixedClock(NOW), queued.id, "Mrs Head")
    item = held_photo(data)
    assert review.approve(settings, FixedClock(NOW), item.id, "Mrs Head").state == HoldState.APPROVED
    with pytest.raises(HoldError, match="only uncertain, failed or expired items are closed"):
        review.close(settings, FixedClock(NOW), queued.id, "IT office", "test")
    assert review.reject(settings, FixedClock(NOW), queued.id, "Office", "sent by email").id == queued.id
    store = HoldStore.open(data / "holds.sqlite")
    try:
        (notice,) = store.notices_for("t1")
    finally:
        store.close()
    assert "The reason given: sent by email" in notice.text
