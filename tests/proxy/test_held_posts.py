"""What is held is the post that publishes, never the upload; one item per post; every decision linked to it.

A real ``dojoguard run`` (St Wilfrid's rules, image workers, the consent
registry of test_videos) in front of the stand-in, a teacher's client
trusting only the proxy's CA, and the real ``held`` commands. A video the
proxy cannot read (cut short) is the one St Wilfrid's holds for a leader
(`video-review`): its upload reaches ClassDojo's storage and the teacher's
app gets the file's id, and the story post naming that id is what waits for
the leader. A second proxy runs St Wilfrid's rules with the commented
`defer` lines of messaging-hours switched on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time

import pytest
from click.testing import CliRunner
from PIL import Image

from dojoguard.cli import cli
from dojoguard.clock import FixedClock
from dojoguard.consent_registry import sample_photos
from dojoguard.environment import Environment
from dojoguard.proxy.enforcement import UPLOAD_PASSED
from dojoguard.rules.loader import builtin_calendar, builtin_path
from dojoguard.standin import data
from tests.proxy.conftest import MONDAY_10, MONDAY_18, running_proxy, signed_in
from tests.proxy.test_videos import clip, registry

pytestmark = pytest.mark.slow

STORY = f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/storyFeed"
UPLOAD = "https://teach.classdojo.com/api/upload"
STORAGE = "https://dojo-uploads.s3.amazonaws.com/uploads"
MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
# How long the releaser may take to send an approved item (it looks every 0.3 s here).
RELEASED_WITHIN_S = 15.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("held-posts")
    registry(folder)
    # The storage host is intercepted as a school's deployment does (the stand-in answers for it too).
    with running_proxy(folder, policy="builtin", settings={"images": {"workers": 2}, "holds": {"check_every_s": 0.3}},
                       extra_hosts=[r"^dojo-uploads\.s3\.amazonaws\.com:\d+$"]) as found:
        with signed_in(found["proxy"], timeout=120) as client:
            yield dict(found, client=client)


@pytest.fixture(scope="module")
def cut_video() -> bytes:
    """A video cut off half way: it cannot be checked, so St Wilfrid's holds its post for a leader."""
    video = clip((sample_photos.open_sample("astronaut.jpg"), 2))
    return video[:len(video) // 2]


# -- helpers -------------------------------------------------------------------


def held(world, *args: str):
    """`dojoguard held ...` as a leader runs it, against the running proxy's files."""
    result = CliRunner().invoke(cli, ["--config", str(world["config"]), "held", *args],
                                obj=Environment(clock=FixedClock(MONDAY_10)))
    assert result.exit_code == 0, result.output
    return result.output


def items(world) -> list[dict]:
    return [json.loads(line) for line in held(world, "list", "--json").splitlines()]


def item_of(world, answer) -> dict:
    decision_id = answer.headers["x-dojoguard-decision"]
    found = [i for i in items(world) if i["decision_id"] == decision_id]
    assert len(found) == 1, (decision_id, items(world))
    return found[0]


def records(world, type_: str) -> list[dict]:
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT body FROM records WHERE type = ? ORDER BY seq", (type_,)).fetchall()
    finally:
        db.close()
    return [json.loads(body) for (body,) in rows]


def decision(world, decision_id: str) -> dict:
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        (body,) = db.execute("SELECT body FROM records WHERE type = 'decision' AND id = ?", (decision_id,)).fetchone()
    finally:
        db.close()
    return json.loads(body)


def multipart(video: bytes, boundary: str) -> tuple[bytes, dict[str, str]]:
    """A one-file upload as a browser frames it, with the boundary chosen by the test."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    return head + video + f"\r\n--{boundary}--\r\n".encode(), {
        "content-type": f"multipart/form-data; boundary={boundary}"}


def upload(world, video: bytes, boundary: str = "dojoguard-test-boundary") -> dict:
    """Upload through the proxy; the stand-in's answer (the file's id and URL), which the app must receive."""
    body, headers = multipart(video, boundary)
    answer = world["client"].post(UPLOAD, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert reply["_id"] and reply["path"], reply
    return {**reply, "decision_id": answer.headers["x-dojoguard-decision"]}


def post_naming(world, uploaded: dict, marker: str):
    return world["client"].post(STORY, json={"body": marker, "attachments": [{"_id": uploaded["_id"],
                                                                            "path": uploaded["path"]}]})


def posts_arrived(world, *markers: str) -> int:
    """Story posts the stand-in received carrying every marker (text, upload id)."""
    return sum(1 for r in world["standin"].received
               if r.method == "POST" and "/storyFeed" in r.path and all(m.encode() in r.body for m in markers))


def uploads_arrived(world, video: bytes) -> int:
    return sum(1 for r in world["standin"].received if r.method in ("POST", "PUT") and video in r.body
               and ("/api/upload" in r.path or "/uploads/" in r.path))


def assert_held(answer) -> None:
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_HELD", answer.text


def wait_until(check, timeout_s: float = RELEASED_WITHIN_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


# -- an upload is never held; the post that publishes it is ---------------------


def test_an_upload_the_rules_would_hold_reaches_storage_and_is_recorded_as_passed(world, cut_video):
    """The unreadable video's upload is forwarded, the app gets ClassDojo's id, and the record keeps
    video-review beside the proxy's reason for letting the upload go (allow)."""
    uploaded = upload(world, cut_video)
    assert uploads_arrived(world, cut_video) >= 1
    record = decision(world, uploaded["decision_id"])
    assert record["kind"] == "attachment.upload" and record["verdict"] == "allow", record
    assert record["rules"] == ["video-review", UPLOAD_PASSED], record
    assert "applies to the post that names it" in record["reason"], record
    assert not [i for i in items(world) if i["decision_id"] == uploaded["decision_id"]]


