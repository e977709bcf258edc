"""Videos through the real image check (worker pool, registry) and St Wilfrid's rules.

Videos are encoded in the tests with PyAV from real photographs: the shipped
public-domain portrait, and, when DOJOGUARD_FACES_DIR is set, photographs of
named adults (enrolled from some photos and filmed from others).
"""

from __future__ import annotations

import asyncio
import itertools
import time

import numpy as np
import pytest
from PIL import Image

from dojoguard.clock import FixedClock
from dojoguard.consent_registry import faces, sample_photos, sample_videos, worker
from dojoguard.consent_registry.imagecheck import ImageChecker, Layer
from dojoguard.consent_registry.registry import BIOMETRIC, Registry
from dojoguard.rules.action import Action, Attachment, AttachmentKind, Channel, Kind
from dojoguard.rules.decision import Verdict
from dojoguard.rules.policy import builtin_path, load_policy
from tests.consent_registry import crashing
from tests.consent_registry.conftest import NOW, add_pupil

pytestmark = pytest.mark.slow

PURPOSES = {"class_story": "class_story", "school_story": "school_story", "portfolio": "portfolio"}
SETTINGS = {"tolerance": 0.5, "max_megapixels": 64, "timeout_s": 30,
            "mode": "standard", "video_timeout_s": 60}
SMALL = (640, 360)


@pytest.fixture(scope="module")
def policy():
    return load_policy("builtin", calendar=builtin_path().parent / "example.calendar.yaml")


def enrol(reg: Registry, pupil: int, *photos: bytes) -> None:
    for data in photos:
        templates, problem = faces.templates_of(data, faces.Settings())
        assert problem is None and len(templates) == 1
        reg.add_template(pupil, templates[0], "photo")


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory, samples):
    """Ada (the astronaut) is enrolled and permitted for Class Story, refused for Portfolio; Bob is refused
    everything. Class "all-ok" holds only Ada; "mixed" holds both."""
    path = tmp_path_factory.mktemp("registry") / "registry.sqlite"
    with Registry.open(path, clock=FixedClock(NOW)) as reg:
        ada = add_pupil(reg, "A1", "Ada", "Astronaut", consents={"class_story": "granted", "portfolio": "refused",
                                                                   BIOMETRIC: "granted"})
        add_pupil(reg, "B1", "Bob", "Refused", consents={"class_story": "refused", "portfolio": "refused"})
        enrol(reg, ada, (samples / "astronaut.jpg").read_bytes())
        reg.learn_roster("all-ok", [("d-ada", "Ada", "Astronaut")])
        reg.learn_roster("mixed", [("d-ada", "Ada", "Astronaut"), ("d-bob", "Bob", "Refused")])
    return path


@pytest.fixture(scope="module")
def checker(registry_path):
    c = ImageChecker(SETTINGS, registry_path, PURPOSES, workers=2)
    yield c
    c.close()


@pytest.fixture(scope="module")
def people_registry(tmp_path_factory, faces_dir):
    """Olly is enrolled from two photographs of one adult and permitted for Class Story; class "olly-bob"
    also holds Bob, who is refused."""
    path = tmp_path_factory.mktemp("people") / "registry.sqlite"
    train = faces_dir / "people" / "knn_examples" / "train" / "obama"
    with Registry.open(path, clock=FixedClock(NOW)) as reg:
        olly = add_pupil(reg, "O1", "Olly", "Enrolled", consents={"class_story": "granted", BIOMETRIC: "granted"})
        add_pupil(reg, "B1", "Bob", "Refused", consents={"class_story": "refused"})
        enrol(reg, olly, *(p.read_bytes() for p in sorted(train.glob("*.jpg"))))
        reg.learn_roster("olly-bob", [("d-olly", "Olly", "Enrolled"), ("d-bob", "Bob", "Refused")])
    return path


@pytest.fixture(scope="module")
def people_checker(people_registry):
    c = ImageChecker(SETTINGS, people_registry, PURPOSES, workers=2)
    yield c
    c.close()


def clip(*shots, fps: int = 25, rotation: int | None = None) -> bytes:
    frames = itertools.chain.from_iterable(sample_videos.still(p, s, size=SMALL, fps=fps) for p, s in shots)
    return sample_videos.encode(frames, fps=fps, rotation=rotation)


def check(checker, data, *, channel="class_story", class_id="mixed"):
    return asyncio.run(checker.check(data, channel=channel, class_id=class_id, content_type="video/mp4"))


def decide(policy, result, *, channel="class_story", class_id="mixed"):
    """St Wilfrid's decision on a Class Story (or Portfolio) post carrying the video, at 10:00 on a school day."""
    kind = Kind.PORTFOLIO_POST if channel == "portfolio" else Kind.STORY_POST
    action = Action(kind=kind, channel=Channel(channel), at=NOW, teacher_id="t1", device_address="10.20.1.5",
                    class_id=class_id, attachments=(Attachment(AttachmentKind.VIDEO, content_type="video/mp4",
                                                               findings=result.findings),))
    return policy.evaluate(action)


