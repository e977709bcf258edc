"""Finding every face down to the back row: dlib's HOG detector, sized by a pixel budget, its pyramid in two halves.

The HOG detector scans a window of fixed size over an image pyramid (each
level 5/6 of the one above), so the smallest face it finds is set by the
scale of the top level: measured on the PASCAL group photos, a face about
67 pixels wide in the top level's pixels is found reliably. Finding faces
of 56 pixels in a 12-megapixel photo therefore needs a top level of about
1.2 times the photo (17.5 megapixels), made here by scaling the full
decoded photo (better detail than dlib's own upsampling of a smaller copy).

That costs about 2 s of CPU on one core, almost all of it in the top few
levels. It is split by pyramid level, not by tiles, so nothing is scanned
twice and no face is cut by a seam: the TOP part scans the top two levels
only (dlib's own detector with its pyramid limited to two levels), the
REST part scans the same photo scaled by (5/6)^2 and every level below.
The two parts cost about the same and run on two image workers at once.

``plan`` chooses the top level's scale from ``detect_megapixels``: the
detector's top level has at most that many pixels, and never more than
twice the photo's scale (beyond which upsampling adds nothing), so small
photos are scanned at twice their size and very large ones at less than
their own.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np

# A face this wide in the detector's top level is found reliably (measured:
# faces of 56 px at scale 1.19); used to report the smallest face a plan finds.
RELIABLE_FACE_PX = 67
# dlib's frontal detector uses pyramid_down<6>: each level is 5/6 of the one above.
LEVEL_STEP = 5 / 6
TOP_LEVELS = 2
# Never scan a photo at more than twice its size: dlib's own "upsample once".
MAX_SCALE = 2.0
# Below this many megapixels in the top level, one job does both parts
# (shipping the photo to a second worker would cost more than it saves).
SPLIT_MIN_MEGAPIXELS = 4.0

ALL, TOP, REST = "all", "top", "rest"


@dataclass(frozen=True)
class Plan:
    scale: float  # detector's top level, in the photo's own pixels (after orientation)
    split: bool   # worth running TOP and REST on two workers

    @property
    def smallest_face_px(self) -> int:
        """The smallest face (in the photo's pixels) found reliably with this plan."""
        return math.ceil(RELIABLE_FACE_PX / self.scale)


def plan(size: tuple[int, int], detect_megapixels: float) -> Plan:
    width, height = size
    pixels = max(1, width * height)
    scale = min(MAX_SCALE, math.sqrt(detect_megapixels * 1e6 / pixels))
    return Plan(scale, pixels * scale * scale >= SPLIT_MIN_MEGAPIXELS * 1e6)


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # top, right, bottom, left, in the scanned image's pixels
    score: float


class Detector:
    """dlib's frontal face detector, whole and limited to its top pyramid levels. One per worker process.

    dlib keeps the last picture's feature pyramid inside the detector (over
    100 MB after a 17.5-megapixel scan), which would leave a worker holding
    that much between photos and leave less room under its memory ceiling
    for the next decode. So each scan loads a fresh detector from its saved
    form (a few milliseconds; building the shipped one from scratch takes
    half a second) and drops it afterwards.
    """

    def __init__(self):
        import dlib

        whole = dlib.get_frontal_face_detector()
        self._whole = _saved(whole)
        self._top = _limited(self._whole, TOP_LEVELS)
        self.top_limited = self._top is not None

    def scan(self, grey: np.ndarray, part: str, threshold: float) -> list[Detection]:
        """Faces in ``grey`` (uint8, C-contiguous), scaled by ``level_scale(plan, part)``, for one part."""
        saved = self._top if part == TOP and self._top is not None else self._whole
        return _run(_load(saved), grey, threshold)


def level_scale(plan: Plan, part: str) -> float:
    """The scale (of the photo's own pixels) a part's first level is scanned at."""
    return plan.scale * (LEVEL_STEP ** TOP_LEVELS if part == REST else 1.0)


def _run(detector, grey: np.ndarray, threshold: float) -> list[Detection]:
    rects, scores, _ = detector.run(grey, 0, threshold)
    height, width = grey.shape
    return [Detection((max(0, r.top()), min(width, r.right()), min(height, r.bottom()), max(0, r.left())), float(s))
            for r, s in zip(rects, scores, strict=True)]


# dlib serialises the scanner's settings as small integers, each a length byte
# then little-endian bytes: cell size 8, padding 0, window 80 x 80, then the
# maximum number of pyramid levels (1000 in the shipped detector).
_SCANNER_HEAD = bytes([0x01, 0x08, 0x01, 0x00, 0x01, 0x50, 0x01, 0x50])
_DEFAULT_LEVELS = bytes([0x02, 0xE8, 0x03])


def _saved(detector) -> bytes:
    handle, path = tempfile.mkstemp(suffix=".svm")
    os.close(handle)
    try:
        detector.save(path)
        with open(path, "rb") as saved:
            return saved.read()
    finally:
        os.unlink(path)


def _load(saved: bytes):
    import dlib

    handle, path = tempfile.mkstemp(suffix=".svm")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(saved)
        return dlib.fhog_object_detector(path)
    finally:
        os.unlink(path)


def _limited(saved: bytes, levels: int) -> bytes | None:
    """The saved detector patched to scan only its top ``levels`` pyramid levels, or None.

    dlib's Python API has no setter for the scanner's level limit, but the
    detector's own file format carries it. If the format is not the one
    expected, None: the whole detector is then used for the top part too,
    slower (the lower levels are scanned twice), never less thorough.
    """
    at = saved.find(_SCANNER_HEAD)
    cut = at + len(_SCANNER_HEAD)
    if at < 0 or saved[cut:cut + 3] != _DEFAULT_LEVELS:
        return None
    return saved[:cut] + bytes([0x01, levels]) + saved[cut + 3:]


def overlap(a, b) -> float:
    """Intersection over the smaller of two boxes (top, right, bottom, left): 1.0 when one lies inside the other."""
    top, right = max(a[0], b[0]), min(a[1], b[1])
    bottom, left = min(a[2], b[2]), max(a[3], b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    smaller = min(max(0.0, r[1] - r[3]) * max(0.0, r[2] - r[0]) for r in (a, b))
    return inter / smaller if smaller else 0.0


def same_face(a, b) -> bool:
    """Two boxes (top, right, bottom, left) for one face: found by both parts, or at two levels."""
    top, right = max(a[0], b[0]), min(a[1], b[1])
    bottom, left = min(a[2], b[2]), max(a[3], b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    if not inter:
        return False
    area_a = (a[1] - a[3]) * (a[2] - a[0])
    area_b = (b[1] - b[3]) * (b[2] - b[0])
    if inter / (area_a + area_b - inter) >= 0.3:
        return True
    # A box mostly inside another is the same face only at a neighbouring level's size
    # (5/6 to 25/36): a much smaller one is a second person (a child in front of an adult),
    # whose box redaction needs.
    widths = sorted((a[1] - a[3], b[1] - b[3]))
    return overlap(a, b) >= 0.7 and widths[1] <= 1.6 * widths[0]
