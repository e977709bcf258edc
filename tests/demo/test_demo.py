"""The demo day end to end: each step's verdict, what reached ClassDojo, the report, and what was never recorded."""

from __future__ import annotations

import base64
import json
import re

import pytest

from dojoguard.demo import day as script
from dojoguard.demo import photos, school
from dojoguard.demo.world import attached_photo
from dojoguard.standin import data

pytestmark = pytest.mark.slow

FORWARDED = ("allow", "warn", "redact")


def _received_bodies(played) -> list[bytes]:
    return [r.body for r in played.received]


def test_every_judged_step_is_read_back_from_the_audit_log(played):
    """Each write step carries the decision id from the proxy's answer, and its verdict is the audit record's."""
    by_id = {r["id"]: r for r in played.records if r["type"] == "decision"}
    judged = [s for s in played.steps.values() if s.decision_id]
    assert len(judged) == 10
    for step in judged:
        assert by_id[step.decision_id]["fields"]["verdict"] == step.verdict


def test_text_update_at_ten_is_allowed(played):
    """A plain Class Story update at 10:00 is allowed and reaches ClassDojo."""
    step = played.steps["text_update"]
    assert (step.verdict, step.rules, step.reached_classdojo) == ("allow", (), True)


def test_class_photo_with_whole_class_consent_is_allowed(played):
    """A class photo with a face is allowed when every pupil in the class has Class Story consent."""
    step = played.steps["class_photo"]
    assert (step.verdict, step.reached_classdojo) == ("allow", True)
    assert step.facts["faces_found"] == 1 and step.facts["faces_not_permitted"] == 0


def test_photo_of_pupil_without_consent_is_blocked(played):
    """After Cy's consent is withdrawn, a photo showing Cy is blocked with the photo notice and never arrives."""
    assert played.steps["consent_withdrawn"].facts["consent_change_recorded"] is True
    step = played.steps["photo_without_consent"]
    assert (step.verdict, step.rules, step.status, step.reached_classdojo) == ("block", ("photo-consent",), 403, False)
    assert step.facts["faces_not_permitted"] == 1
    assert "photo consent" in step.notice and step.decision_id in step.notice


def test_photo_with_location_is_forwarded_without_gps(played):
    """A GPS-tagged photo is redacted: ClassDojo receives the photo, and it no longer carries the tag."""
    step = played.steps["photo_with_location"]
    assert (step.verdict, step.rules, step.reached_classdojo) == ("redact", ("photo-location",), True)
    assert step.facts["gps_sent"] is True and step.facts["gps_received"] is False
    posted = [r for r in played.received if r.method == "POST" and b"Launch day on the field" in r.body]
    assert len(posted) == 1
    arrived = attached_photo(posted[0])
    assert arrived.startswith(b"\xff\xd8\xff") and not photos.has_gps(arrived)


def test_positive_point_for_one_of_the_five_areas_reaches_classdojo(played):
    """A positive point for "Is polite", one of the policy's five areas, goes through with no rule against it."""
    step = played.steps["positive_point"]
    assert (step.verdict, step.rules, step.reached_classdojo) == ("allow", (), True)


def test_needs_work_point_is_blocked(played):
    """A "needs work" point is blocked by positive-points-only and never reaches ClassDojo."""
    step = played.steps["needs_work_point"]
    assert step.verdict == "block" and "positive-points-only" in step.rules and step.reached_classdojo is False
    negative = data.BEHAVIORS[2]["_id"].encode()
    assert not [r for r in played.received if "/awardBatch" in r.path and negative in r.body]


def test_long_personal_message_is_warned(played):
    """A long message about a personal matter is sent, with the doorstep-length and personal-matters warnings."""
    step = played.steps["long_personal_message"]
    assert step.verdict == "warn" and step.reached_classdojo is True
    assert set(step.rules) == {"doorstep-length", "personal-matters"}


