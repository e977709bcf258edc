"""The console's pages over real stores, in-process: decisions by name and by shortened reference, held items
decided under the account's name, a consent import previewed then applied, reports for a named period."""

from __future__ import annotations

import re

from dojoguard.audit.log import AuditLog
from dojoguard.clock import FixedClock
from dojoguard.consent_registry.registry import PersonKind, Registry
from dojoguard.names import Names
from dojoguard.rules.decision import Verdict
from tests.audit.conftest import make_action, make_decision
from tests.holds.test_cli import held_photo

from .conftest import NOW, Browser

T1 = "5f00000000000000000000a1"
C1 = "5f00000000000000000000c1"


def seed(cfg, verdicts=(Verdict.BLOCK, Verdict.ALLOW)) -> list[str]:
    """Decisions of this Monday by one teacher of one class, and their names as the proxy learned them."""
    names = Names.open(cfg.path("proxy", "state"))
    names.learn("teacher", T1, "Mrs Jones", NOW)
    names.learn("class", C1, "3B", NOW)
    names.close()
    log = AuditLog.open(cfg.path("audit", "database"), clock=FixedClock(NOW))
    try:
        return [log.append_decision(make_action(at=NOW, teacher_id=T1, class_id=C1),
                                    make_decision(verdict, at=NOW)).record_id for verdict in verdicts]
    finally:
        log.close()


def _records(cfg):
    log = AuditLog.open(cfg.path("audit", "database"))
    try:
        return list(log.records())
    finally:
        log.close()


def events(cfg, *types):
    log = AuditLog.open(cfg.path("audit", "database"))
    try:
        return [r.fields for r in log.records(types=types)]
    finally:
        log.close()


def test_decisions_are_searched_and_shown_by_name(browser, cfg):
    ids = seed(cfg)
    browser.login("lead")
    page = browser.get(f"/decisions/?teacher={T1}&verdict=block").get_data(as_text=True)
    assert "Mrs Jones" in page and "3B" in page
    assert ids[0][:8] in page and ids[1][:8] not in page  # allowed ones filtered out
    one = browser.get(f"/decisions/{ids[0][:8].upper()}").get_data(as_text=True)
    assert ids[0] in one and "Mrs Jones" in one and "The text itself is never recorded" not in one.capitalize()


def test_a_decision_page_says_who_was_told_and_whether_the_email_went(browser, cfg):
    ids = seed(cfg)
    log = AuditLog.open(cfg.path("audit", "database"), clock=FixedClock(NOW))
    try:
        log.append_event("alert.failed", {"batch": "b1", "group": "dsl", "cadence": "now", "alerts": 1,
                                          "references": [ids[0]], "attempts": 1,
                                          "error": "OSError: the relay is down", "next_try": NOW.isoformat()})
        log.append_event("alert.sent", {"batch": "b1", "group": "dsl", "cadence": "now", "alerts": 1,
                                        "references": [ids[0]], "rules": ["r"], "attempts": 2, "delay_s": 40.0})
    finally:
        log.close()
    browser.login("head")
    page = browser.get(f"/decisions/{ids[0]}").get_data(as_text=True)
    assert "not sent yet: OSError: the relay is down" in page
    assert "emailed the dsl recipient group (2 tries)" in page
    other = browser.get(f"/decisions/{ids[1]}").get_data(as_text=True)
    assert "emailed the" not in other  # only the decisions an email names


