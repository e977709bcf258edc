"""The layered image check, run through the real worker pool with the sample photos."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from dojoguard.consent_registry import faces, imagecheck, worker
from dojoguard.consent_registry.imagecheck import ImageChecker, Layer
from dojoguard.consent_registry.registry import BIOMETRIC, Registry
from dojoguard.rules.action import AttachmentKind
from tests.consent_registry import crashing
from tests.consent_registry.conftest import NOW, add_pupil, class_photo, gps_exif, jpeg
from dojoguard.clock import FixedClock

PURPOSES = {"class_story": "class_story", "school_story": "school_story", "portfolio": "portfolio",
            "message": "class_story"}
SETTINGS = {"tolerance": 0.5, "max_megapixels": 64, "timeout_s": 30,
            "mode": "standard"}
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory, samples):
    """Ada (the astronaut) is enrolled and permitted for Class and School Story but not Portfolio;
    Bob is refused everything. Class "all-ok" holds only Ada; class "mixed" holds both."""
    path = tmp_path_factory.mktemp("registry") / "registry.sqlite"
    with Registry.open(path, clock=FixedClock(NOW)) as reg:
        ada = add_pupil(reg, "A1", "Ada", "Astronaut", consents={"class_story": "granted", "school_story": "granted",
                                                                   "portfolio": "refused", BIOMETRIC: "granted"})
        add_pupil(reg, "B1", "Bob", "Refused", consents={"class_story": "refused", "school_story": "refused"})
        templates, problem = faces.templates_of((samples / "astronaut.jpg").read_bytes(), faces.Settings())
        assert problem is None and len(templates) == 1
        reg.add_template(ada, templates[0], "sample")
        reg.learn_roster("all-ok", [("d-ada", "Ada", "Astronaut")])
        reg.learn_roster("mixed", [("d-ada", "Ada", "Astronaut"), ("d-bob", "Bob", "Refused")])
    return path


@pytest.fixture(scope="module")
def checker(registry_path):
    c = ImageChecker(SETTINGS, registry_path, PURPOSES, workers=1)
    yield c
    c.close()


def check(checker, data, channel="class_story", class_id="mixed", content_type="image/jpeg"):
    return asyncio.run(checker.check(data, channel=channel, class_id=class_id, content_type=content_type))


def test_no_face_nothing_to_check(checker, samples):
    """A picture with no human face (a cat here) is complete with nothing to check."""
    result = check(checker, (samples / "chelsea.jpg").read_bytes())
    assert result.layer == Layer.NO_FACE and result.findings.faces_found == 0 and result.findings.is_complete


def test_whole_audience_permitted_needs_no_identification(checker, samples):
    """When every pupil in the class is permitted, faces are allowed without matching anyone."""
    result = check(checker, (samples / "astronaut.jpg").read_bytes(), class_id="all-ok")
    f = result.findings
    assert result.layer == Layer.AUDIENCE_PERMITTED and (f.faces_found, f.faces_permitted) == (1, 1)


def test_mixed_audience_matches_the_allow_list(checker, samples):
    """With a refused pupil in the class, an enrolled permitted face is matched and permitted."""
    result = check(checker, (samples / "astronaut.jpg").read_bytes(), class_id="mixed")
    f = result.findings
    assert result.layer == Layer.MATCHED
    assert (f.faces_found, f.faces_permitted, f.faces_not_permitted, f.faces_unidentified) == (1, 1, 0, 0)


def test_face_not_permitted_for_channel_is_reported_with_its_box(checker, samples):
    """On a channel the person is not permitted for, the face is unmatched, counted and boxed for redaction."""
    result = check(checker, (samples / "astronaut.jpg").read_bytes(), channel="portfolio", class_id="mixed")
    f = result.findings
    assert (f.faces_found, f.faces_permitted, f.faces_not_permitted, f.faces_unidentified) == (1, 0, 1, 1)
    top, right, bottom, left = f.boxes_not_permitted[0]
    assert 60 <= top < bottom <= 190 and 160 <= left < right <= 290


def test_unknown_class_is_never_everyone_permitted(checker, samples):
    """A class the proxy has never seen falls through to matching; the audience is reported unknown."""
    result = check(checker, (samples / "astronaut.jpg").read_bytes(), class_id="never-seen")
    assert result.layer == Layer.MATCHED and not result.audience_known


def test_school_story_audience_is_every_pupil(checker, samples):
    """School Story with a refused pupil in the school matches faces against the School Story allow-list."""
    result = check(checker, (samples / "astronaut.jpg").read_bytes(), channel="school_story", class_id=None)
    assert result.layer == Layer.MATCHED and result.findings.faces_permitted == 1


def test_class_photo_counts_every_face_and_gps(checker, samples):
    """A tiled class photo reports all six faces, and the GPS tag it carries."""
    image, _ = class_photo(Image.open(samples / "astronaut.jpg"), columns=3, rows=2, tile=300)
    result = check(checker, jpeg(image, exif=gps_exif()), class_id="all-ok")
    assert result.findings.faces_found == 6 and result.findings.gps_present


def test_videos_reported_as_videos(checker):
    """A video is reported as a video, whatever the audience; one that is only a header is unreadable
    (real videos are checked frame by frame: test_imagecheck_video.py)."""
    ok = check(checker, MP4, class_id="all-ok", content_type="video/mp4")
    mixed = check(checker, MP4, class_id="mixed", content_type="video/mp4")
    assert ok.kind is mixed.kind is AttachmentKind.VIDEO
    assert ok.findings.unreadable and mixed.findings.unreadable and ok.layer == mixed.layer == Layer.FAILED


def test_other_files_are_not_pictures(checker):
    """A PDF is a file, not a picture: nothing for the image check to find."""
    result = check(checker, b"%PDF-1.7\n%%EOF", content_type="application/pdf")
    assert result.kind is AttachmentKind.FILE and result.layer == Layer.NOT_A_PICTURE


def test_hostile_pictures_unreadable_quickly_and_within_memory(checker, samples):
    """Garbage, truncated and oversized pictures come back unreadable in bounded time and memory."""
    data = (samples / "astronaut.jpg").read_bytes()
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")
    for hostile in (b"\xff\xd8\xff" + b"garbage" * 100, data[: len(data) // 3], bomb.getvalue()):
        started = time.monotonic()
        result = check(checker, hostile)
        assert result.findings.unreadable and result.findings.error
        assert time.monotonic() - started < 5
    assert asyncio.run(checker.run(worker.peak_rss_mb)) < 600


def test_missing_registry_fails_closed_only_when_faces_need_it(samples):
    """Without a registry a faceless picture passes but a face is a check not completed."""
    c = ImageChecker(SETTINGS, None, PURPOSES, workers=1)
    try:
        faceless = check(c, (samples / "coffee.jpg").read_bytes())
        face = check(c, (samples / "astronaut.jpg").read_bytes())
    finally:
        c.close()
    assert faceless.findings.is_complete
    assert not face.findings.is_complete and "registry" in face.findings.error


def test_dead_or_stuck_worker_is_a_failed_check(checker, samples, monkeypatch):
    """A worker that exits with status 0 or hangs past the timeout is a failed check, and the pool recovers."""
    data = (samples / "astronaut.jpg").read_bytes()
    monkeypatch.setattr(worker, "check", crashing.exit_quietly)
    died = check(checker, data)
    monkeypatch.setattr(worker, "check", crashing.hang)
    monkeypatch.setattr(checker, "timeout", 2.0)
    hung = check(checker, data)
    monkeypatch.undo()
    assert "stopped unexpectedly" in died.findings.error
    assert "longer than" in hung.findings.error
    assert check(checker, data, class_id="all-ok").findings.faces_permitted == 1


def test_a_stuck_worker_is_ended_and_replaced(checker, samples, monkeypatch):
    """The worker that hung is killed, not left holding a core, and a new one takes its place."""
    data = (samples / "astronaut.jpg").read_bytes()
    check(checker, data)  # the pool's worker is up
    before = checker.worker_pids()
    monkeypatch.setattr(worker, "check", crashing.hang)
    monkeypatch.setattr(checker, "timeout", 2.0)
    assert "longer than" in check(checker, data).findings.error
    monkeypatch.undo()
    assert check(checker, data, class_id="all-ok").findings.faces_permitted == 1
    after = checker.worker_pids()
    assert len(before) == 1 and len(after) == 1 and after != before
    deadline = time.monotonic() + 10
    while _alive(before[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(before[0])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_event_loop_keeps_running_during_a_check(checker, samples):
    """A 12-megapixel check runs in a worker: the event loop keeps ticking meanwhile."""
    image, _ = class_photo(Image.open(samples / "astronaut.jpg"), size=(4032, 3024))
    data = jpeg(image)

    async def scenario():
        gaps, done = [], asyncio.Event()

        async def tick():
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        result = await checker.check(data, channel="class_story", class_id="all-ok", content_type="image/jpeg")
        done.set()
        await ticker
        return result, max(gaps)

    result, worst_gap = asyncio.run(scenario())
    assert result.findings.faces_found == 6
    assert worst_gap < 0.25


def test_engine_that_quits_is_an_error_not_an_exit():
    """face_recognition calling quit() (models package cannot load) becomes EngineError, not exit status 0."""
    code = ("import sys; sys.modules['pkg_resources'] = None\n"
            "from dojoguard.consent_registry import faces\n"
            "try:\n    faces.engine()\nexcept faces.EngineError as exc:\n    print('ENGINE-ERROR', exc)\n"
            "    sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "ENGINE-ERROR" in done.stdout


def test_sniffing_by_content_not_by_name():
    """The kind comes from the bytes first: a JPEG labelled as a PDF is still a photo."""
    assert imagecheck.sniff_kind(jpeg(Image.new("RGB", (8, 8))), "application/pdf") is AttachmentKind.PHOTO
    assert imagecheck.sniff_kind(MP4, "image/jpeg") is AttachmentKind.VIDEO
    assert imagecheck.sniff_kind(b"hello", "image/png") is AttachmentKind.PHOTO
    assert imagecheck.sniff_kind(b"hello", None) is AttachmentKind.FILE


def test_many_checks_at_once_queue_without_failing(checker, samples):
    """Ten photos sent together wait their turn for the one worker; none fails on time spent queueing."""
    data = (samples / "astronaut.jpg").read_bytes()

    async def burst():
        return await asyncio.gather(*(checker.check(data, channel="class_story", class_id="all-ok",
                                                    content_type="image/jpeg") for _ in range(10)))

    assert check(checker, data, class_id="all-ok").findings.faces_permitted == 1  # the worker is up
    original = checker.timeout
    checker.timeout = 0.5  # each check takes well under this, ten in a row do not
    try:
        results = asyncio.run(burst())
    finally:
        checker.timeout = original
    assert [r.findings.faces_permitted for r in results] == [1] * 10


# -- People whose faces cannot be checked (people.py) -------------------------


@pytest.fixture(scope="module")
def hidden_person(samples) -> bytes:
    """The astronaut with her face blurred just past what the face detector finds: a person whose face
    cannot be checked (as a child looking down or turned away is)."""
    from dojoguard.consent_registry import sample_photos
    from tests.consent_registry.test_people import checked_faces, softly_hidden

    image = sample_photos.open_sample(sample_photos.PORTRAIT).convert("RGB")
    hidden = softly_hidden(image, checked_faces(np.asarray(image))[0])
    data = jpeg(hidden, quality=95)
    assert faces.analyse(data, faces.Settings(), None, False).boxes == ()
    return data


def test_person_whose_face_cannot_be_checked_is_not_no_face(checker, hidden_person):
    """A person whose face is not found: with a pupil in the class who is not permitted the photo
    is not "no face": it is counted as unverified and St Wilfrid's rules hold it."""
    from dojoguard.rules.action import Action, Attachment
    from dojoguard.rules.policy import builtin_path, load_policy

    result = check(checker, hidden_person, class_id="mixed")
    f = result.findings
    assert result.layer == Layer.MATCHED and f.is_complete
    assert (f.faces_found, f.faces_not_permitted, f.people_unverified) == (0, 0, 1)
    policy = load_policy("builtin", calendar=builtin_path().parent / "example.calendar.yaml")
    action = Action.from_dict({"kind": "story.post", "channel": "class_story", "at": "2026-11-30T10:00:00+00:00",
                               "teacher": {"id": "t1"}, "device": {"address": "10.20.1.5"},
                               "class": {"id": "mixed"}})
    decision = policy.evaluate(dataclasses.replace(action, attachments=(Attachment(AttachmentKind.PHOTO,
                                                                                   findings=f),)))
    assert decision.verdict == "hold" and decision.rule_ids == ("photo-people-unverified",)


