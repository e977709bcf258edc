"""GPS stripping: the location goes, everything else stays, and a JPEG is not re-compressed."""

from __future__ import annotations

import io

import numpy as np
import pillow_heif
import pytest
from PIL import ExifTags, Image

from dojoguard.consent_registry import decoding, metadata
from tests.consent_registry.conftest import gps_exif, jpeg


def reopen(data: bytes) -> Image.Image:
    decoding.register_formats()
    return Image.open(io.BytesIO(data))


def test_jpeg_location_removed_without_recompression(samples):
    """The GPS directory is removed from a JPEG while its pixels and other tags stay identical."""
    original = jpeg(Image.open(samples / "astronaut.jpg"), exif=gps_exif(orientation=1))
    stripped = metadata.strip_gps(original)
    assert decoding.has_gps(reopen(original)) and not decoding.has_gps(reopen(stripped))
    assert reopen(stripped).getexif()[ExifTags.Base.Make] == "ExamplePhone"
    assert np.array_equal(np.asarray(reopen(stripped)), np.asarray(reopen(original)))


def test_photo_without_location_unchanged(samples):
    """A photo with no location is returned byte for byte."""
    data = (samples / "coffee.jpg").read_bytes()
    assert metadata.strip_gps(data) is data


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_other_formats_reencoded_without_location(samples, fmt):
    """PNG, WebP and HEIC lose their location and keep their format."""
    image = Image.open(samples / "astronaut.jpg")
    out = io.BytesIO()
    if fmt == "HEIF":
        heif = pillow_heif.from_pillow(image)
        heif.info["exif"] = gps_exif().tobytes()
        heif.save(out, quality=80)
    else:
        image.save(out, fmt, exif=gps_exif())
    assert decoding.has_gps(reopen(out.getvalue()))
    stripped = metadata.strip_gps(out.getvalue())
    assert reopen(stripped).format == fmt and not decoding.has_gps(reopen(stripped))


def test_xmp_location_dropped(samples):
    """A location written in XMP (as some editors do) is removed too."""
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description exif:GPSLatitude="51,30.4N" '
           b'exif:GPSLongitude="0,7.6W"/></rdf:RDF></x:xmpmeta>')
    out = io.BytesIO()
    Image.open(samples / "astronaut.jpg").save(out, "JPEG", xmp=xmp)
    assert decoding.has_gps(reopen(out.getvalue()))
    assert not decoding.has_gps(reopen(metadata.strip_gps(out.getvalue())))


def test_unreadable_photo_cannot_be_stripped():
    """Data that cannot be read raises MetadataError rather than being forwarded as it is."""
    with pytest.raises(metadata.MetadataError):
        metadata.strip_gps(b"\xff\xd8\xff\xe1 not really a jpeg")
