"""The detector's plan and its two halves: sizes, the level-limited copy, and merging the halves' faces."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from dojoguard.consent_registry import detection, faces
from tests.consent_registry.conftest import jpeg


def test_a_12_megapixel_photo_is_scanned_at_1_2x_to_find_56_pixel_faces():
    plan = detection.plan((4032, 3024), 17.5)
    assert 1.19 <= plan.scale <= 1.21 and plan.smallest_face_px == 56
    assert plan.split


def test_small_photos_are_scanned_at_twice_their_size_and_huge_ones_below_their_own():
    assert detection.plan((640, 480), 17.5).scale == detection.MAX_SCALE
    assert not detection.plan((640, 480), 17.5).split  # one worker does it all
    huge = detection.plan((8000, 8000), 17.5)
    assert huge.scale < 1 and 8000 * 8000 * huge.scale ** 2 <= 17.5e6 + 1
    # The pixel budget, not the photo, bounds the work: a 64 MP photo costs what a 12 MP one does.
    assert math.isclose(8000 * 8000 * huge.scale ** 2, 4032 * 3024 * detection.plan((4032, 3024), 17.5).scale ** 2)


def test_the_shipped_detector_format_is_recognised_and_limited_to_two_levels(samples):
    """dlib's saved detector carries the level limit: the top half finds only faces the size of its two
    levels' window, the whole detector finds a big face too. (If dlib's format changed, the top half would
    fall back to the whole detector: slower, never less thorough.)"""
    detector = faces.detector()
    assert detector.top_limited
    portrait = Image.open(samples / "astronaut.jpg").convert("L").resize((1200, 1200))
    grey = np.ascontiguousarray(np.asarray(portrait))
    assert len(detector.scan(grey, detection.ALL, 0.0)) == 1  # a face of about 400 px
    assert detector.scan(grey, detection.TOP, 0.0) == []  # too big for the top two levels' 80 px window


def test_same_face_is_a_duplicate_at_a_neighbouring_size_never_a_much_smaller_face():
    a = (100, 200, 200, 100)
    assert detection.same_face(a, (105, 205, 205, 105))  # the other half's box for it
    assert detection.same_face(a, (115, 185, 185, 115))  # inside it, a level smaller
    assert not detection.same_face(a, (110, 135, 135, 110))  # inside it, a third of its width: another face
    assert not detection.same_face(a, (400, 500, 500, 400))


def test_combining_halves_counts_a_face_once_and_it_is_permitted_only_if_both_halves_say_so():
    top = faces.Analysis("JPEG", False, ((100, 200, 200, 100), (400, 500, 500, 400)), (True, True), scores=(1.0, 0.5))
    rest = faces.Analysis("JPEG", True, ((102, 202, 202, 102), (900, 1100, 1100, 900)), (False, True),
                          scores=(0.8, 2.0))
    combined = faces.combine([top, rest])
    assert len(combined.boxes) == 3
    assert combined.permitted == (False, True, True)  # the face both found: not permitted by one, so not
    assert combined.gps_present


def test_an_error_in_either_half_is_the_whole_check_failing():
    fine = faces.Analysis("JPEG", False, ((1, 2, 3, 0),), (True,), scores=(1.0,))
    broken = faces.Analysis("JPEG", False, error_code="engine", error="out of memory")
    assert faces.combine([fine, broken]).error == "out of memory"
    assert faces.combine([broken, fine]).error == "out of memory"


def test_combining_without_matching_keeps_permitted_unknown():
    top = faces.Analysis("JPEG", False, ((100, 200, 200, 100),), None, scores=(1.0,))
    rest = faces.Analysis("JPEG", False, (), None, scores=())
    assert faces.combine([top, rest]).permitted is None


@pytest.mark.slow
def test_the_two_halves_find_what_the_whole_detector_finds(samples):
    """On a 12 MP photo of tiled portraits, TOP + REST give the same faces as one whole scan."""
    portrait = Image.open(samples / "astronaut.jpg").convert("RGB")
    frame = Image.new("RGB", (4032, 3024), (90, 110, 130))
    # The portrait's face is about a sixth of its width: faces of about 70, 105, 160 and 250 px.
    for x, size in ((100, 400), (600, 600), (1300, 900), (2300, 1400)):
        frame.paste(portrait.resize((size, size)), (x, 600))
    data = jpeg(frame)
    settings = faces.Settings()
    whole = faces.analyse(data, settings, None, False, detection.ALL)
    halves = faces.combine([faces.analyse(data, settings, None, False, part)
                            for part in (detection.TOP, detection.REST)])
    assert whole.error is None and halves.error is None
    assert len(whole.boxes) == len(halves.boxes) >= 4
    for box in whole.boxes:
        assert any(detection.same_face(box, other) for other in halves.boxes)
