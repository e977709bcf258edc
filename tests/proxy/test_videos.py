"""Videos posted through the real proxy (St Wilfrid's rules, image workers, a consent registry) to the stand-in.

A class of three: Ada is permitted for Class Story and enrolled from the
shipped portrait, Bo is refused, so every face in a video posted to the
class must be identified. A video whose only face is Ada's is posted; one
showing someone not enrolled (a real photograph from DOJOGUARD_FACES_DIR)
is held for a leader, and never reaches ClassDojo.
"""

from __future__ import annotations

import base64
import itertools
import json

import pytest
from PIL import Image

from dojoguard.clock import FixedClock
from dojoguard.consent_registry import faces, sample_photos, sample_videos
from dojoguard.consent_registry.registry import BIOMETRIC, Registry
from dojoguard.standin import data
from tests.consent_registry.conftest import add_pupil
from tests.proxy.conftest import MONDAY_10, audit_rows, running_proxy, signed_in
from tests.support.videocovers import with_cover

pytestmark = pytest.mark.slow

STORY = f"https://teach.classdojo.com/api/dojoClass/{data.CLASS_ID}/storyFeed"
SIZE = (640, 360)


def registry(folder) -> None:
    path = folder / "data" / "registry.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    with Registry.open(path, clock=FixedClock(MONDAY_10)) as reg:
        enrol_class(reg)


def enrol_class(reg: Registry) -> int:
    """The class of three into ``reg``: Ada permitted and enrolled from the shipped portrait, Bo refused, Cy
    permitted; returns Ada's registry id."""
    ada = add_pupil(reg, "A1", "Ada", "L.", consents={"class_story": "granted", BIOMETRIC: "granted"})
    add_pupil(reg, "B1", "Bo", "K.", consents={"class_story": "refused"})
    add_pupil(reg, "C1", "Cy", "M.", consents={"class_story": "granted"})
    portrait = (sample_photos.folder() / sample_photos.PORTRAIT).read_bytes()
    templates, problem = faces.templates_of(portrait, faces.Settings())
    assert problem is None and len(templates) == 1
    reg.add_template(ada, templates[0], "sample")
    reg.learn_roster(data.CLASS_ID, [(p["_id"], p["firstName"], p["lastName"]) for p in data.PUPILS])
    return ada


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    registry(folder)
    with running_proxy(folder, policy="builtin", settings={"images": {"workers": 2}}) as found:
        with signed_in(found["proxy"], timeout=120) as client:
            yield dict(found, client=client)


def clip(*shots) -> bytes:
    frames = itertools.chain.from_iterable(sample_videos.still(p, s, size=SIZE) for p, s in shots)
    return sample_videos.encode(frames)


def post(world, video: bytes, marker: str):
    doc = {"body": marker, "attachments": [{"type": "video",
                                            "data": "data:video/mp4;base64," + base64.b64encode(video).decode()}]}
    return world["client"].post(STORY, json=doc)


def arrived(world, marker: str) -> bool:
    return any(r.method == "POST" and marker.encode() in r.body for r in world["standin"].received)


def audit(world, decision_id: str) -> dict:
    import sqlite3

    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        (body,) = db.execute("SELECT body FROM records WHERE type = 'decision' AND id = ?", (decision_id,)).fetchone()
    finally:
        db.close()
    return json.loads(body)


def test_video_of_a_permitted_pupil_is_posted(world):
    """Ada's face in every frame, matched against the allow-list: the video goes to ClassDojo."""
    video = clip((sample_photos.open_sample("coffee.jpg"), 1), (sample_photos.open_sample("astronaut.jpg"), 3))
    answer = post(world, video, "Ada's science video")
    assert answer.status_code == 200, answer.text
    assert arrived(world, "Ada's science video")
    counts = audit_rows(world["folder"] / "data" / "audit.sqlite")[-1]["counts"]
    assert counts["video_frames_checked"] == 4 and counts["faces_found"] == 3, counts
    assert counts["faces_not_permitted"] == 0, counts


def test_video_showing_someone_not_permitted_is_held(world, faces_dir):
    """A face nobody enrolled, after Ada's: held for a senior leader, not forwarded."""
    stranger = Image.open(faces_dir / "people" / "obama.jpg")
    answer = post(world, clip((sample_photos.open_sample("astronaut.jpg"), 2), (stranger, 2)), "Visitor video")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_HELD", answer.text
    assert not arrived(world, "Visitor video")
    decision_id = answer.headers.get("x-dojoguard-decision")
    assert decision_id
    record = audit(world, decision_id)
    assert record["verdict"] == "hold" and "video-review" in record["rules"], record
    assert record["counts"]["faces_not_permitted"] >= 1 and record["counts"]["video_frames_checked"] >= 4, record


