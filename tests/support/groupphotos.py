"""12-megapixel "group photos" built from the labelled PASCAL photographs, with every face's box.

The shared photographs (``dlib-pascal/`` in the folder DOJOGUARD_FACES_DIR
points at) are about 500 pixels wide with faces of 37-110 pixels, and dlib's
XML files give every face's box. Scaling each photo so that its median face
has a chosen width and packing the results into 4032 x 3024 frames gives
class photos whose faces are as small as a back row's, with ground truth,
deterministically (same bytes every run). Mirrored copies double the faces.
Used by the face tests and by ``benchmarks/faces_bench.py``.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

FRAME = (4032, 3024)
IOU = 0.3
# Face widths (in the photo's pixels) recall is reported by.
BANDS = ((0, 40), (40, 56), (56, 80), (80, 120), (120, 200), (200, 10_000))

Box = tuple[int, int, int, int]  # top, right, bottom, left


@dataclass(frozen=True)
class GroupPhoto:
    jpeg: bytes
    boxes: tuple[Box, ...]


def ground_truth(root: Path) -> dict[str, list[Box]]:
    """Face boxes per PASCAL photo, from dlib's XML files (``root`` is the photographs folder)."""
    truth: dict[str, list[Box]] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(root / "dlib-pascal" / name).getroot().iter("image"):
            boxes = [(int(b.get("top")), int(b.get("left")) + int(b.get("width")),
                      int(b.get("top")) + int(b.get("height")), int(b.get("left")))
                     for b in image.iter("box") if b.get("ignore") != "1"]
            if boxes and (root / "dlib-pascal" / image.get("file")).exists():
                truth[image.get("file")] = boxes
    return truth


def labelled_photos(root: Path, mirrored: bool = True) -> list[tuple[Image.Image, list[Box]]]:
    photos = []
    for name, boxes in sorted(ground_truth(root).items()):
        image = Image.open(root / "dlib-pascal" / name).convert("RGB")
        photos.append((image, boxes))
        if mirrored:
            w = image.width
            photos.append((ImageOps.mirror(image), [(t, w - left, b, w - r) for t, r, b, left in boxes]))
    return photos


def width(box: Box) -> int:
    return box[1] - box[3]


def frames(root: Path, face_width: int, *, mirrored: bool = True, quality: int = 90) -> list[GroupPhoto]:
    """12 MP frames whose faces are about ``face_width`` pixels wide (each photo's median face exactly)."""
    out: list[GroupPhoto] = []
    canvas = None
    boxes: list[Box] = []
    x = y = row = 0

    def flush():
        if canvas is not None and boxes:
            data = io.BytesIO()
            canvas.save(data, "JPEG", quality=quality)
            out.append(GroupPhoto(data.getvalue(), tuple(boxes)))

    for image, faces in labelled_photos(root, mirrored):
        widths = sorted(width(b) for b in faces)
        factor = face_width / widths[len(widths) // 2]
        scaled = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)
        if scaled.width > FRAME[0] or scaled.height > FRAME[1]:
            continue
        if canvas is None:
            canvas, boxes, x, y, row = Image.new("RGB", FRAME, (128, 128, 128)), [], 0, 0, 0
        if x + scaled.width > FRAME[0]:
            x, y, row = 0, y + row, 0
        if y + scaled.height > FRAME[1]:
            flush()
            canvas, boxes, x, y, row = Image.new("RGB", FRAME, (128, 128, 128)), [], 0, 0, 0
        canvas.paste(scaled, (x, y))
        boxes += [(round(t * factor) + y, round(r * factor) + x, round(b * factor) + y, round(left * factor) + x)
                  for t, r, b, left in faces]
        x, row = x + scaled.width, max(row, scaled.height)
    flush()
    return out


def filling_frames(root: Path, quality: int = 90) -> list[GroupPhoto]:
    """Each labelled photo scaled to fill a 12 MP frame (a close group photo: faces of 250-700 pixels)."""
    out = []
    for image, faces in labelled_photos(root, mirrored=False):
        factor = min(FRAME[0] / image.width, FRAME[1] / image.height)
        scaled = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", FRAME, (128, 128, 128))
        ox, oy = (FRAME[0] - scaled.width) // 2, (FRAME[1] - scaled.height) // 2
        canvas.paste(scaled, (ox, oy))
        data = io.BytesIO()
        canvas.save(data, "JPEG", quality=quality)
        out.append(GroupPhoto(data.getvalue(), tuple(
            (round(t * factor) + oy, round(r * factor) + ox, round(b * factor) + oy, round(left * factor) + ox)
            for t, r, b, left in faces)))
    return out


def one_small_face(root: Path, face_width: int = 60, at: tuple[int, int] = (3700, 2700)) -> GroupPhoto:
    """A 12 MP face-free scene (the rocket) with one real face ``face_width`` pixels wide in a corner."""
    image, boxes = labelled_photos(root, mirrored=False)[0]
    top, right, bottom, left = boxes[0]
    margin = (right - left) // 2
    face = image.crop((left - margin, top - margin, right + margin, bottom + margin))
    factor = face_width / (right - left)
    scene = Image.open(root / "no-faces" / "rocket.jpg").convert("RGB").resize(FRAME, Image.Resampling.BICUBIC)
    scene.paste(face.resize((round(face.width * factor), round(face.height * factor)), Image.Resampling.BICUBIC), at)
    x, y = at[0] + round(margin * factor), at[1] + round(margin * factor)
    data = io.BytesIO()
    scene.save(data, "JPEG", quality=90)
    return GroupPhoto(data.getvalue(), ((y, x + face_width, y + round((bottom - top) * factor), x),))


def iou(a: Box, b: Box) -> float:
    top, right, bottom, left = max(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = (a[1] - a[3]) * (a[2] - a[0]) + (b[1] - b[3]) * (b[2] - b[0]) - inter
    return inter / union if inter else 0.0


def matched(found, truth) -> tuple[list[Box], int]:
    """The true faces found (greedily, IoU >= 0.3) and the number of detections."""
    unused = list(truth)
    hits = []
    for box in found:
        best = max(unused, key=lambda t: iou(box, t), default=None)
        if best is not None and iou(box, best) >= IOU:
            unused.remove(best)
            hits.append(best)
    return hits, len(found)


class Tally:
    """Recall by face width band, and precision, over many photos."""

    def __init__(self):
        self.found = {band: 0 for band in BANDS}
        self.total = {band: 0 for band in BANDS}
        self.hits = 0
        self.detections = 0

    def add(self, found, truth) -> None:
        hits, detections = matched(found, truth)
        self.hits += len(hits)
        self.detections += detections
        for box in truth:
            band = next(b for b in BANDS if b[0] <= width(box) < b[1])
            self.total[band] += 1
            self.found[band] += box in hits

    def recall(self, smallest: int = 0, largest: int = 10_000) -> float:
        bands = [b for b in BANDS if b[0] >= smallest and b[1] <= largest]
        total = sum(self.total[b] for b in bands)
        return sum(self.found[b] for b in bands) / total if total else 1.0

    @property
    def precision(self) -> float:
        return self.hits / self.detections if self.detections else 1.0

    def row(self) -> str:
        return "  ".join(f"{self.found[b]:>3}/{self.total[b]:<3}" for b in BANDS)
