"""Face detection and allow-list matching, run inside an image-check worker process.

dlib holds the GIL and its HOG detector is not thread-safe, so this module is
only ever used from worker processes, one detector per process, loaded once.
Templates computed here from an uploaded photo stay in this process for the
one check: only boxes and yes/no answers go back.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile

from dojoguard.consent_registry import decoding, detection, people

# Enrolment and checking must use the same landmark model.
LANDMARK_MODEL = "small"
# A box from a rotated copy lying this much inside an earlier find is the same face
# (a rotated face's box, mapped back upright, is larger than the upright one's).
SAME_FACE_OVERLAP = 0.3
THOROUGH_ANGLES = (-30.0, 30.0)

_engine = None
_detector = None


class EngineError(Exception):
    """The face engine could not run: the check fails closed."""


@dataclass(frozen=True)
class Settings:
    # The detector's top level has at most this many pixels (see detection.plan):
    # 17.5 finds faces from 56 px wide in a 12-megapixel photo.
    detect_megapixels: float = 17.5
    # dlib's HOG score a detection must reach; slightly below its default of 0
    # (measured: finds the faint faces of the back row, no false faces).
    threshold: float = -0.2
    thorough: bool = False
    tolerance: float = 0.5
    max_pixels: int = 64_000_000
    max_frames: int = 20


@dataclass(frozen=True)
class Analysis:
    """What a worker found. ``boxes`` are [top, right, bottom, left] in original pixels after orientation."""

    format: str | None
    gps_present: bool
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    # One per box when matching ran: True when the face matched the allow-list.
    permitted: tuple[bool, ...] | None = None
    # People seen whose faces were not found and checked (see people.py); 0 when not looked for.
    people_unverified: int = 0
    # One per box: the detector's score, to merge the parts of a split check.
    scores: tuple[float, ...] = ()
    # Where people may be (boxes only, original pixels; see people.py), from the part that looked.
    people_seen: "people.Candidates | None" = None
    error_code: str | None = None
    error: str | None = None


def engine():
    """face_recognition, imported once per process.

    Its models package calls quit() when pkg_resources is missing: that is a
    SystemExit with status 0, which must become an error, never a silent exit.
    """
    global _engine
    if _engine is None:
        try:
            with warnings.catch_warnings():
                # Its models package still uses pkg_resources (hence the pinned setuptools);
                # the deprecation notice is for its authors, not for IT staff reading our output.
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
                import face_recognition
        except (SystemExit, ImportError) as exc:
            raise EngineError(f"the face engine cannot load its models ({exc!r})") from None
        # face_recognition switches on Pillow's LOAD_TRUNCATED_IMAGES for the
        # whole process, which would decode a cut-off upload with grey filler
        # (and hide the faces in the missing part). Switch it back off.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        _engine = face_recognition
    return _engine


def engine_build() -> str:
    """How dlib was built, in words: linking BLAS makes templates several times faster."""
    import dlib

    blas = "with BLAS" if getattr(dlib, "DLIB_USE_BLAS", False) else "without BLAS (templates ~5x slower)"
    simd = "AVX" if getattr(dlib, "USE_AVX_INSTRUCTIONS", False) else "no AVX"
    return f"dlib {dlib.__version__}, {blas}, {simd}"


# A box mostly inside another is the same face (or person) found twice.
_overlap = detection.overlap


def _unrotate_box(box, angle: float, rotated_size, original_size):
    """Map a box found in a copy rotated by ``angle`` (PIL, counter-clockwise, expanded) back."""
    top, right, bottom, left = box
    theta = math.radians(angle)
    cx_r, cy_r = rotated_size[0] / 2, rotated_size[1] / 2
    cx, cy = original_size[0] / 2, original_size[1] / 2
    xs, ys = [], []
    for x, y in ((left, top), (right, top), (right, bottom), (left, bottom)):
        dx, dy = x - cx_r, y - cy_r
        xs.append(cx + dx * math.cos(theta) - dy * math.sin(theta))
        ys.append(cy + dx * math.sin(theta) + dy * math.cos(theta))
    return (max(0, min(ys)), min(original_size[0], max(xs)), min(original_size[1], max(ys)), max(0, min(xs)))


@dataclass
class _Found:
    box: tuple  # in the frame's pixels, upright
    source: np.ndarray  # the RGB pixels it was found in (the frame, or a turned copy of it)
    source_box: tuple  # the box in ``source``
    score: float = 0.0


def detector() -> detection.Detector:
    """This process's face detector (dlib's, whole and split), loaded once."""
    global _detector
    if _detector is None:
        engine()
        _detector = detection.Detector()
    return _detector


def _scaled_grey(pixels: np.ndarray, factor: float) -> Image.Image:
    grey = Image.fromarray(pixels).convert("L")
    if abs(factor - 1.0) > 1e-3:
        grey = grey.resize((max(1, round(grey.width * factor)), max(1, round(grey.height * factor))),
                           Image.Resampling.BILINEAR)
    return grey


def _array(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image))


def detect(frame: decoding.Frame, settings: Settings, part: str = detection.ALL) -> list[_Found]:
    """Faces in one decoded frame (one part of the detector's pyramid); in thorough mode, tilted heads too.

    Detection runs on the grey picture scaled to the plan's top level: grey
    finds the same faces as colour, about a fifth faster (HOG on colour takes
    the strongest gradient of three channels). Templates are computed from
    the colour pixels of the frame.
    """
    found_by = detector()
    plan = detection.plan(frame.size, settings.detect_megapixels)
    factor = detection.level_scale(plan, part) * frame.scale  # detector pixels per frame pixel
    grey = _scaled_grey(frame.pixels, factor)
    found = []
    for d in found_by.scan(_array(grey), part, settings.threshold):
        box = tuple(v / factor for v in d.box)
        found.append(_Found(box, frame.pixels, box, d.score))
    if not settings.thorough:
        return found
    height, width = frame.pixels.shape[:2]
    for angle in THOROUGH_ANGLES:
        turned = grey.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        turned_rgb = None
        for d in found_by.scan(_array(turned), part, settings.threshold):
            box = tuple(v / factor for v in _unrotate_box(d.box, angle, turned.size, grey.size))
            if all(_overlap(box, f.box) < SAME_FACE_OVERLAP for f in found):
                if turned_rgb is None:
                    turned_rgb = _array(Image.fromarray(frame.pixels).rotate(
                        angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(0, 0, 0)))
                source_box = tuple(v / factor for v in d.box)
                found.append(_Found(box, turned_rgb, source_box, d.score))
    return found


def encode(found: list[_Found]) -> list[np.ndarray]:
    """One 128-number template per face, or ``EngineError`` (never fewer templates than faces)."""
    fr = engine()
    templates: list[np.ndarray] = []
    by_source: dict[int, list[_Found]] = {}
    for f in found:
        by_source.setdefault(id(f.source), []).append(f)
    order = []
    for group in by_source.values():
        source = np.ascontiguousarray(group[0].source)
        boxes = [tuple(int(round(v)) for v in g.source_box) for g in group]
        encodings = fr.face_encodings(source, known_face_locations=boxes, num_jitters=1, model=LANDMARK_MODEL)
        if len(encodings) != len(group):
            raise EngineError(f"{len(group)} faces found but {len(encodings)} templates computed")
        order.extend(group)
        templates.extend(encodings)
    # Back in the order of ``found``.
    index = {id(f): i for i, f in enumerate(order)}
    return [templates[index[id(f)]] for f in found]


def match(templates: list[np.ndarray], allowed: np.ndarray | None, tolerance: float) -> tuple[bool, ...]:
    """For each face, whether it is within ``tolerance`` of any allow-list template."""
    if allowed is None or len(allowed) == 0:
        return tuple(False for _ in templates)
    return tuple(bool(np.min(np.linalg.norm(allowed - t, axis=1)) <= tolerance) for t in templates)


def _to_original(box, scale: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    top, right, bottom, left = box
    width, height = size
    return (max(0, int(math.floor(top * scale))), min(width, int(math.ceil(right * scale))),
            min(height, int(math.ceil(bottom * scale))), max(0, int(math.floor(left * scale))))


# The most pixels a decoded frame keeps (a 12-megapixel photo's own): a larger
# picture's detector level is scaled up from this, as a 12 MP photo's is from
# its own pixels, and a JPEG can then be decoded at half or a quarter size.
FRAME_PIXELS = 4032 * 3024


def frame_side(settings: Settings):
    """The long side to decode a picture of a given size at: never above the original, the plan's scale or FRAME_PIXELS."""
    def side(size: tuple[int, int]) -> int:
        plan = detection.plan(size, settings.detect_megapixels)
        scale = min(1.0, plan.scale, math.sqrt(FRAME_PIXELS / max(1, size[0] * size[1])))
        return min(max(size), math.ceil(max(size) * scale))
    return side


def _check_frames(frames, settings: Settings, allowed, match_faces: bool, part: str, colour=None):
    """(boxes, scores, permitted, people unverified, people candidates) over ``frames``, in original pixels.

    When faces must be matched, people whose faces were not found are looked
    for too (people.py): by the part that scans the top levels (the lighter
    one: the other identifies the larger faces), or the whole pyramid; the
    candidates come back so that, in a split check, the faces both halves
    found account for them (``combine``).
    """
    boxes: list = []
    scores: list[float] = []
    permitted: list[bool] = []
    unverified = 0
    seen = None
    for frame in frames:
        found = detect(frame, settings, part)
        frame_boxes = [_to_original(f.box, frame.scale, frame.size) for f in found]
        boxes.extend(frame_boxes)
        scores.extend(f.score for f in found)
        # No allow-list (the registry is unavailable): no templates; the check fails closed.
        if match_faces and found and allowed is not None:
            if colour is not None:  # found in a grey frame: templates need the colour pixels
                rgb = colour()
                if rgb.shape[:2] != frame.pixels.shape[:2]:
                    raise EngineError("the colour picture does not match the grey one")
                found = [_Found(f.box, rgb, f.source_box, f.score) for f in found]
            permitted.extend(match(encode(found), allowed, settings.tolerance))
        if match_faces and part != detection.REST:
            candidates = people.candidates(frame.pixels).scaled(frame.scale)
            unverified += people.account(candidates, frame_boxes).count
            seen = candidates
    return tuple(boxes), tuple(scores), (tuple(permitted) if match_faces else None), unverified, seen


def _engine_failure(fmt, gps, exc: BaseException) -> Analysis:
    if isinstance(exc, EngineError):
        return Analysis(fmt, gps, error_code="engine", error=str(exc))
    if isinstance(exc, MemoryError):
        return Analysis(fmt, gps, error_code="engine", error="out of memory")
    return Analysis(fmt, gps, error_code="engine", error=f"face engine failed: {type(exc).__name__}: {exc}")


def analyse(data: bytes, settings: Settings, allowed: np.ndarray | None, match_faces: bool,
            part: str = detection.ALL) -> Analysis:
    """Decode, detect (one part of the pyramid, or all) and, when ``match_faces``, match. Errors come back as values."""
    # The top half mostly finds nothing (most faces are larger than its levels'): it
    # decodes grey, and decodes the colour again only for faces it must identify.
    grey = part == detection.TOP and not settings.thorough
    try:
        decoded = decoding.decode(data, max_pixels=settings.max_pixels, long_side=frame_side(settings),
                                  max_frames=settings.max_frames, grey=grey)
        if grey and len(decoded.frames) != 1:
            grey, decoded = False, decoding.decode(data, max_pixels=settings.max_pixels,
                                                   long_side=frame_side(settings), max_frames=settings.max_frames)
    except decoding.DecodeError as exc:
        return Analysis(None, False, error_code=exc.code, error=str(exc))
    colour = (lambda: decoding.decode(data, max_pixels=settings.max_pixels, long_side=frame_side(settings),
                                      max_frames=1).frames[0].pixels) if grey else None
    if len(decoded.frames) != 1 and part != detection.ALL:
        # An animation is never split (ImageChecker checks it whole); should a half be asked
        # for one, the top half checks it all and the other adds nothing.
        if part == detection.REST:
            return Analysis(decoded.format, decoded.gps_present, (), () if match_faces else None)
        part = detection.ALL
    try:
        boxes, scores, permitted, unverified, seen = _check_frames(decoded.frames, settings, allowed, match_faces,
                                                                   part, colour)
        return Analysis(decoded.format, decoded.gps_present, boxes, permitted, people_unverified=unverified,
                        people_seen=seen, scores=scores)
    except Exception as exc:  # noqa: BLE001 - dlib raises bare RuntimeErrors; any failure fails closed
        return _engine_failure(decoded.format, decoded.gps_present, exc)


def combine(parts: list[Analysis]) -> Analysis:
    """One analysis from the parts of a split check: any error wins, a face found twice counts once.

    A face found by both parts (at their boundary levels) is one face, and
    it is permitted only if every part that found it says so.
    """
    for analysis in parts:
        if analysis.error_code is not None:
            return analysis
    first = parts[0]
    matching = all(a.permitted is not None for a in parts)
    # ok: True / False when a part matched the face, None when it could not (no allow-list).
    kept: list[tuple[tuple, float, bool | None]] = []
    for analysis in parts:
        flags = list(analysis.permitted or ())
        flags += [None] * (len(analysis.boxes) - len(flags))
        scores = list(analysis.scores) + [0.0] * (len(analysis.boxes) - len(analysis.scores))
        for box, score, ok in zip(analysis.boxes, scores, flags, strict=False):
            for i, (other, other_score, other_ok) in enumerate(kept):
                if detection.same_face(box, other):
                    both = None if ok is None or other_ok is None else (ok and other_ok)
                    kept[i] = (other if other_score >= score else box, max(score, other_score), both)
                    break
            else:
                kept.append((box, score, ok))
    permitted = None
    if matching:
        # Fewer answers than faces: the check cannot be completed (see ImageChecker._findings).
        permitted = () if any(k[2] is None for k in kept) else tuple(k[2] for k in kept)
    return Analysis(first.format, any(a.gps_present for a in parts), tuple(k[0] for k in kept), permitted,
                    people_unverified=_unverified_in(parts, [k[0] for k in kept]),
                    scores=tuple(k[1] for k in kept))


def _unverified_in(parts: list[Analysis], boxes) -> int:
    # The people one part saw, accounted for by the faces either part found.
    seen = [a.people_seen for a in parts if a.people_seen is not None]
    if not seen:
        return max(a.people_unverified for a in parts)
    return sum(people.account(candidates, boxes).count for candidates in seen)


def analyse_pixels(rgb: np.ndarray, settings: Settings, allowed: np.ndarray | None,
                   match_faces: bool) -> Analysis:
    """Detect and (when ``match_faces``) match faces in one upright RGB frame (a video frame, say).

    ``rgb`` is uint8, height x width x 3, in original pixels; boxes come back in
    the same pixels. The same detection and identification as a photo's, in
    this one process. Errors come back as values (``error_code`` "engine").
    """
    try:
        image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        frame = decoding.prepare(image, long_side=frame_side(settings)(image.size), original_size=image.size)
        boxes, scores, permitted, unverified, _ = _check_frames([frame], settings, allowed, match_faces,
                                                                detection.ALL)
        return Analysis(None, False, boxes, permitted, people_unverified=unverified, scores=scores)
    except Exception as exc:  # noqa: BLE001 - any failure fails closed
        return _engine_failure(None, False, exc)


def templates_of(data: bytes, settings: Settings) -> tuple[list[np.ndarray], str | None]:
    """Templates of every face in an enrolment photo; (templates, problem code or None)."""
    try:
        decoded = decoding.decode(data, max_pixels=settings.max_pixels, long_side=frame_side(settings),
                                  max_frames=1)
    except decoding.DecodeError as exc:
        return [], exc.code
    found = detect(decoded.frames[0], settings)
    return (encode(found) if found else []), None