def test_message_after_hours_is_blocked_then_allowed_under_the_exemption(played):
    """At 17:30 the message is blocked with the hours notice; after `exempt grant` the same one is allowed, naming it."""
    blocked = played.steps["evening_message"]
    assert (blocked.verdict, blocked.rules, blocked.reached_classdojo) == ("block", ("messaging-hours",), False)
    assert "8.00am and 5pm" in blocked.notice
    granted = played.steps["exemption_granted"]
    assert granted.facts["proxy_reloaded"] is True and granted.facts["exemption"]
    allowed = played.steps["evening_message_exempt"]
    assert (allowed.verdict, allowed.reached_classdojo) == ("allow", True)
    assert allowed.exemptions_used == (granted.facts["exemption"],)
    sent = [r for r in played.received if script.FAIR_MESSAGE.encode() in r.body]
    assert len(sent) == 1  # only the exempted one


def test_unknown_endpoint_is_audited_as_unclassified(played):
    """A write to an endpoint the catalogue does not know passes with a warning and a write.unclassified record."""
    step = played.steps["unknown_endpoint"]
    assert (step.verdict, step.rules, step.reached_classdojo) == ("warn", ("unclassified-write",), True)
    events = [r for r in played.records if r["type"] == "write.unclassified"]
    assert events and events[-1]["fields"]["path"] == "/api/classPoll/{id}"
    assert events[-1]["fields"]["decision_id"] == step.decision_id


def test_nothing_blocked_reached_the_standin(played):
    """No blocked step's request arrived at ClassDojo: neither the photo, the point nor the early message."""
    blocked = [s for s in played.steps.values() if s.verdict == "block"]
    assert {s.name for s in blocked} == {"photo_without_consent", "needs_work_point", "evening_message"}
    assert all(s.reached_classdojo is False for s in blocked)
    pupil_photo = base64.b64encode(photos.pupil_photo())[:400]
    assert not [b for b in _received_bodies(played) if pupil_photo in b]
    assert not [r for r in played.received if b"Rocket scientist" in r.body]


