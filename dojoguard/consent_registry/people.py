"""People in a photo whose faces were not found and checked: a backstop for the face check.

The face detector finds faces seen from the front. A child seen from the
side, looking down at their work, or from behind is in the picture all the
same, and a photo of them must not pass as "no face" when not everyone in
the audience has photo consent. This module looks for people by other means,
on a small grey copy of the frame, and counts those that no checked face
accounts for:

- near-miss faces: the same face detector run with a lowered threshold finds
  faces turned, tilted, shadowed or blurred a little past what it accepts;
- bodies: OpenCV's HOG people detector (Dalal and Triggs) finds a standing or
  walking person whatever their face shows.

A person counts as checked when a checked face lies where their head is: a
near-miss face overlapping a checked face is that face; a body is accounted
for by a checked face of plausible size in the top part of the body's box.

The figures (how often this fires on photos with no one in them, on
portraits and group photos whose faces are all checked, and how many people
with a hidden face it finds) and the limits are in docs/images.md, "People
whose faces cannot be checked". Runs in an image-check worker process, after
face detection, and only when faces must be matched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dojoguard.consent_registry import detection

# The long sides of the grey copies the two passes run on: set by the cost
# budget (about 0.15 s of CPU in all for a 12-megapixel photo, measured in
# docs/images.md) more than by accuracy. At 800 pixels the face pass sees
# faces down to a tenth of the photo's long side; at 640 the body pass sees
# people down to a fifth of it tall.
LONG_SIDE = 800
BODY_LONG_SIDE = 640
# The face detector accepts a candidate scoring 0 or more; from this up to 0
# it is a near miss. Measured on the reference photos: the best candidates in
# photos with no one in them score up to -0.48 (a dog, the rocket once
# re-encoded), the cameraman in profile -0.35 to -0.01; -0.3 finds a third
# fewer hidden faces.
NEAR_MISS_THRESHOLD = -0.4
# The HOG people detector's SVM margin. At 0 it fires on a tie and a space
# helmet in portraits whose face is checked; 1.0 keeps clear bodies only.
BODY_THRESHOLD = 1.0
BODY_SCALE_STEP = 1.1
# A body box is tight around the torso: a checked face a little to one side
# of it is still that person's head.
BODY_WIDEN = 0.25
SAME_BODY_OVERLAP = 0.5
# A checked face accounts for a body when its centre lies in the top part of
# the body's box and its width is a plausible fraction of the box's width.
HEAD_ZONE = 0.35
FACE_TO_BODY_WIDTH = (0.08, 0.7)
SAME_FACE_OVERLAP = 0.3
# The detectors' windows (height, width): a picture smaller than one has no
# one to find, and the native code must never be handed one (a 800 x 1 copy
# crashed the process).
FACE_WINDOW = (80, 80)
BODY_WINDOW = (128, 64)

_face_detector = None
_body_detector = None


@dataclass(frozen=True)
class Region:
    """Where someone was seen, [top, right, bottom, left] in the frame's pixels, and how."""

    box: tuple[float, float, float, float]
    kind: str  # "near-miss face" or "body"


@dataclass(frozen=True)
class People:
    """People seen whose faces were not found and checked, and where (kept for tests, never logged)."""

    count: int
    regions: tuple[Region, ...] = ()


def _detectors():
    global _face_detector, _body_detector
    if _face_detector is None:
        import cv2
        import dlib

        # A worker process is one of a pool sized to the cores: OpenCV's own
        # threads would only compete with the other workers.
        cv2.setNumThreads(1)
        _face_detector = dlib.get_frontal_face_detector()
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        _body_detector = hog
    return _face_detector, _body_detector


def preload() -> None:
    """Load OpenCV and both detectors now (an image worker does, before its memory ceiling is set)."""
    _detectors()