def test_a_held_post_is_sent_naming_its_upload_once_a_leader_approves(world, cut_video):
    """Upload, post, approve: the post naming the upload's id is held (not blocked, not sent), then reaches
    ClassDojo exactly once after `held approve`."""
    uploaded = upload(world, cut_video)
    posted = post_naming(world, uploaded, "Sports day video (approved)")
    assert_held(posted)
    record = decision(world, posted.headers["x-dojoguard-decision"])
    assert record["verdict"] == "hold" and record["rules"] == ["video-review"], record
    item = item_of(world, posted)
    assert item["action"] == "story.post"
    created = [e for e in records(world, "hold.created") if e["hold"] == item["id"]]
    assert [e["decision_id"] for e in created] == [posted.headers["x-dojoguard-decision"]]
    assert posts_arrived(world, "Sports day video (approved)") == 0

    held(world, "approve", item["id"], "--by", "Mrs Head")
    wait_until(lambda: posts_arrived(world, "Sports day video (approved)", uploaded["_id"]) == 1)
    time.sleep(1.5)  # several more release passes: still once
    assert posts_arrived(world, "Sports day video (approved)") == 1
    assert [e["hold"] for e in records(world, "hold.released")].count(item["id"]) == 1


def test_a_rejected_post_never_arrives_though_its_upload_did(world, cut_video):
    """`held reject` discards the post: ClassDojo's storage has the file, but no post ever names it."""
    uploaded = upload(world, cut_video)
    posted = post_naming(world, uploaded, "Sports day video (rejected)")
    assert_held(posted)
    item = item_of(world, posted)
    held(world, "reject", item["id"], "--reason", "Not for the class page", "--by", "Mrs Head")
    time.sleep(1.5)
    assert posts_arrived(world, "Sports day video (rejected)") == 0
    assert not [i for i in items(world) if i["id"] == item["id"]]


def test_the_teacher_learns_of_a_rejection_on_their_next_post_which_is_then_sent_again(world, cut_video):
    """After `held reject`, the teacher's next post (which the rules allow) is refused once, with the leader's
    reason and a request to send it again, recorded as `proxy.outcome-notice` and `teacher.told`; sent again,
    it goes through."""
    uploaded = upload(world, cut_video)
    posted = post_naming(world, uploaded, "Sports day video (rejected, told)")
    assert_held(posted)
    item = item_of(world, posted)
    held(world, "reject", item["id"], "--reason", "Please choose one without the visitors", "--by", "Mrs Head")
    time.sleep(1)  # the proxy re-reads who has notices waiting on each release pass (every 0.3 s here)

    first = world["client"].post(STORY, json={"body": "Well done Year 3 (first try)"})
    assert first.status_code == 403 and first.json()["error"]["code"] == "DOJOGUARD_BLOCKED", first.text
    message = first.json()["error"]["fallbackMessage"]
    assert "was not approved by a senior leader, so it was not posted" in message, message
    assert "Please choose one without the visitors" in message and "please send it again" in message, message
    assert "Sports day" not in message  # the item is named by its kind and time, never its text
    assert posts_arrived(world, "Well done Year 3 (first try)") == 0
    record = decision(world, first.headers["x-dojoguard-decision"])
    assert "proxy.outcome-notice" in record["rules"], record
    told = [e for e in records(world, "teacher.told") if e["hold"] == item["id"]]
    assert [(e["outcome"], e["decision_id"]) for e in told] == [("rejected", first.headers["x-dojoguard-decision"])]

    again = world["client"].post(STORY, json={"body": "Well done Year 3 (first try)"})
    assert again.status_code == 200, again.text
    assert posts_arrived(world, "Well done Year 3 (first try)") == 1


