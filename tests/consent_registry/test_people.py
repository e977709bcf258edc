"""The backstop for people whose faces cannot be checked, on real photographs.

The shipped sample photos are always there; the real photographs folder
(DOJOGUARD_FACES_DIR) adds portraits, group photos and photos with no one in
them. A person whose face is hidden (blurred or covered) is exactly a person
whose face cannot be checked, so such photos are built here from real ones.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter

from dojoguard.consent_registry import decoding, faces, people, sample_photos
from dojoguard.rules.action import Action, Attachment, AttachmentKind, ImageFindings
from dojoguard.rules.policy import builtin_path, load_policy
from tests.consent_registry.conftest import class_photo

SETTINGS = faces.Settings()


@pytest.fixture(scope="module")
def policy():
    return load_policy("builtin", calendar=builtin_path().parent / "example.calendar.yaml")


def decoded(data: bytes) -> np.ndarray:
    """The frame the worker checks for an upload of ``data``, decoded as the worker decodes it."""
    return decoding.decode(data, max_pixels=SETTINGS.max_pixels, long_side=faces.frame_side(SETTINGS),
                           max_frames=1).frames[0].pixels


def frame_of(image: Image.Image) -> np.ndarray:
    return decoded(sample_photos.encode_jpeg(image, quality=92))


def sample(name: str) -> np.ndarray:
    return decoded((sample_photos.folder() / name).read_bytes())


def checked_faces(pixels: np.ndarray) -> list:
    height, width = pixels.shape[:2]
    return [f.box for f in faces.detect(decoding.Frame(pixels, 1.0, (width, height)), SETTINGS)]


def unverified(pixels: np.ndarray) -> people.People:
    """What the worker does: detect faces, then look for people those faces do not account for."""
    return people.find_unverified(pixels, checked_faces(pixels))


def hide_face(image: Image.Image, box, radius_of_width: float) -> Image.Image:
    """``image`` with the face in ``box`` (and a margin round it) blurred: a face that cannot be checked."""
    top, right, bottom, left = box
    margin = (right - left) * 0.25
    area = tuple(int(v) for v in (max(0, left - margin), max(0, top - margin),
                                  min(image.width, right + margin), min(image.height, bottom + margin)))
    out = image.copy()
    out.paste(image.crop(area).filter(ImageFilter.GaussianBlur((right - left) * radius_of_width)), area[:2])
    return out


def softly_hidden(image: Image.Image, box) -> Image.Image:
    """The least blur (of a few) that stops the face detector finding the face in ``box``."""
    for radius in (0.04, 0.07, 0.1):
        hidden = hide_face(image, box, radius)
        if not any(faces._overlap(box, f) > 0.3 for f in checked_faces(np.asarray(hidden))):
            return hidden
    raise AssertionError("no blur hid the face from the detector")


def holds(policy, findings: ImageFindings):
    action = Action.from_dict({"kind": "story.post", "channel": "class_story", "at": "2026-11-30T10:00:00+00:00",
                               "teacher": {"id": "t1"}, "device": {"address": "10.20.1.5"}, "class": {"id": "c1"}})
    action = dataclasses.replace(action, attachments=(Attachment(AttachmentKind.PHOTO, findings=findings),))
    return policy.evaluate(action)


def covers(region: people.Region, box) -> bool:
    return people._overlap(region.box, box) >= 0.3 or people.head_of(box, people._widened(region.box, 0.25))


# -- The shipped sample photos ---------------------------------------------


@pytest.mark.parametrize("name", sample_photos.NO_FACE)
def test_no_face_samples_show_no_one(samples, name):
    """A coffee cup, a rocket and a cat (an animal face) are not people."""
    pixels = sample(name)
    assert unverified(pixels).count == 0


def test_portrait_whose_face_is_checked_shows_no_one_else(samples):
    """The astronaut's own face accounts for her: her body is not an extra person."""
    pixels = sample(sample_photos.PORTRAIT)
    assert len(checked_faces(pixels)) == 1 and unverified(pixels).count == 0


def test_a_man_seen_from_the_side_is_a_person_whose_face_cannot_be_checked(samples):
    """The cameraman looks into his camera, his face half hidden: the backstop sees him on its own.

    (The face detector, scanning this small photo at twice its size, now finds his face too, so
    in a real check he is a checked face; the backstop must not depend on that.)"""
    pixels = sample("camera.jpg")
    found = people.find_unverified(pixels, [])
    assert found.count == 1
    top, right, bottom, left = found.regions[0].box
    # His head, in the upper middle of the 512-pixel photo.
    assert 80 <= top and bottom <= 260 and 150 <= left and right <= 330


