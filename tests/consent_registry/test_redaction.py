"""Redaction: faces not permitted are hidden (no face re-detected there), others kept, GPS gone, format kept."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import ExifTags, Image

from dojoguard.consent_registry import decoding, faces, redaction
from dojoguard.rules.action import ImageFindings
from tests.consent_registry.conftest import class_photo, gps_exif, inside, jpeg

SETTINGS = faces.Settings()
CAP = 64_000_000


def detect(data: bytes) -> list:
    analysis = faces.analyse(data, SETTINGS, None, False)
    assert analysis.error is None
    return list(analysis.boxes)


@pytest.fixture(scope="module")
def sheet(samples):
    image, tiles = class_photo(Image.open(samples / "astronaut.jpg"), columns=2, rows=2, tile=320)
    return image, tiles


@pytest.mark.slow
def test_hidden_faces_are_not_found_again_and_others_are(sheet):
    """After redacting two of four faces, detection finds exactly the two left, none in the hidden regions."""
    image, tiles = sheet
    data = jpeg(image, exif=gps_exif())
    boxes = detect(data)
    assert len(boxes) == 4
    hidden = tuple(b for b in boxes if inside(b, tiles[0]) or inside(b, tiles[3]))
    out = redaction.redact(data, ImageFindings(faces_found=4, faces_permitted=2, faces_not_permitted=2,
                                               faces_unidentified=2, gps_present=True, boxes_not_permitted=hidden),
                           max_pixels=CAP)
    again = detect(out)
    assert len(again) == 2
    assert not any(inside(b, tiles[0]) or inside(b, tiles[3]) for b in again)
    result = Image.open(io.BytesIO(out))
    assert result.format == "JPEG" and result.size == image.size and not decoding.has_gps(result)


@pytest.mark.slow
def test_sideways_photo_redacted_in_oriented_pixels(sheet):
    """Boxes are in upright pixels: a photo stored sideways is redacted in the right place and saved upright."""
    image, tiles = sheet
    stored = image.transpose(Image.Transpose.ROTATE_90)
    data = jpeg(stored, exif=gps_exif(orientation=6))
    boxes = detect(data)
    assert len(boxes) == 4 and all(any(inside(b, t) for t in tiles) for b in boxes)
    out = redaction.redact(data, ImageFindings(faces_found=4, faces_not_permitted=4, faces_unidentified=4,
                                               boxes_not_permitted=tuple(boxes)), max_pixels=CAP)
    result = Image.open(io.BytesIO(out))
    assert result.size == image.size and result.getexif().get(ExifTags.Base.Orientation, 1) == 1
    assert detect(out) == []


def test_png_stays_png_and_pixels_outside_boxes_untouched(sheet):
    """A PNG comes back as PNG, changed only around the redacted box."""
    image, tiles = sheet
    out = io.BytesIO()
    image.save(out, "PNG")
    box = (100, 220, 200, 120)
    redacted = Image.open(io.BytesIO(redaction.redact(out.getvalue(), ImageFindings(
        faces_found=1, faces_not_permitted=1, boxes_not_permitted=(box,)), max_pixels=CAP)))
    assert redacted.format == "PNG"
    before, after = np.asarray(image, dtype=int), np.asarray(redacted.convert("RGB"), dtype=int)
    assert np.abs(before[100:200, 120:220] - after[100:200, 120:220]).mean() > 5
    assert np.array_equal(before[400:, :], after[400:, :])


def test_incomplete_check_cannot_be_redacted(samples):
    """A check that did not complete gives nothing to redact: RedactionError, never the original."""
    with pytest.raises(redaction.RedactionError):
        redaction.redact((samples / "astronaut.jpg").read_bytes(), ImageFindings(unreadable=True, error="x"),
                         max_pixels=CAP)


def test_animation_cannot_be_redacted():
    """An animated picture with faces to hide is refused rather than half-redacted."""
    frames = [Image.new("RGB", (64, 64), (i * 60, 0, 0)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(redaction.RedactionError, match="animated"):
        redaction.redact(out.getvalue(), ImageFindings(faces_found=1, faces_not_permitted=1,
                                                        boxes_not_permitted=((1, 30, 30, 1),)), max_pixels=CAP)


def test_no_faces_to_hide_only_strips_location(samples):
    """With nothing to hide, redaction strips the location and leaves the pixels alone."""
    data = jpeg(Image.open(samples / "coffee.jpg"), exif=gps_exif())
    out = redaction.redact(data, ImageFindings(gps_present=True), max_pixels=CAP)
    assert not decoding.has_gps(Image.open(io.BytesIO(out)))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out))), np.asarray(Image.open(io.BytesIO(data))))


def test_heic_stays_heic(sheet):
    """An iPhone HEIC photo is redacted and saved back as HEIC without its location."""
    import pillow_heif

    image, _ = sheet
    heif = pillow_heif.from_pillow(image)
    heif.info["exif"] = gps_exif().tobytes()
    out = io.BytesIO()
    heif.save(out, quality=85)
    redacted = redaction.redact(out.getvalue(), ImageFindings(faces_found=1, faces_not_permitted=1,
                                                               boxes_not_permitted=((100, 220, 200, 120),)),
                                max_pixels=CAP)
    decoding.register_formats()
    result = Image.open(io.BytesIO(redacted))
    assert result.format == "HEIF" and result.size == image.size and not decoding.has_gps(result)