def test_a_teacher_with_an_approved_post_is_not_stopped_but_the_answer_carries_the_news(world, cut_video):
    """Good news alone does not stop a write: the next post goes, its answer carries the notice in a header."""
    uploaded = upload(world, cut_video)
    posted = post_naming(world, uploaded, "Sports day video (approved, told)")
    item = item_of(world, posted)
    held(world, "approve", item["id"], "--by", "Mrs Head")
    wait_until(lambda: posts_arrived(world, "Sports day video (approved, told)") == 1)
    wait_until(lambda: [e for e in records(world, "hold.released") if e["hold"] == item["id"]])
    time.sleep(0.5)  # the releaser keeps the notice just after recording the release
    answer = world["client"].post(STORY, json={"body": "Thank you for coming to sports day"})
    assert answer.status_code == 200, answer.text
    assert "approved by a senior leader and has now been posted" in answer.headers["x-dojoguard-notice"]
    assert [e["outcome"] for e in records(world, "teacher.told") if e["hold"] == item["id"]] == ["released"]


def test_an_upload_to_storage_is_passed_and_the_post_naming_its_url_is_held(world, cut_video):
    """The other upload endpoint (PUT to the storage host) is forwarded too; the post naming the file's URL
    is held on the upload's incomplete check, not refetched and blocked. Once it is held, the file is fetched
    once, for the leader to see (a preview kept with the item, the very bytes the upload's check recorded)."""
    url = f"{STORAGE}/held-posts-cut.mp4"
    put = world["client"].put(url, content=cut_video, headers={"content-type": "video/mp4"})
    assert put.status_code == 200, put.text
    record = decision(world, put.headers["x-dojoguard-decision"])
    assert record["verdict"] == "allow" and record["rules"] == ["video-review", UPLOAD_PASSED], record
    fetched_before = sum(1 for r in world["standin"].received if r.method == "GET" and "held-posts-cut" in r.path)
    posted = world["client"].post(STORY, json={"body": "Storage video", "attachments": [{"path": url}]})
    assert_held(posted)
    judged = decision(world, posted.headers["x-dojoguard-decision"])
    assert judged["rules"] == ["video-review"]
    assert sum(1 for r in world["standin"].received if r.method == "GET" and "held-posts-cut" in r.path) \
        == fetched_before + 1  # the preview, fetched after the hold was kept
    item = item_of(world, posted)
    db = sqlite3.connect(world["folder"] / "data" / "holds.sqlite")
    try:
        previews = db.execute("SELECT sha256 FROM previews WHERE item_id = ?", (item["id"],)).fetchall()
    finally:
        db.close()
    assert previews == [(hashlib.sha256(cut_video).hexdigest(),)]
    assert previews[0][0] in judged["hashes"]["attachment_sha256"]
    assert posts_arrived(world, "Storage video") == 0
    held(world, "reject", item["id"], "--reason", "test over", "--by", "Office")


# -- walking around it -----------------------------------------------------------


def test_a_post_carrying_the_video_itself_is_held(world, cut_video):
    """Inline, the body is the publication: it is held as it always was, and nothing reaches ClassDojo."""
    doc = {"body": "Inline video", "attachments": [{"type": "video", "data": "data:video/mp4;base64,"
                                                    + base64.b64encode(cut_video).decode()}]}
    answer = world["client"].post(STORY, json=doc)
    assert_held(answer)
    assert posts_arrived(world, "Inline video") == 0
    assert decision(world, answer.headers["x-dojoguard-decision"])["rules"] == ["video-review"]
    held(world, "reject", item_of(world, answer)["id"], "--reason", "test over", "--by", "Office")