def test_seen_from_the_other_side_too(samples):
    """Mirrored, he looks the other way: still found (the detector has left- and right-looking filters)."""
    image = sample_photos.open_sample("camera.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = frame_of(image)
    assert people.find_unverified(pixels, []).count == 1
    # In the check he is never "no one": a checked face, or a person whose face was not checked.
    assert len(checked_faces(pixels)) + unverified(pixels).count >= 1


def test_portrait_with_the_face_hidden_is_found(samples):
    """The astronaut with her face blurred just past what the detector accepts is still a person."""
    image = sample_photos.open_sample(sample_photos.PORTRAIT).convert("RGB")
    box = checked_faces(np.asarray(image))[0]
    hidden = softly_hidden(image, box)
    found = unverified(np.asarray(hidden))
    assert found.count == 1 and covers(found.regions[0], box)


def test_group_photo_with_one_face_hidden_is_held(samples, policy):
    """Two pupils side by side, one face checked and permitted, one face hidden: the photo goes to a leader.

    (Head and shoulders, so that each face is over a tenth of the photo's width: smaller
    faces are below what the backstop sees, see docs/images.md.)
    """
    head_and_shoulders = sample_photos.open_sample(sample_photos.PORTRAIT).crop((100, 0, 350, 300))
    image, _ = class_photo(head_and_shoulders, columns=2, rows=1, tile=400)
    pixels = np.asarray(image)
    boxes = sorted(checked_faces(pixels), key=lambda b: b[3])
    assert len(boxes) == 2 and people.find_unverified(pixels, boxes).count == 0
    hidden = np.asarray(softly_hidden(image, boxes[1]))
    remaining = checked_faces(hidden)
    found = people.find_unverified(hidden, remaining)
    assert len(remaining) == 1 and found.count == 1 and covers(found.regions[0], boxes[1])
    decision = holds(policy, ImageFindings(faces_found=1, faces_permitted=1, people_unverified=found.count))
    assert decision.verdict == "hold" and "photo-people-unverified" in decision.rule_ids
    # And without the hidden face the same photo is posted.
    assert holds(policy, ImageFindings(faces_found=2, faces_permitted=2)).verdict == "allow"


def test_a_heavily_covered_face_is_a_known_limit(samples):
    """A face blocked out entirely, on a portrait cut at the chest, leaves nothing these detectors know
    as a person (see docs/images.md): this records the limit so that a change to it is noticed."""
    image = sample_photos.open_sample(sample_photos.PORTRAIT).convert("RGB")
    top, right, bottom, left = checked_faces(np.asarray(image))[0]
    blocked = np.asarray(image).copy()
    blocked[int(top):int(bottom), int(left):int(right)] = (128, 128, 128)
    assert unverified(blocked).count == 0


# -- Walking round it ------------------------------------------------------


def test_a_person_too_small_to_see_is_a_known_limit(samples):
    """The cameraman shrunk to a corner of a phone-sized photo (his head 15 pixels of 1600) is not seen."""
    frame = Image.new("RGB", sample_photos.PHONE_FRAME, (110, 120, 110))
    small = sample_photos.open_sample("camera.jpg").convert("RGB").resize((128, 128))
    frame.paste(small, (200, 200))
    assert unverified(frame_of(frame)).count == 0


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 1600, 3), (1600, 1, 3), (8, 8), (3000, 20, 3), (81, 81),
                                   (129, 65), (130, 2000, 3)])
def test_odd_frame_shapes_are_handled(shape):
    """Frames of any shape (a line of pixels, grey, very tall, about one detector window) give an answer;
    a frame smaller than a window once crashed the native detector (the whole worker process)."""
    assert people.find_unverified(np.zeros(shape, np.uint8), []).count == 0


def test_face_boxes_outside_the_frame_do_not_account_for_anyone(samples):
    """A checked face elsewhere (or a nonsense box) does not make the cameraman checked."""
    pixels = sample("camera.jpg")
    assert people.find_unverified(pixels, [(0, 10, 10, 0), (-50, -10, -20, -60), (400, 500, 500, 400)]).count == 1