@pytest.fixture(scope="module")
def portrait():
    return sample_photos.open_sample("astronaut.jpg")


@pytest.fixture(scope="module")
def coffee():
    return sample_photos.open_sample("coffee.jpg")


def test_video_without_faces_is_posted(checker, policy, coffee):
    result = check(checker, clip((coffee, 4)))
    f = result.findings
    assert result.kind is AttachmentKind.VIDEO and result.layer == Layer.VIDEO and result.format == "MP4"
    assert f.is_complete and f.frames_checked == 4 and f.faces_found == 0
    assert decide(policy, result).verdict is Verdict.ALLOW


def test_audience_all_permitted_posts_without_identifying(checker, policy, portrait):
    """Every pupil in the class is permitted: faces are counted as permitted, nobody is identified."""
    result = check(checker, clip((portrait, 3)), class_id="all-ok")
    f = result.findings
    assert result.layer == Layer.AUDIENCE_PERMITTED
    assert f.frames_checked == 3 and f.faces_found == f.faces_permitted == 3 and f.faces_not_permitted == 0
    assert decide(policy, result, class_id="all-ok").verdict is Verdict.ALLOW


def test_enrolled_permitted_face_is_matched_and_posted(checker, policy, portrait):
    """A mixed class: the enrolled, permitted pupil's face is matched in every sampled frame."""
    result = check(checker, clip((portrait, 3)))
    f = result.findings
    assert result.layer == Layer.VIDEO
    assert (f.faces_found, f.faces_permitted, f.faces_not_permitted, f.frames_checked) == (3, 3, 0, 3)
    assert decide(policy, result).verdict is Verdict.ALLOW


def test_face_not_permitted_for_the_channel_is_held(checker, policy, portrait):
    """The same pupil is refused for Portfolio: faces not permitted, and the video goes to a leader."""
    result = check(checker, clip((portrait, 2)), channel="portfolio")
    f = result.findings
    assert f.is_complete and f.faces_not_permitted == 2 and f.faces_permitted == 0
    decision = decide(policy, result, channel="portfolio")
    assert decision.verdict is Verdict.HOLD and "video-review" in decision.rule_ids


def test_a_face_only_in_a_later_scene_is_found(checker, policy, coffee, portrait):
    """Half a second of a face not permitted, between two regular samples, after a cut: found and held."""
    result = check(checker, clip((coffee, 2.4), (portrait, 0.5), (coffee, 2)), channel="portfolio")
    f = result.findings
    assert f.faces_found == 1 and f.faces_not_permitted == 1 and f.frames_checked > 5
    assert decide(policy, result, channel="portfolio").verdict is Verdict.HOLD


def test_rotated_phone_video_face_is_found(checker, policy, portrait):
    """Stored sideways with a rotation tag, as phones record: the face is still found (and checked)."""
    upright = sample_videos.fit(portrait, SMALL)
    stored = Image.fromarray(upright).rotate(-90, expand=True)  # the player turns it back 90 degrees
    data = sample_videos.encode(itertools.repeat(np.asarray(stored), 50), rotation=90)
    result = check(checker, data, channel="portfolio")
    assert result.findings.faces_found == 2 and result.findings.faces_not_permitted == 2
    assert decide(policy, result, channel="portfolio").verdict is Verdict.HOLD