def _grey_at(pixels: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """A grey copy whose long side is ``long_side``, and frame pixels per copy pixel.

    Small photos are enlarged too, so that what is seen depends on how much
    of the photo a person fills, not on how many pixels it has: measured, the
    cameraman (a 512-pixel photo) in profile scores -0.29 looking one way and
    -0.74 the other at his own size, -0.14 and -0.1 at twice it.
    """
    import cv2

    grey = pixels if pixels.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    factor = long_side / max(height, width)
    if factor != 1.0:
        grey = cv2.resize(grey, (max(1, round(width * factor)), max(1, round(height * factor))),
                          interpolation=cv2.INTER_AREA if factor < 1.0 else cv2.INTER_LINEAR)
    return np.ascontiguousarray(grey), 1.0 / factor


# A box mostly inside another is the same face (or person) found twice.
_overlap = detection.overlap


def head_of(face, body) -> bool:
    """Whether ``face`` is plausibly the head of the person whose body box is ``body``."""
    f_top, f_right, f_bottom, f_left = face
    b_top, b_right, b_bottom, b_left = body
    cx, cy = (f_left + f_right) / 2, (f_top + f_bottom) / 2
    width, height = b_right - b_left, b_bottom - b_top
    low, high = FACE_TO_BODY_WIDTH
    return (b_left <= cx <= b_right and b_top - 0.1 * height <= cy <= b_top + HEAD_ZONE * height
            and low * width <= f_right - f_left <= high * width)


def _fits(grey: np.ndarray, window: tuple[int, int]) -> bool:
    return grey.shape[0] >= window[0] and grey.shape[1] >= window[1]


def near_miss_faces(grey: np.ndarray) -> list[tuple[float, float, float, float]]:
    if not _fits(grey, FACE_WINDOW):
        return []
    face_detector, _ = _detectors()
    found, _, _ = face_detector.run(grey, 0, NEAR_MISS_THRESHOLD)
    return [(r.top(), r.right(), r.bottom(), r.left()) for r in found]


def bodies(grey: np.ndarray) -> list[tuple[float, float, float, float]]:
    if not _fits(grey, BODY_WINDOW):
        return []
    _, body_detector = _detectors()
    rects, weights = body_detector.detectMultiScale(grey, hitThreshold=BODY_THRESHOLD, winStride=(8, 8),
                                                    padding=(8, 8), scale=BODY_SCALE_STEP)
    return [(y, x + w, y + h, x) for (x, y, w, h) in (rects if len(rects) else [])]


def _widened(box, by: float):
    top, right, bottom, left = box
    extra = (right - left) * by
    return (top, right + extra, bottom, left - extra)


@dataclass(frozen=True)
class Candidates:
    """Where people may be, before checked faces account for them (in the frame's pixels)."""

    heads: tuple[tuple[float, float, float, float], ...] = ()
    bodies: tuple[tuple[float, float, float, float], ...] = ()

    def scaled(self, factor: float) -> "Candidates":
        return Candidates(tuple(tuple(v * factor for v in h) for h in self.heads),
                          tuple(tuple(v * factor for v in b) for b in self.bodies))


def candidates(pixels: np.ndarray, *, long_side: int = LONG_SIDE, body_long_side: int = BODY_LONG_SIDE) -> Candidates:
    """Near-miss faces and bodies in ``pixels`` (RGB or grey), in its pixels."""
    grey, scale = _grey_at(pixels, long_side)
    heads = tuple(tuple(v * scale for v in h) for h in near_miss_faces(grey))
    body_grey, body_scale = _grey_at(grey, body_long_side)
    found_bodies = tuple(tuple(v * scale * body_scale for v in b) for b in bodies(body_grey))
    return Candidates(heads, found_bodies)


def account(found: Candidates, face_boxes) -> People:
    """The candidates no box in ``face_boxes`` (the checked faces, same pixels) accounts for.

    Kept apart from ``candidates`` so that when a photo's detection is split
    over two workers the faces both found account for the people one saw.
    """
    checked = [tuple(float(v) for v in box) for box in face_boxes]
    heads = [h for h in found.heads if all(_overlap(h, f) < SAME_FACE_OVERLAP for f in checked)]
    unaccounted: list = []
    for body in found.bodies:
        if any(head_of(f, _widened(body, BODY_WIDEN)) for f in checked):
            continue
        # The detector can return one person twice, at neighbouring scales.
        if all(_overlap(body, other) < SAME_BODY_OVERLAP for other in unaccounted):
            unaccounted.append(body)
    # A near-miss face at the head of an unaccounted body is one person, not two.
    heads = [h for h in heads if not any(head_of(h, _widened(b, BODY_WIDEN)) for b in unaccounted)]
    regions = [Region(h, "near-miss face") for h in heads] + [Region(b, "body") for b in unaccounted]
    return People(len(regions), tuple(regions))


def find_unverified(pixels: np.ndarray, face_boxes, *, long_side: int = LONG_SIDE,
                    body_long_side: int = BODY_LONG_SIDE) -> People:
    """People in ``pixels`` (RGB or grey) that no box in ``face_boxes`` accounts for.

    ``face_boxes`` are the checked faces, [top, right, bottom, left] in the
    same pixels as ``pixels``; the regions come back in those pixels too.
    """
    return account(candidates(pixels, long_side=long_side, body_long_side=body_long_side), face_boxes)
