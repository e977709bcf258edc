"""The demo's photos: built from the shipped samples, with and without a location tag."""

from __future__ import annotations

import io

from PIL import Image

from dojoguard.consent_registry import metadata
from dojoguard.demo import photos


def test_field_trip_photo_carries_gps_and_others_do_not():
    """Only the field-trip photo has a GPS tag; stripping it with the proxy's own function removes it."""
    tagged = photos.field_trip_photo()
    assert photos.has_gps(tagged)
    assert not photos.has_gps(photos.class_photo()) and not photos.has_gps(photos.pupil_photo())
    assert not photos.has_gps(metadata.strip_gps(tagged))


def test_photos_are_jpegs_built_from_the_samples():
    """Each demo photo is a JPEG laid out from the sample tiles (the same bytes every time)."""
    for build, size in ((photos.class_photo, (640, 640)), (photos.pupil_photo, (800, 400)),
                        (photos.field_trip_photo, (720, 360))):
        data = build()
        assert data == build()
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size) == ("JPEG", size)


def test_collage_places_the_samples_on_a_white_board():
    """A collage has one tile per sample and white where no picture reaches."""
    board = photos.collage(["coffee.jpg", "rocket.jpg", "chelsea.jpg"], tile=100, columns=2)
    assert board.size == (200, 200)
    assert board.getpixel((199, 199)) == (255, 255, 255)  # the empty fourth tile
