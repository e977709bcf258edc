"""Safe decoding: hostile files give a clear code quickly; odd but valid pictures decode to upright RGB."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from dojoguard.consent_registry import decoding
from tests.consent_registry.conftest import gps_exif, jpeg

CAP = 64_000_000


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims an enormous size."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(jpeg(Image.new("RGB", (8, 8))))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bomb_png() -> bytes:
    """A real decompression bomb: 100 megapixels of black that compress to a few hundred kilobytes."""
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, "PNG", optimize=True)
    assert len(out.getvalue()) < 1_000_000
    return out.getvalue()


HOSTILE = {
    "claims 100000x100000 (png)": (png_claiming(100_000, 100_000), "too-large"),
    "claims 60000x60000 (jpeg)": (jpeg_claiming(60_000, 60_000), "too-large"),
    "decompression bomb": (bomb_png(), "too-large"),
    "text file": (b"Dear parents, the trip is on Friday.\n" * 50, "not-an-image"),
    "pdf": (b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF", "not-an-image"),
    "empty": (b"", "not-an-image"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_fail_with_a_code_quickly(name):
    """Every hostile input raises DecodeError with its stable code within a second."""
    data, code = HOSTILE[name]
    started = time.monotonic()
    with pytest.raises(decoding.DecodeError) as caught:
        decoding.decode(data, max_pixels=CAP, long_side=1600)
    assert caught.value.code == code
    assert time.monotonic() - started < 1.0


def test_truncated_jpeg_is_corrupt(samples):
    """A JPEG cut off half way is reported as corrupt, never decoded with grey filler."""
    data = (samples / "astronaut.jpg").read_bytes()
    with pytest.raises(decoding.DecodeError) as caught:
        decoding.decode(data[: len(data) // 2], max_pixels=CAP, long_side=1600)
    assert caught.value.code == "corrupt"


def test_exif_orientation_applied(samples):
    """A photo stored sideways (orientation 6) is decoded upright, with its oriented size."""
    upright = Image.open(samples / "astronaut.jpg")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote
    decoded = decoding.decode(jpeg(stored, exif=gps_exif(orientation=6)), max_pixels=CAP, long_side=1600)
    frame = decoded.frames[0]
    assert frame.size == upright.size and frame.pixels.shape[:2] == (upright.height, upright.width)
    assert decoded.gps_present
    difference = np.abs(frame.pixels.astype(int) - np.asarray(upright.convert("RGB"), dtype=int)).mean()
    assert difference < 6


def test_large_jpeg_decoded_small_with_draft():
    """A 12-megapixel JPEG is reduced to the processing size, and the scale maps back to the original."""
    big = Image.effect_noise((4032, 3024), 40).convert("RGB")
    decoded = decoding.decode(jpeg(big, quality=70), max_pixels=CAP, long_side=1600)
    frame = decoded.frames[0]
    assert max(frame.pixels.shape[:2]) == 1600 and frame.size == (4032, 3024)
    assert frame.scale == pytest.approx(4032 / 1600)
    assert frame.pixels.flags["C_CONTIGUOUS"] and frame.pixels.dtype == np.uint8


def test_cmyk_sixteen_bit_palette_and_alpha_become_rgb():
    """CMYK, 16-bit grey, palette with transparency and RGBA all decode to 8-bit RGB."""
    cmyk = io.BytesIO()
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(cmyk, "JPEG")
    sixteen = io.BytesIO()
    Image.fromarray(np.full((30, 40), 65535, dtype=np.uint16)).save(sixteen, "PNG")
    palette = io.BytesIO()
    p = Image.new("P", (40, 30), 0)
    p.putpalette([0, 0, 0] * 256)
    p.info["transparency"] = 0
    p.save(palette, "PNG", transparency=0)
    rgba = io.BytesIO()
    Image.new("RGBA", (40, 30), (255, 0, 0, 0)).save(rgba, "PNG")
    for data, expected in ((cmyk, (255, 0, 0)), (sixteen, (255, 255, 255)), (palette, (255, 255, 255)),
                           (rgba, (255, 255, 255))):
        frame = decoding.decode(data.getvalue(), max_pixels=CAP, long_side=1600).frames[0]
        assert frame.pixels.shape == (30, 40, 3) and frame.pixels.dtype == np.uint8
        assert np.abs(frame.pixels[15, 20].astype(int) - expected).max() < 20


def test_animated_images_every_frame_or_refused():
    """Each frame of a short animation is decoded; a long one is refused with its own code."""
    frames = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    short = io.BytesIO()
    frames[0].save(short, "GIF", save_all=True, append_images=frames[1:])
    assert len(decoding.decode(short.getvalue(), max_pixels=CAP, long_side=1600).frames) == 3
    long = io.BytesIO()
    many = [Image.new("RGB", (32, 32), (i * 8 % 256, 0, 0)) for i in range(30)]
    many[0].save(long, "GIF", save_all=True, append_images=many[1:])
    with pytest.raises(decoding.DecodeError) as caught:
        decoding.decode(long.getvalue(), max_pixels=CAP, long_side=1600)
    assert caught.value.code == "too-many-frames"


def test_heic_from_an_iphone_decodes(samples):
    """HEIC pictures (iPhone and iPad) decode like any other photo."""
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.open(samples / "astronaut.jpg")).save(out, quality=80)
    decoded = decoding.decode(out.getvalue(), max_pixels=CAP, long_side=1600)
    assert decoded.format == "HEIF" and decoded.frames[0].size == (512, 300)


def test_unlisted_format_refused():
    """A format no teacher's device uploads (here ICO) is refused rather than decoded."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, "ICO")
    with pytest.raises(decoding.DecodeError) as caught:
        decoding.decode(out.getvalue(), max_pixels=CAP, long_side=1600)
    assert caught.value.code == "unsupported-format"