def test_report_exists_and_names_the_blocked_items(played):
    """The HTML report is written and lists every blocked decision with its rule."""
    html = played.report.read_text("utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    section = html.split("Blocked, held and delayed items", 1)[1].split("By class", 1)[0]
    blocked = [s for s in played.steps.values() if s.verdict == "block"]
    assert section.count(">block<") == len(blocked) == 3
    for step in blocked:
        assert step.decision_id[:12] in section
        assert f"{played.day.isoformat()} {step.time}" in section
        for rule in step.rules:
            assert rule in section


def test_long_steps_report_progress(played):
    """Importing consents, enrolling photos and starting the proxy each announce themselves."""
    text = " ".join(played.progress)
    assert "consent import" in text and "consent enrol" in text and "dojoguard run" in text


# -- privacy: nothing the teacher wrote or showed, and no name, is kept in the logs or the audit trail ----

def _texts() -> list[str]:
    whole = [script.TEXT_UPDATE, script.FAIR_MESSAGE, script.LONG_PERSONAL, script.POLL["question"],
             "Our science corner", "Rocket scientist", "Launch day on the field"]
    # Fragments too, so a truncated or partly quoted text is caught.
    fragments = ["daffodil", "worms", "Grandad", "family situation", "cake stall", "summer fair starts",
                 "learning mentor", "Which trip", "Museum"]
    return whole + fragments


def _pupil_names() -> list[str]:
    names = {first for _, first, *_ in school.PUPILS} | {last for _, _, last, *_ in school.PUPILS}
    return sorted(names | {p["firstName"] for p in data.PUPILS})


def _names() -> list[str]:
    """Pupils' names, the teacher's name and email, and the teacher's password."""
    return _pupil_names() + [data.TEACHER["firstName"] + " " + data.TEACHER["lastName"],
                             data.TEACHER["emailAddress"], data.PASSWORD]


def _has_name(text: str, name: str) -> bool:
    # Database files pack fields side by side ("Mensah2026-..."), so long names
    # are searched as plain text; short ones ("Bo") only where no letter touches them.
    if len(name) >= 4:
        return name in text
    return re.search(rf"(?<![A-Za-z]){re.escape(name)}(?![a-z])", text) is not None


def _image_pieces() -> list[bytes]:
    """Raw and base64 slices of every picture the demo sent, at many offsets."""
    pieces = []
    for picture in (photos.class_photo(), photos.pupil_photo(), photos.field_trip_photo(),
                    photos.sample_bytes("astronaut.jpg")):
        body = picture[600:]  # past the JPEG header, which every JPEG shares
        pieces += [body[i:i + 24] for i in range(0, len(body) - 24, max(1, len(body) // 40))]
        encoded = base64.b64encode(picture)
        pieces += [encoded[i:i + 40] for i in range(800, len(encoded) - 40, max(4, (len(encoded) // 40) // 4 * 4))]
    return pieces


def _stores(played, *, state: bool = True) -> dict[str, bytes]:
    """What dojoguard wrote about the day: the proxy's log, the audit records and the raw audit database files,
    and (with ``state``) the proxy's own state and holds databases."""
    stores = {"proxy log": played.proxy_log.encode(),
              "audit records": json.dumps(played.records, ensure_ascii=False).encode()}
    files = ["audit.sqlite", "audit.sqlite-wal"]
    if state:
        files += ["proxy.sqlite", "proxy.sqlite-wal", "holds.sqlite", "holds.sqlite-wal"]
    for name in files:
        path = played.folder / "data" / name
        if path.exists():
            stores[name] = path.read_bytes()
    return stores


def test_no_message_text_is_logged_or_audited(played):
    """No message text, caption or fragment of one appears in the proxy's log, the audit trail or its files."""
    stores = _stores(played)
    assert len(stores) >= 4
    # The scan can see text: the forwarded update did reach the stand-in verbatim.
    assert any(script.TEXT_UPDATE.encode() in b for b in _received_bodies(played))
    for where, blob in stores.items():
        text = blob.decode("utf-8", "replace").lower()
        for phrase in _texts():
            assert phrase.lower() not in text, f"{phrase!r} found in {where}"


def test_no_name_is_logged_or_audited(played):
    """No pupil's or teacher's name, the teacher's email or password appears in the log or the audit trail."""
    stores = _stores(played, state=False)
    assert len(stores) >= 3
    for where, blob in stores.items():
        text = blob.decode("utf-8", "replace")
        for name in _names():
            assert not _has_name(text, name), f"{name!r} found in {where}"


def test_no_pupil_name_or_password_is_kept_in_the_proxys_state(played):
    """The proxy's own databases hold no pupil's name and no password (its sessions keep only the teacher)."""
    for where, blob in _stores(played).items():
        text = blob.decode("utf-8", "replace")
        for name in [*_pupil_names(), data.PASSWORD, data.TEACHER["emailAddress"]]:
            assert not _has_name(text, name), f"{name!r} found in {where}"


def test_the_name_scan_finds_names_where_they_are_kept(played):
    """The same scan does find the pupils' names in the consent registry, where they belong (so it can see them)."""
    registry = (played.folder / "data" / "registry.sqlite").read_bytes().decode("utf-8", "replace")
    assert all(_has_name(registry, last) for _, _, last, *_ in school.PUPILS)
    assert _has_name(registry, "Ada") and _has_name(registry, "Bo")


def test_no_image_bytes_are_logged_or_audited(played):
    """No slice of any photo the demo sent, raw or base64, appears in the log, the audit trail or its files."""
    pieces = _image_pieces()
    assert len(pieces) > 200
    # The scan can see pictures: slices of the forwarded class photo are found in what the stand-in received.
    received = b"".join(_received_bodies(played))
    assert sum(piece in received for piece in pieces) > 20
    for where, blob in _stores(played).items():
        for piece in pieces:
            assert piece not in blob, f"photo bytes found in {where}"


def test_report_holds_no_text_or_names(played):
    """The leaders' report names decisions, rules, teachers and classes; never message text, pupils' names,
    or the teacher's email or password."""
    html = played.report.read_text("utf-8")
    visible = re.sub(r"data:[a-z/+]+;base64,[A-Za-z0-9+/=]+", "", html)  # embedded chart images
    for phrase in _texts():
        assert phrase.lower() not in visible.lower()
    teacher = data.TEACHER["firstName"] + " " + data.TEACHER["lastName"]
    for name in _names():
        if name != teacher:
            assert not _has_name(visible, name), name
    # The teacher is named, as the proxy learned her name (from its state database, not the audit log).
    assert "Mrs. Ex Ample" in visible
