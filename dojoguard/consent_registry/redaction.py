"""Redaction: hide the faces that are not permitted, drop the location, keep the format.

Face boxes from the detector are tight around eyes, nose and mouth; hair,
ears and the outline of a head still identify a child, so each box is grown
before it is pixelated and blurred. The pixels are replaced, not overlaid, and
EXIF orientation is applied first (the boxes are in oriented pixels), so the
result is saved upright with orientation 1.
"""

from __future__ import annotations

import io

from PIL import ExifTags, Image, ImageFilter, ImageOps

from dojoguard.consent_registry import decoding, metadata
from dojoguard.rules.action import ImageFindings

# How much each face box grows on every side, as a share of its size.
MARGIN = 0.35
# Cells across a face after pixelation: too few to recognise anyone.
CELLS = 6


class RedactionError(Exception):
    """The picture could not be redacted: it must not be forwarded."""


def _grow(box, size):
    top, right, bottom, left = box
    width, height = size
    dx, dy = (right - left) * MARGIN, (bottom - top) * MARGIN
    return (max(0, int(left - dx)), max(0, int(top - dy * 1.3)),  # more above: hair and forehead
            min(width, int(right + dx + 1)), min(height, int(bottom + dy + 1)))


def hide(image: Image.Image, boxes) -> Image.Image:
    """Pixelate then blur each grown box in place; returns the image."""
    for box in boxes:
        left, top, right, bottom = _grow(box, image.size)
        if right - left < 2 or bottom - top < 2:
            continue
        region = image.crop((left, top, right, bottom))
        cells = (max(1, min(CELLS, region.width)), max(1, min(CELLS, region.height)))
        region = region.resize(cells, Image.Resampling.BOX).resize(region.size, Image.Resampling.NEAREST)
        region = region.filter(ImageFilter.GaussianBlur(radius=max(2, region.width // (CELLS * 2))))
        image.paste(region, (left, top))
    return image


def redact(data: bytes, findings: ImageFindings, *, max_pixels: int) -> bytes:
    """The picture with ``findings.boxes_not_permitted`` hidden and no location; raises ``RedactionError``."""
    if not findings.is_complete:
        raise RedactionError("the image check did not complete, so there is nothing safe to redact")
    if not findings.boxes_not_permitted:
        try:
            return metadata.strip_gps(data)
        except metadata.MetadataError as exc:
            raise RedactionError(str(exc)) from exc
    try:
        image = decoding.open_image(data, max_pixels=max_pixels)
        fmt = image.format
        if getattr(image, "n_frames", 1) > 1 and fmt not in decoding.SINGLE_PICTURE_FORMATS:
            raise RedactionError("animated pictures cannot be redacted")
        image.load()
        args = metadata.encode_args(fmt, image)
        oriented = ImageOps.exif_transpose(image) or image
        has_alpha = oriented.mode in ("RGBA", "LA", "PA") or "transparency" in oriented.info
        working = oriented.convert("RGBA" if has_alpha and fmt not in ("JPEG", "MPO") else "RGB")
        hide(working, findings.boxes_not_permitted)
        exif = metadata.clean_exif(oriented.getexif())
        exif[ExifTags.Base.Orientation] = 1
        out = io.BytesIO()
        working.save(out, format=metadata.save_format(fmt), exif=exif, **args)
        return out.getvalue()
    except RedactionError:
        raise
    except decoding.DecodeError as exc:
        raise RedactionError(f"cannot read the picture to redact it: {exc}") from exc
    except Exception as exc:  # a picture that cannot be redacted must not go out
        raise RedactionError(f"cannot redact the picture: {type(exc).__name__}: {exc}") from exc
