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

from dojoguard.consent_registry import decoding, people

# Enrolment and checking must use the same landmark model.
LANDMARK_MODEL = "small"
# A box from a rotated copy lying this much inside an earlier find is the same face
# (a rotated face's box, mapped back upright, is larger than the upright one's).
SAME_FACE_OVERLAP = 0.3
THOROUGH_ANGLES = (-30.0, 30.0)

_engine = None


class EngineError(Exception):
    """The face engine could not run: the check fails closed."""


@dataclass(frozen=True)
class Settings:
    processing_size: int = 1600
    upsample: int = 1
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


def _overlap(a, b) -> float:
    """Intersection over the smaller box: a box mostly inside another is the same face found twice."""
    top, right = max(a[0], b[0]), min(a[1], b[1])
    bottom, left = min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    area = lambda r: max(0, r[1] - r[3]) * max(0, r[2] - r[0])  # noqa: E731
    smaller = min(area(a), area(b))
    return inter / smaller if smaller else 0.0


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
    box: tuple  # in the processing frame, upright
    source: np.ndarray  # the pixels it was found in (upright or rotated copy)
    source_box: tuple  # the box in ``source``


def _grey(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Image.fromarray(pixels).convert("L")))


def detect(pixels: np.ndarray, settings: Settings) -> list[_Found]:
    """Faces in one processing frame; in thorough mode, tilted heads too.

    Detection runs on the grey image: measured on the reference photos it
    finds the same faces as on colour, about a fifth faster (HOG on colour
    takes the strongest gradient of three channels). Templates are computed
    from the colour pixels.
    """
    fr = engine()
    grey = _grey(pixels)
    found = [_Found(tuple(b), pixels, tuple(b))
             for b in fr.face_locations(grey, number_of_times_to_upsample=settings.upsample, model="hog")]
    if not settings.thorough:
        return found
    height, width = pixels.shape[:2]
    upright = Image.fromarray(pixels)
    for angle in THOROUGH_ANGLES:
        rotated_grey = upright.convert("L").rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        rotated_rgb = None
        for b in fr.face_locations(np.ascontiguousarray(np.asarray(rotated_grey)),
                                   number_of_times_to_upsample=settings.upsample, model="hog"):
            box = _unrotate_box(b, angle, rotated_grey.size, (width, height))
            if all(_overlap(box, f.box) < SAME_FACE_OVERLAP for f in found):
                if rotated_rgb is None:
                    rotated_rgb = np.ascontiguousarray(np.asarray(upright.rotate(
                        angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(0, 0, 0))))
                found.append(_Found(box, rotated_rgb, tuple(b)))
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
        encodings = fr.face_encodings(source, known_face_locations=[tuple(map(int, g.source_box)) for g in group],
                                      num_jitters=1, model=LANDMARK_MODEL)
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


def analyse(data: bytes, settings: Settings, allowed: np.ndarray | None, match_faces: bool) -> Analysis:
    """Decode, detect and (when ``match_faces``) match one picture. Errors come back as values."""
    try:
        decoded = decoding.decode(data, max_pixels=settings.max_pixels, long_side=settings.processing_size,
                                  max_frames=settings.max_frames)
    except decoding.DecodeError as exc:
        return Analysis(None, False, error_code=exc.code, error=str(exc))
    try:
        boxes: list = []
        permitted: list[bool] = []
        unverified = 0
        for frame in decoded.frames:
            found = detect(frame.pixels, settings)
            boxes.extend(_to_original(f.box, frame.scale, frame.size) for f in found)
            # No allow-list (the registry is unavailable): no templates, the check fails closed.
            if match_faces and found and allowed is not None:
                permitted.extend(match(encode(found), allowed, settings.tolerance))
            if match_faces:  # people whose faces were not found (see people.py)
                unverified += people.find_unverified(frame.pixels, [f.box for f in found]).count
        return Analysis(decoded.format, decoded.gps_present, tuple(boxes),
                        tuple(permitted) if match_faces else None, people_unverified=unverified)
    except EngineError as exc:
        return Analysis(decoded.format, decoded.gps_present, error_code="engine", error=str(exc))
    except MemoryError:
        return Analysis(decoded.format, decoded.gps_present, error_code="engine", error="out of memory")
    except Exception as exc:  # noqa: BLE001 - dlib raises bare RuntimeErrors; any failure fails closed
        return Analysis(decoded.format, decoded.gps_present, error_code="engine",
                        error=f"face engine failed: {type(exc).__name__}: {exc}")


def analyse_pixels(rgb: np.ndarray, settings: Settings, allowed: np.ndarray | None,
                   match_faces: bool) -> Analysis:
    """Detect and (when ``match_faces``) match faces in one upright RGB frame (a video frame, say).

    ``rgb`` is uint8, height x width x 3, in original pixels; boxes come back in
    the same pixels. The same detection and identification as a photo's.
    Errors come back as values (``error_code`` "engine").
    """
    try:
        image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        frame = decoding.prepare(image, long_side=settings.processing_size, original_size=image.size)
        found = detect(frame.pixels, settings)
        boxes = tuple(_to_original(f.box, frame.scale, frame.size) for f in found)
        permitted = match(encode(found), allowed, settings.tolerance) if (match_faces and found) else ()
        # People whose faces were not found (see people.py), only when faces must be matched.
        unverified = people.find_unverified(frame.pixels, [f.box for f in found]).count if match_faces else 0
        return Analysis(None, False, boxes, tuple(permitted) if match_faces else None,
                        people_unverified=unverified)
    except EngineError as exc:
        return Analysis(None, False, error_code="engine", error=str(exc))
    except MemoryError:
        return Analysis(None, False, error_code="engine", error="out of memory")
    except Exception as exc:  # noqa: BLE001 - any failure fails closed
        return Analysis(None, False, error_code="engine", error=f"face engine failed: {type(exc).__name__}: {exc}")


def templates_of(data: bytes, settings: Settings) -> tuple[list[np.ndarray], str | None]:
    """Templates of every face in an enrolment photo; (templates, problem code or None)."""
    try:
        decoded = decoding.decode(data, max_pixels=settings.max_pixels, long_side=settings.processing_size,
                                  max_frames=1)
    except decoding.DecodeError as exc:
        return [], exc.code
    found = detect(decoded.frames[0].pixels, settings)
    return (encode(found) if found else []), None