def test_a_post_naming_an_upload_the_proxy_never_saw_is_not_sent(world):
    """An id the proxy never saw, with no URL to fetch: not passed on the strength of any upload; blocked."""
    answer = world["client"].post(STORY, json={"body": "Never seen", "attachments": [{"_id": "ab" * 12}]})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_BLOCKED", answer.text
    assert posts_arrived(world, "Never seen") == 0
    assert "proxy.incomplete-action" in decision(world, answer.headers["x-dojoguard-decision"])["rules"]


def test_an_upload_is_still_blocked_when_a_rule_blocks_it(world):
    """Passing holds is not passing blocks: a photo that cannot be read is refused at upload, unsent."""
    broken = sample_photos.encode_jpeg(sample_photos.open_sample("coffee.jpg").convert("RGB"))[:2000]
    answer = world["client"].post(UPLOAD, files={"file": ("broken.jpg", broken, "image/jpeg")})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_BLOCKED", answer.text
    assert uploads_arrived(world, broken) == 0
    assert decision(world, answer.headers["x-dojoguard-decision"])["verdict"] == "block"


# -- the same post, one item --------------------------------------------------------


def test_the_same_video_uploaded_and_posted_twice_is_one_item(world, cut_video):
    """Two uploads of the same bytes (different boundaries, so different ids) and the same post twice:
    one item; the second decision is linked to it by hold.joined, and nothing new is created."""
    before = {i["id"] for i in items(world)}
    first = post_naming(world, upload(world, cut_video, "boundary-one"), "Class assembly")
    second = post_naming(world, upload(world, cut_video, "boundary-two-differs"), "Class assembly")
    assert_held(first)
    assert_held(second)
    new = [i for i in items(world) if i["id"] not in before]
    assert len(new) == 1 and new[0]["decision_id"] == first.headers["x-dojoguard-decision"], new
    joined = [e for e in records(world, "hold.joined") if e["decision_id"] == second.headers["x-dojoguard-decision"]]
    assert joined == [{"hold": new[0]["id"], "decision_id": second.headers["x-dojoguard-decision"]}]
    assert not [e for e in records(world, "hold.created") if e["decision_id"] == second.headers["x-dojoguard-decision"]]
    held(world, "reject", new[0]["id"], "--reason", "test over", "--by", "Office")
    time.sleep(1.0)
    assert posts_arrived(world, "Class assembly") == 0


