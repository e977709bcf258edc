"""The demo's photographs, built in code from the sample portraits that ship with dojoguard.

The samples are public-domain or CC0 pictures (see ``dojoguard/samples/photos/LICENSE.md``);
none shows a child. The astronaut's portrait plays the pupil whose face is
enrolled; the others are scenery that carries no face.
"""

from __future__ import annotations

import io
from importlib import resources

from PIL import Image

GPS_IFD = 0x8825
# A point in the middle of a made-up school field (latitude and longitude as degrees, minutes, seconds).
SCHOOL_FIELD = {1: "N", 2: (53.0, 48.0, 30.0), 3: "W", 4: (1.0, 33.0, 10.0)}


def sample(name: str) -> Image.Image:
    """One of the shipped sample photos, decoded as RGB."""
    data = resources.files("dojoguard.samples").joinpath("photos", name).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def sample_bytes(name: str) -> bytes:
    return resources.files("dojoguard.samples").joinpath("photos", name).read_bytes()


def collage(names: list[str], *, tile: int = 320, columns: int = 2) -> Image.Image:
    """The named samples side by side on a white board, each scaled to fit a ``tile`` square."""
    rows = -(-len(names) // columns)
    board = Image.new("RGB", (columns * tile, rows * tile), "white")
    for i, name in enumerate(names):
        picture = sample(name)
        picture.thumbnail((tile, tile))
        x = (i % columns) * tile + (tile - picture.width) // 2
        y = (i // columns) * tile + (tile - picture.height) // 2
        board.paste(picture, (x, y))
    return board


def jpeg(image: Image.Image, *, gps: dict | None = None) -> bytes:
    """JPEG bytes of ``image``, with a GPS location tag when ``gps`` is given."""
    out = io.BytesIO()
    exif = Image.Exif()
    if gps:
        exif[GPS_IFD] = gps
    image.save(out, "JPEG", quality=85, exif=exif.tobytes())
    return out.getvalue()


def has_gps(data: bytes) -> bool:
    """Whether a picture carries a GPS location tag."""
    with Image.open(io.BytesIO(data)) as image:
        return bool(image.getexif().get_ifd(GPS_IFD))


def class_photo() -> bytes:
    """The class at work: the enrolled pupil's portrait among the class's things (one face)."""
    return jpeg(collage(["astronaut.jpg", "rocket.jpg", "coffee.jpg", "chelsea.jpg"]))


def pupil_photo() -> bytes:
    """A close-up of one pupil beside the class rocket (one face)."""
    return jpeg(collage(["rocket.jpg", "astronaut.jpg"], tile=400))


def field_trip_photo() -> bytes:
    """The rocket launch watched on the school field, tagged with where it was taken (no face)."""
    return jpeg(collage(["rocket.jpg", "chelsea.jpg"], tile=360), gps=SCHOOL_FIELD)
