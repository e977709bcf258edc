"""The public-domain sample photos that ship with dojoguard, and pictures built from them.

For the demo and for checks that must run anywhere: a portrait, pictures with
no human face, a tiled "class photo", a phone-sized frame and a photo
carrying GPS tags, built in code so that only the small originals are stored
(sources and licences: ``dojoguard/samples/photos/LICENSE.md``).
"""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

from PIL import ExifTags, Image

PORTRAIT = "astronaut.jpg"  # one face, upright
NO_FACE = ("coffee.jpg", "chelsea.jpg", "rocket.jpg")  # chelsea is a cat: an animal face only
PHONE_FRAME = (4032, 3024)  # a 12-megapixel phone photo


def folder() -> Path:
    return Path(str(resources.files("dojoguard").joinpath("samples", "photos")))


def open_sample(name: str) -> Image.Image:
    image = Image.open(folder() / name)
    image.load()
    return image


def encode_jpeg(image: Image.Image, *, exif: Image.Exif | None = None, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality, exif=exif if exif is not None else b"")
    return out.getvalue()


def location_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone writes it, placing the photo in central London."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "ExamplePhone"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)}
    return exif


def class_photo(portrait: Image.Image | None = None, *, columns: int = 3, rows: int = 2, tile: int = 320,
                size: tuple[int, int] | None = None) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Portraits tiled into one "class photo" (mirrored on alternate tiles), optionally placed in a larger frame.

    Returns the picture and each tile's box [top, right, bottom, left]; each tile holds one face.
    """
    portrait = portrait if portrait is not None else open_sample(PORTRAIT)
    sheet = Image.new("RGB", (columns * tile, rows * tile), (200, 200, 190))
    scaled = portrait.convert("RGB")
    scaled.thumbnail((tile, tile))
    boxes = []
    for r in range(rows):
        for c in range(columns):
            face = scaled.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if (r + c) % 2 else scaled
            left, top = c * tile + (tile - face.width) // 2, r * tile + (tile - face.height) // 2
            sheet.paste(face, (left, top))
            boxes.append((top, left + face.width, top + face.height, left))
    if size is None:
        return sheet, boxes
    frame = Image.new("RGB", size, (120, 130, 140))
    factor = min(size[0] / sheet.width, size[1] / sheet.height)
    big = sheet.resize((round(sheet.width * factor), round(sheet.height * factor)), Image.Resampling.LANCZOS)
    ox, oy = (size[0] - big.width) // 2, (size[1] - big.height) // 2
    frame.paste(big, (ox, oy))
    return frame, [(round(t * factor) + oy, round(r * factor) + ox, round(b * factor) + oy, round(left * factor) + ox)
                   for t, r, b, left in boxes]