def test_a_different_caption_or_a_different_video_is_a_different_item(world, cut_video):
    """The content key joins only the same publication: new words, or other bytes, make their own item."""
    other = clip((sample_photos.open_sample("coffee.jpg"), 2))
    other = other[:len(other) // 2]
    before = {i["id"] for i in items(world)}
    answers = [post_naming(world, upload(world, cut_video, "b1"), "Harvest festival"),
               post_naming(world, upload(world, cut_video, "b2"), "Harvest festival, part two"),
               post_naming(world, upload(world, other, "b3"), "Harvest festival")]
    for answer in answers:
        assert_held(answer)
    new = [i for i in items(world) if i["id"] not in before]
    assert sorted(i["decision_id"] for i in new) == sorted(a.headers["x-dojoguard-decision"] for a in answers)
    for item in new:
        held(world, "reject", item["id"], "--reason", "test over", "--by", "Office")


@pytest.mark.faces
def test_a_video_of_a_stranger_uploaded_twice_is_held_once(world, faces_dir):
    """A readable video showing someone not enrolled: both uploads pass (detection only), the post is held
    for the face, and the second upload-and-post joins the first item."""
    stranger = clip((Image.open(faces_dir / "people" / "obama.jpg"), 2))
    before = {i["id"] for i in items(world)}
    first = post_naming(world, upload(world, stranger, "s1"), "Our visitor")
    second = post_naming(world, upload(world, stranger, "s2"), "Our visitor")
    assert_held(first)
    assert_held(second)
    new = [i for i in items(world) if i["id"] not in before]
    assert len(new) == 1, new
    assert decision(world, first.headers["x-dojoguard-decision"])["counts"]["faces_not_permitted"] >= 1
    assert [e["hold"] for e in records(world, "hold.joined")
            if e["decision_id"] == second.headers["x-dojoguard-decision"]] == [new[0]["id"]]
    held(world, "reject", new[0]["id"], "--reason", "test over", "--by", "Office")


# -- a deferred message: created, joined, and told exactly what will happen ------------


def deferring_policy(folder) -> str:
    """St Wilfrid's rules with messaging-hours switched to its commented `defer` lines."""
    rules = builtin_path()
    text = rules.read_text("utf-8")
    deferring = text.replace("    verdict: block\n    # verdict: defer\n    # release_window: school-hours\n",
                             "    verdict: defer\n    release_window: school-hours\n")
    assert deferring != text, "st-wilfrids.yaml no longer has the commented defer lines"
    target = folder / "rules"
    target.mkdir()
    (target / "st-wilfrids.yaml").write_text(deferring, "utf-8")
    (target / "lists").mkdir()
    for word_list in (rules.parent / "lists").iterdir():
        (target / "lists" / word_list.name).write_bytes(word_list.read_bytes())
    return str(target / "st-wilfrids.yaml")


@pytest.fixture(scope="module")
def evening(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deferred")
    # With the example calendar its copy is made for: without one, the window would never open (fail-safe).
    with running_proxy(folder, policy=deferring_policy(folder), at=MONDAY_18,
                       settings={"holds": {"check_every_s": 0.3},
                                 "rules": {"calendar": str(builtin_calendar())}}) as found:
        with signed_in(found["proxy"]) as client:
            yield dict(found, client=client)


DESCRIPTION = ("Messages are sent only 8.00am to 5pm, Monday to Friday (not on bank holidays or in the school "
               "holidays).")


def test_a_deferred_message_is_recorded_and_the_teacher_told_when_it_goes(evening):
    """Monday 6pm: queued until Tuesday 8.00am; defer.created links the decision to the item; the notice says
    when, that it goes by itself, and the policy, and never that it "was not sent"."""
    answer = evening["client"].post(MESSAGE, json={"body": "PE kit tomorrow, please"})
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert error["code"] == "DOJOGUARD_DEFERRED"
    assert error["fallbackMessage"] == ("Queued until 8.00am on Tuesday 1 December: it will be sent then, by itself. "
                                        f"{DESCRIPTION} (Reference: {error['decisionId']})")
    item = item_of(evening, answer)
    assert item["kind"] == "defer"
    (created,) = [e for e in records(evening, "defer.created") if e["hold"] == item["id"]]
    assert created == {"hold": item["id"], "decision_id": error["decisionId"], "rules": ["messaging-hours"],
                       "release_at": "2026-12-01T08:00:00+00:00"}
    assert not records(evening, "hold.created")


def test_pressing_send_again_joins_the_queued_message_and_says_so(evening):
    """The same message again: the same item (defer.joined names it), and the teacher is told it is already
    queued and will be sent once."""
    first = evening["client"].post(MESSAGE, json={"body": "Library books due Friday"})
    again = evening["client"].post(MESSAGE, json={"body": "Library books due Friday"})
    item = item_of(evening, first)
    error = again.json()["error"]
    assert error["code"] == "DOJOGUARD_DEFERRED"
    assert error["fallbackMessage"].startswith("This was already queued until 8.00am on Tuesday 1 December: "
                                               "it will be sent then, once. " + DESCRIPTION)
    assert "not sent" not in error["fallbackMessage"]
    assert [e for e in records(evening, "defer.joined") if e["decision_id"] == error["decisionId"]] == [
        {"hold": item["id"], "decision_id": error["decisionId"]}]
    assert not [e for e in records(evening, "defer.created") if e["decision_id"] == error["decisionId"]]


def test_the_same_words_to_another_family_are_their_own_message(evening):
    """The content key includes where a message goes: the same words in another thread are queued separately."""
    other_thread = MESSAGE.replace(data.THREAD_ID, "5f00000000000000000d0999")
    first = evening["client"].post(MESSAGE, json={"body": "Trip money by Thursday"})
    second = evening["client"].post(other_thread, json={"body": "Trip money by Thursday"})
    assert item_of(evening, first)["id"] != item_of(evening, second)["id"]
    assert not second.json()["error"]["fallbackMessage"].startswith("This was already queued")
