"""The shipped sample photos and the pictures built from them."""

from __future__ import annotations

import io

from PIL import Image

from dojoguard.consent_registry import decoding, sample_photos


def test_samples_ship_small_with_their_licence():
    """Every sample is a small JPEG of at most 512 px, and the licence file names each one."""
    licence = (sample_photos.folder() / "LICENSE.md").read_text(encoding="utf-8")
    names = [sample_photos.PORTRAIT, *sample_photos.NO_FACE, "camera.jpg"]
    for name in names:
        image = sample_photos.open_sample(name)
        assert image.format == "JPEG" and max(image.size) <= 512 and f"`{name}`" in licence
        assert (sample_photos.folder() / name).stat().st_size < 100_000


def test_class_photo_in_a_phone_frame_with_location():
    """A tiled class photo fills a 12-megapixel frame, its tile boxes inside it, and carries GPS when asked."""
    image, tiles = sample_photos.class_photo(columns=3, rows=2, size=sample_photos.PHONE_FRAME)
    assert image.size == (4032, 3024) and len(tiles) == 6
    assert all(0 <= t < b <= 3024 and 0 <= left < r <= 4032 for t, r, b, left in tiles)
    data = sample_photos.encode_jpeg(image, exif=sample_photos.location_exif())
    assert decoding.has_gps(Image.open(io.BytesIO(data)))