def test_people_are_looked_for_only_when_the_audience_is_not_all_permitted(checker, samples, hidden_person):
    """Everyone in the class permitted: the same photo needs no check at all. No one in the picture
    (a coffee cup) and a permitted portrait: nothing unverified, with a refused pupil in the class too."""
    camera = check(checker, hidden_person, class_id="all-ok")
    assert camera.layer == Layer.NO_FACE and camera.findings.people_unverified == 0
    coffee = check(checker, (samples / "coffee.jpg").read_bytes(), class_id="mixed")
    assert coffee.layer == Layer.NO_FACE and coffee.findings.people_unverified == 0
    portrait = check(checker, (samples / "astronaut.jpg").read_bytes(), class_id="mixed")
    assert (portrait.findings.faces_permitted, portrait.findings.people_unverified) == (1, 0)


def test_person_whose_face_cannot_be_checked_fails_closed_without_a_registry(samples, hidden_person):
    """With no registry, a faceless photo of a coffee cup still passes; a photo of someone whose
    face cannot be checked is a check not completed (the audience it needs cannot be known)."""
    c = ImageChecker(SETTINGS, None, PURPOSES, workers=1)
    try:
        coffee = check(c, (samples / "coffee.jpg").read_bytes())
        camera = check(c, hidden_person)
    finally:
        c.close()
    assert coffee.findings.is_complete and coffee.layer == Layer.NO_FACE
    assert not camera.findings.is_complete and "registry" in camera.findings.error
    assert camera.findings.people_unverified == 1


def test_cut_off_photo_of_a_person_is_unreadable_not_no_face(checker, samples):
    """Walking round it: the cameraman's photo cut off half way is unreadable, never "no face"."""
    data = (samples / "camera.jpg").read_bytes()
    result = check(checker, data[: len(data) // 2], class_id="mixed")
    assert result.layer == Layer.FAILED and result.findings.unreadable