def test_a_reference_box_finds_the_decision_or_says_why_not(browser, cfg):
    ids = seed(cfg)
    browser.login("head")
    found = browser.get(f"/decisions/?reference=Reference:+{ids[1][:8]}")
    assert found.headers["Location"].endswith(f"/decisions/Reference:%20{ids[1][:8]}") or \
        found.headers["Location"].startswith("/decisions/")
    assert ids[1] in browser.get(found.headers["Location"]).get_data(as_text=True)
    short = browser.get(f"/decisions/{ids[1][:5]}", follow_redirects=True).get_data(as_text=True)
    assert "at least the first 8 characters" in short
    missing = browser.get("/decisions/" + "0" * 32, follow_redirects=True).get_data(as_text=True)
    assert "No decision has the reference" in missing
    (login,) = [r for r in _records(cfg) if r.type == "console.login"]
    event = browser.get(f"/decisions/{login.record_id}", follow_redirects=True).get_data(as_text=True)
    assert "No decision has the reference" in event  # only decisions are looked up by reference


def test_a_held_photo_is_shown_outlined_and_decided_under_the_accounts_name(browser, cfg):
    item = held_photo(cfg.data_dir)
    browser.login("lead")
    page = browser.get(f"/held/{item.decision_id[:8]}").get_data(as_text=True)
    assert f"/held/{item.id}/media/1" in page
    picture = browser.get(f"/held/{item.id}/media/1")
    assert picture.status_code == 200 and picture.mimetype == "image/jpeg" and picture.data[:2] == b"\xff\xd8"
    assert picture.headers["Cache-Control"] == "no-store, private"
    browser.get(f"/held/{item.id}")
    refused = browser.post(f"/held/{item.id}/reject", {"reason": "  "}, follow_redirects=True)
    assert "Give a reason" in refused.get_data(as_text=True)
    done = browser.post(f"/held/{item.id}/reject", {"reason": "Visitors in the picture"}, follow_redirects=True)
    assert "Rejected" in done.get_data(as_text=True)
    (rejected,) = events(cfg, "hold.rejected")
    assert rejected["by"] == "lead" and rejected["reason"] == "Visitors in the picture"
    assert "Nothing is waiting" in browser.get("/held/").get_data(as_text=True)


def test_an_approval_is_recorded_with_the_account(browser, cfg):
    item = held_photo(cfg.data_dir)
    browser.login("head")
    browser.get(f"/held/{item.id}")
    done = browser.post(f"/held/{item.id}/approve", follow_redirects=True)
    assert "Approved" in done.get_data(as_text=True)
    assert events(cfg, "hold.approved")[0]["by"] == "head"
    again = browser.post(f"/held/{item.id}/approve", follow_redirects=True).get_data(as_text=True)
    assert "only holds waiting for a leader can be approved" in again


GENERIC = ("MIS ID,UPN,First name,Last name,Year,Registration group,Class Story,School Story,Portfolio,Biometrics\n"
           "M001,A123456789012,Ada,Lovelace,3,3B,yes,no,yes,no\n")


def test_a_consent_import_is_previewed_then_applied_and_recorded(browser, cfg):
    browser.login("dpo")
    browser.get("/consent/")
    from io import BytesIO

    preview = browser.post("/consent/import", {"format": "generic", "exported_on": "2026-12-01",
                                               "file": (BytesIO(GENERIC.encode()), "mis.csv")})
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Ada Lovelace" in text and "Nothing has changed yet" in text
    registry = Registry.open(cfg.path("consent", "database"), purposes=cfg["consent"]["purposes"])
    try:
        assert registry.people(PersonKind.PUPIL) == []
    finally:
        registry.close()
    token = re.search(r'/consent/import/([0-9a-f]{32})', text).group(1)
    browser.last = "/consent/"
    other = Browser(browser.client.application)
    other.login("head")
    other.last = "/consent/"
    stolen = other.post(f"/consent/import/{token}", follow_redirects=True)  # another account's preview
    assert "That preview has expired" in stolen.get_data(as_text=True)
    applied = browser.post(f"/consent/import/{token}", {"format": "sims"},  # the form cannot change the format
                           follow_redirects=True)
    assert "Imported:" in applied.get_data(as_text=True)
    listed = browser.get("/consent/").get_data(as_text=True)
    assert "Ada Lovelace" in listed and "generic import" in listed
    (imported,) = events(cfg, "consent.imported")
    assert imported["account"] == "dpo" and imported["via"] == "console"
    assert not list((cfg.data_dir / "console-uploads").iterdir())  # the upload is gone once applied
    replay = browser.post(f"/consent/import/{token}", follow_redirects=True)
    assert "That preview has expired" in replay.get_data(as_text=True)