def test_cost_on_a_phone_photo_is_bounded(samples):
    """A 12-megapixel photo's frame (4032 x 3024) is checked in about 0.15 s of CPU; allow 0.4 s here."""
    image, _ = class_photo(sample_photos.open_sample(sample_photos.PORTRAIT), size=sample_photos.PHONE_FRAME)
    pixels = frame_of(image)
    assert pixels.shape[:2] == (3024, 4032)
    people.find_unverified(pixels, [])  # loads the detectors
    start = time.process_time()
    people.find_unverified(pixels, [])
    assert time.process_time() - start < 0.4


def test_grey_and_colour_frames_agree(samples):
    pixels = sample("camera.jpg")
    grey = np.asarray(Image.fromarray(pixels).convert("L"))
    assert people.find_unverified(grey, []).count == people.find_unverified(pixels, []).count == 1


# -- The real photographs --------------------------------------------------


def real(faces_dir, name) -> np.ndarray:
    return decoded((faces_dir / name).read_bytes())


NO_FACE_PHOTOS = ["no-faces/chelsea.png", "no-faces/coffee.png", "no-faces/hubble_deep_field.jpg",
                  "no-faces/rocket.jpg", "dlib-pascal/dogs.jpg"]
# Single portraits on which nothing but the checked face is seen (the astronaut's mission
# patch is a near miss, a known false alarm: docs/images.md).
PORTRAITS = ["people/obama.jpg", "people/obama2.jpg", "people/obama-720p.jpg", "people/biden.jpg",
             "people/lin-manuel-miranda.png", "people/alex-lacamoire.png", "people/32bit.png",
             "people/knn_examples/train/rose_leslie/img1.jpg", "dlib-pascal/Tom_Cruise_avp_2014_4.jpg"]
GROUPS = ["dlib-pascal/2008_001009.jpg", "dlib-pascal/2008_001322.jpg", "dlib-pascal/2008_002079.jpg",
          "dlib-pascal/2008_002470.jpg", "dlib-pascal/2008_002506.jpg", "dlib-pascal/2008_004176.jpg",
          "dlib-pascal/2008_007676.jpg", "dlib-pascal/bald_guys.jpg", "people/two_people.jpg",
          "people/knn_examples/test/obama_and_biden.jpg", "people/knn_examples/test/kit_with_rose.jpg"]


@pytest.mark.parametrize("name", NO_FACE_PHOTOS)
def test_real_photos_with_no_one_in_them(faces_dir, name):
    assert unverified(real(faces_dir, name)).count == 0


@pytest.mark.parametrize("name", PORTRAITS)
def test_real_portraits_whose_face_is_checked(faces_dir, name):
    pixels = real(faces_dir, name)
    assert len(checked_faces(pixels)) == 1 and unverified(pixels).count == 0


def test_most_group_photos_with_every_face_checked_pass(faces_dir):
    """Group photos whose faces are all found are not all held: 2 of the 13 are, both false alarms
    (a belt buckle taken for a near-miss face, a dark doorway for a body: docs/images.md)."""
    false_alarms = {"dlib-pascal/2008_004176.jpg", "dlib-pascal/2009_004587.jpg"}
    fired = {name for name in GROUPS + ["dlib-pascal/2007_007763.jpg", "dlib-pascal/2009_004587.jpg"]
             if unverified(real(faces_dir, name)).count}
    assert fired <= false_alarms


def test_real_cameraman_is_found(faces_dir):
    pixels = real(faces_dir, "people/camera.png")
    assert checked_faces(pixels) == [] and people.find_unverified(pixels, []).count == 1


@pytest.mark.parametrize("name, which", [("people/two_people.jpg", 0), ("people/two_people.jpg", 1)])
def test_real_group_with_one_face_hidden_is_held(faces_dir, policy, name, which):
    """A real group photo with one person's face blurred: found, counted once, and held for a leader."""
    image = Image.open(faces_dir / name).convert("RGB")
    boxes = sorted(checked_faces(np.asarray(image)), key=lambda b: b[3])
    hidden = softly_hidden(image, boxes[which])
    pixels = np.asarray(hidden)
    remaining = checked_faces(pixels)
    found = people.find_unverified(pixels, remaining)
    assert found.count == 1 and covers(found.regions[0], boxes[which])
    findings = ImageFindings(faces_found=len(remaining), faces_permitted=len(remaining),
                             people_unverified=found.count)
    decision = holds(policy, findings)
    assert decision.verdict == "hold" and "photo-people-unverified" in decision.rule_ids