def test_truncated_video_is_unreadable_and_held(checker, policy, portrait):
    data = clip((portrait, 3))
    result = check(checker, data[:len(data) // 2], class_id="all-ok")
    assert result.findings.unreadable and result.layer == Layer.FAILED and result.kind is AttachmentKind.VIDEO
    assert decide(policy, result, class_id="all-ok").verdict is Verdict.HOLD


def test_garbage_with_a_video_header_is_unreadable(checker, policy):
    data = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 200
    result = check(checker, data)
    assert result.findings.unreadable and decide(policy, result).verdict is Verdict.HOLD


def test_video_longer_than_the_cap_is_unreadable(registry_path, policy, coffee):
    c = ImageChecker({**SETTINGS, "video": {"max_duration_s": 2}}, registry_path, PURPOSES, workers=1)
    try:
        result = check(c, clip((coffee, 4)))
    finally:
        c.close()
    assert result.findings.unreadable and "limit" in result.findings.error
    assert decide(policy, result).verdict is Verdict.HOLD


def test_whole_video_check_is_bounded_in_time(registry_path, policy, coffee):
    """Past images.video_timeout_s the check fails closed (and the worker is replaced)."""
    c = ImageChecker({**SETTINGS, "video_timeout_s": 0.5}, registry_path, PURPOSES, workers=1)
    try:
        asyncio.run(c.run(faces.Settings))  # the worker is up: the timeout measures the video alone
        result = check(c, clip((coffee, 40), fps=25))
    finally:
        c.close()
    assert not result.findings.is_complete and "longer than 0.5 s" in result.findings.error
    assert decide(policy, result).verdict is Verdict.HOLD


def test_registry_unavailable_fails_a_video_with_faces(samples, policy, portrait, coffee):
    c = ImageChecker(SETTINGS, None, PURPOSES, workers=1)
    try:
        with_face, without = check(c, clip((portrait, 2))), check(c, clip((coffee, 2)))
    finally:
        c.close()
    assert with_face.layer == Layer.FAILED and not with_face.findings.is_complete
    assert without.findings.is_complete  # nothing needed the registry


# -- real photographs of adults (DOJOGUARD_FACES_DIR) ------------------------------------------------

def _photo(faces_dir, *parts) -> Image.Image:
    return Image.open(faces_dir.joinpath("people", "knn_examples", *parts))


def test_real_enrolled_person_filmed_is_posted(people_checker, policy, faces_dir):
    """Filmed from a photo not used for enrolment: matched against the allow-list in every frame, posted."""
    result = check(people_checker, clip((_photo(faces_dir, "test", "obama1.jpg"), 3)), class_id="olly-bob")
    f = result.findings
    assert f.is_complete and f.faces_found == 3 and f.faces_permitted == 3, f
    assert decide(policy, result, class_id="olly-bob").verdict is Verdict.ALLOW


def test_real_person_not_enrolled_after_a_cut_is_held(people_checker, policy, faces_dir):
    """The enrolled person, then a short shot of two people nobody enrolled: they are found and the video held."""
    video = clip((_photo(faces_dir, "test", "obama1.jpg"), 2.3), (_photo(faces_dir, "test", "kit_with_rose.jpg"), 0.6),
                 (_photo(faces_dir, "test", "obama1.jpg"), 2))
    result = check(people_checker, video, class_id="olly-bob")
    f = result.findings
    assert f.faces_not_permitted >= 2 and f.faces_unidentified == f.faces_not_permitted
    decision = decide(policy, result, class_id="olly-bob")
    assert decision.verdict is Verdict.HOLD and "video-review" in decision.rule_ids


def test_waiting_for_a_worker_counts_towards_the_video_limit(registry_path, coffee):
    """A video that cannot get a worker before images.video_timeout_s fails closed; the job it waited
    behind is not disturbed (its worker is not ended)."""
    c = ImageChecker({**SETTINGS, "video_timeout_s": 1}, registry_path, PURPOSES, workers=1)
    video = clip((coffee, 1))

    async def both():
        busy = asyncio.create_task(c.run(time.sleep, 3, requester="another teacher"))
        await asyncio.sleep(0.1)
        asked = time.monotonic()
        checked = await c.check(video, channel="class_story", class_id="mixed", content_type="video/mp4")
        waited = time.monotonic() - asked
        return checked, waited, await busy

    try:
        asyncio.run(c.run(faces.Settings))
        started = time.monotonic()
        result, waited, slept = asyncio.run(both())
    finally:
        c.close()
    assert not result.findings.is_complete and "longer than 1 s" in result.findings.error
    assert waited < 2  # it gave up at its limit, not when the worker came free
    assert slept is None and time.monotonic() - started >= 2.9


def test_a_frame_job_that_fails_fails_the_video_and_frees_the_workers(registry_path, portrait):
    """A worker that dies while checking some of a video's frames: the video fails closed, and the next
    check works."""
    c = ImageChecker(SETTINGS, registry_path, PURPOSES, workers=2)
    original, calls = c.run, []

    async def first_frames_job_dies(fn, *args, **kwargs):
        if fn is worker.check_frames:
            calls.append(len(args[0]))
            if len(calls) == 1:
                return await original(crashing.exit_quietly, **kwargs)
        return await original(fn, *args, **kwargs)

    data = clip((portrait, 10), fps=5)  # 10 frames: two jobs
    try:
        c.run = first_frames_job_dies
        failed = check(c, data, class_id="all-ok")
        c.run = original
        fine = check(c, data, class_id="all-ok")
    finally:
        c.close()
    assert calls == [8, 2]
    assert failed.layer == Layer.FAILED and not failed.findings.is_complete and failed.kind is AttachmentKind.VIDEO
    assert "stopped unexpectedly" in failed.findings.error
    assert fine.findings.is_complete and fine.findings.faces_found == 10


def test_a_4k_video_is_checked_within_the_worker_memory_ceiling(registry_path):
    """A 4K (3840 x 2160) video decodes and is checked under the kernel's memory ceiling for a worker."""
    sheet, _ = sample_photos.class_photo(columns=4, rows=2, tile=480)
    data = sample_videos.encode(sample_videos.pan(sheet, 2, size=(3840, 2160), fps=10), fps=10)
    c = ImageChecker({**SETTINGS, "worker_memory_mb": 600, "max_decode_mb": 330}, registry_path, PURPOSES,
                     workers=1)
    try:
        result = check(c, data, class_id="all-ok")
        peak = asyncio.run(c.run(worker.peak_rss_mb))
    finally:
        c.close()
    f = result.findings
    # The pan keeps five to eight of the eight faces in view.
    assert f.is_complete and f.frames_checked >= 2 and f.faces_found >= 5 * f.frames_checked, f
    assert peak < 600, peak