def test_a_bad_consent_file_lists_its_problems_and_changes_nothing(browser, cfg):
    browser.login("dpo")
    browser.get("/consent/")
    from io import BytesIO

    bad = GENERIC.replace("M001,", ",")
    answer = browser.post("/consent/import", {"format": "generic", "file": (BytesIO(bad.encode()), "mis.csv")})
    assert answer.status_code == 400 and "Nothing can be imported" in answer.get_data(as_text=True)
    assert not events(cfg, "consent.imported")


def test_reports_download_for_a_named_period_with_names(browser, cfg):
    seed(cfg)
    browser.login("lead")
    csv = browser.get("/reports/download?period=week&format=csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert "Mrs Jones" in csv.get_data(as_text=True)
    assert 'filename="dojoguard-2026-12-07-to-2026-12-07.csv"' in csv.headers["Content-Disposition"]
    html = browser.get("/reports/download?period=last-week&format=html")
    assert html.status_code == 200 and "last week" in html.get_data(as_text=True)
    assert [e["format"] for e in events(cfg, "report.downloaded")] == ["csv", "html"]
    wrong = browser.get("/reports/download?period=range&from=2026-12-07&to=2026-12-01", follow_redirects=True)
    assert "the range ends before it starts" in wrong.get_data(as_text=True)


def test_the_faces_of_a_held_photo_are_outlined_red_when_not_permitted(browser, cfg):
    """The astronaut's portrait (a public-domain sample) held for a class with no consent recorded: her face
    is found by the same check the proxy runs and outlined in red; the preview is a JPEG no larger than 1600 px."""
    import io
    from importlib import resources

    from PIL import Image

    from dojoguard.holds.store import HoldStore, StoredRequest
    from dojoguard.rules.action import Action, Channel, Kind
    from dojoguard.rules.decision import Decision, Match

    photo = resources.files("dojoguard.samples").joinpath("photos/astronaut.jpg").read_bytes()
    boundary = "----dojo"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"IMG_2.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    request = StoredRequest("POST", "https", "teach.classdojo.com", 443, "/api/upload", "HTTP/1.1",
                            (("Content-Type", f"multipart/form-data; boundary={boundary}"),), body, "10.20.1.5")
    decision = Decision(Verdict.HOLD, (Match("photo-review", Verdict.HOLD, "needs a leader", "Held"),), "rev", NOW)
    action = Action(Kind.STORY_POST, Channel.CLASS_STORY, NOW, teacher_id=T1, class_id=C1)
    store = HoldStore.open(cfg.data_dir / "holds.sqlite")
    item = store.keep("hold", request, decision, action, None)
    store.close()

    browser.login("head")
    answer = browser.get(f"/held/{item.id}/media/1")
    assert answer.status_code == 200 and answer.mimetype == "image/jpeg"
    preview = Image.open(io.BytesIO(answer.data)).convert("RGB")
    assert max(preview.size) <= 1600
    original = Image.open(io.BytesIO(photo)).convert("RGB")
    original.thumbnail((1600, 1600))

    def outline_red(picture) -> int:  # the outline's crimson (220, 20, 60), after JPEG
        return sum(1 for r, g, b in picture.get_flattened_data() if r > 190 and g < 60 and 30 < b < 100)

    # The photo has red of its own (a flag): count only what the outline added.
    assert outline_red(preview) - outline_red(original) > 100, "no red outline was drawn around the face"
    again = browser.get(f"/held/{item.id}/media/1")
    assert again.data == answer.data  # drawn once, then served from memory