def test_unreadable_video_is_held(world):
    """A video cut short cannot be checked: held, not forwarded."""
    video = clip((sample_photos.open_sample("astronaut.jpg"), 2))
    answer = post(world, video[:len(video) // 2], "Cut-off video")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_HELD", answer.text
    assert not arrived(world, "Cut-off video")
    record = audit(world, answer.headers["x-dojoguard-decision"])
    assert record["verdict"] == "hold" and "video-review" in record["rules"], record


def test_uploading_a_video_with_faces_is_not_held(world):
    """An upload publishes nothing (the post naming it is judged): a video with a face uploads, checked
    for faces only, like a photo."""
    video = clip((sample_photos.open_sample("astronaut.jpg"), 2))
    answer = world["client"].post("https://teach.classdojo.com/api/upload",
                                  files={"file": ("clip.mp4", video, "video/mp4")})
    assert answer.status_code == 200, answer.text
    counts = audit_rows(world["folder"] / "data" / "audit.sqlite")[-1]["counts"]
    assert counts["faces_found"] == 2 and counts["video_frames_checked"] == 2, counts


def test_a_webm_uploaded_as_a_plain_file_is_checked_as_a_video(world):
    """A WebM labelled ``application/octet-stream`` is found by its bytes and its frames are checked (it
    used to pass as a file: the proxy's reader did not know WebM)."""
    frames = sample_videos.still(sample_photos.open_sample("astronaut.jpg"), 2, size=SIZE)
    webm = sample_videos.encode(frames, container="webm", codec_name="libvpx-vp9")
    answer = world["client"].post("https://teach.classdojo.com/api/upload",
                                  files={"file": ("clip", webm, "application/octet-stream")})
    assert answer.status_code == 200, answer.text
    counts = audit_rows(world["folder"] / "data" / "audit.sqlite")[-1]["counts"]
    assert counts["faces_found"] == 2 and counts["video_frames_checked"] == 2, counts


def _upload_then_post(world, video: bytes, marker: str):
    uploaded = world["client"].post("https://teach.classdojo.com/api/upload",
                                    files={"file": ("clip.mp4", video, "video/mp4")})
    assert uploaded.status_code == 200, uploaded.text
    ref = uploaded.json()
    return world["client"].post(STORY, json={"body": marker, "attachments": [{"_id": ref["_id"],
                                                                                "path": ref["path"]}]})


def test_an_uploaded_video_is_judged_when_a_post_names_it(world, faces_dir):
    """The usual two steps (upload, then a post naming it): the post is judged on the video for its class."""
    ada = clip((sample_photos.open_sample("astronaut.jpg"), 2))
    posted = _upload_then_post(world, ada, "Ada uploaded")
    assert posted.status_code == 200, posted.text
    assert arrived(world, "Ada uploaded")
    stranger = clip((Image.open(faces_dir / "people" / "obama.jpg"), 2))
    held = _upload_then_post(world, stranger, "Visitor uploaded")
    assert held.status_code == 403 and held.json()["error"]["code"] == "DOJOGUARD_HELD", held.text
    assert not arrived(world, "Visitor uploaded")
    record = audit(world, held.headers["x-dojoguard-decision"])
    assert "video-review" in record["rules"] and record["counts"]["faces_not_permitted"] == 2, record


# -- Photos of people whose faces cannot be checked, through the same proxy --------------


def hidden_person() -> bytes:
    """The shipped portrait with her face blurred just past what the face detector finds."""
    import numpy as np

    from tests.consent_registry.test_people import checked_faces, softly_hidden

    image = sample_photos.open_sample(sample_photos.PORTRAIT).convert("RGB")
    return sample_photos.encode_jpeg(softly_hidden(image, checked_faces(np.asarray(image))[0]), quality=95)


@pytest.mark.parametrize("declared", ["image/jpeg", "application/octet-stream", "video/mp4"])
def test_a_photo_of_someone_whose_face_cannot_be_checked_is_held_however_it_is_labelled(world, declared):
    """No face is found, but a person is seen and the class is not all permitted: held for a leader,
    never "no face", whatever content type the upload claims (the bytes decide)."""
    marker = f"Hidden face {declared}"
    doc = {"body": marker, "attachments": [{"type": "photo", "data": f"data:{declared};base64,"
                                            + base64.b64encode(hidden_person()).decode()}]}
    answer = world["client"].post(STORY, json=doc)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_HELD", answer.text
    assert not arrived(world, marker)
    record = audit(world, answer.headers["x-dojoguard-decision"])
    assert record["verdict"] == "hold" and "photo-people-unverified" in record["rules"], record
    assert record["counts"]["faces_found"] == 0 and record["counts"]["people_unverified"] >= 1, record


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_face_only_on_the_cover_picture_is_held(world, faces_dir, fmt):
    """A faceless video whose cover picture (shown by players in its place) is a stranger: held, not forwarded.

    The way round a frame-by-frame check: put the face where no frame is.
    """
    stranger = Image.open(faces_dir / "people" / "obama.jpg")
    video = with_cover(stranger, [(sample_photos.open_sample("coffee.jpg"), 2)], fmt=fmt)
    marker = f"Cover picture video {fmt}"
    answer = post(world, video, marker)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "DOJOGUARD_HELD", answer.text
    assert not arrived(world, marker)
    record = audit(world, answer.headers["x-dojoguard-decision"])
    assert record["verdict"] == "hold" and record["counts"]["faces_not_permitted"] >= 1, record
