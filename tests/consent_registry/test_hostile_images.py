"""Hostile pictures in every accepted format: each a clear finding, quickly, in a worker of bounded memory.

tests/consent_registry/test_decoding.py already covers PNG and JPEG headers
claiming 100,000x100,000 and 60,000x60,000, a PNG decompression bomb, text,
PDF and empty files and a truncated JPEG; test_imagecheck.py covers garbage
and truncated JPEGs and a bomb through the worker. This module adds the other
formats (GIF, WebP, HEIC), 1x100,000 and 30,000x30,000 headers, corrupt
(rather than cut) data, wrong content types and polyglot files, all through
both the decoder and the real worker pool.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zipfile
import zlib

import pillow_heif
import pytest
from PIL import Image

from dojoguard.consent_registry import decoding, worker
from dojoguard.consent_registry.imagecheck import ImageChecker
from dojoguard.rules.action import AttachmentKind
from tests.consent_registry.test_imagecheck import PURPOSES, SETTINGS

CAP = 64_000_000
DECODE_WITHIN_S = 1.0
CHECK_WITHIN_S = 5.0
WORKER_PEAK_MB = 600


def _picture() -> Image.Image:
    """A small picture with detail, so every encoder produces real compressed data to damage."""
    image = Image.new("RGB", (96, 64))
    image.putdata([((x * 7) % 256, (y * 11) % 256, ((x + y) * 5) % 256) for y in range(64) for x in range(96)])
    return image


def encode(fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "HEIC":
        pillow_heif.from_pillow(_picture()).save(out, quality=80)
    else:
        _picture().save(out, fmt)
    return out.getvalue()


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def corrupt(data: bytes) -> bytes:
    """The file with a run of its compressed middle overwritten (the header left intact)."""
    out = bytearray(data)
    start = len(out) // 3
    out[start:start + max(16, len(out) // 4)] = b"\xa5" * max(16, len(out) // 4)
    return bytes(out)


def png_claiming(width: int, height: int) -> bytes:
    out = bytearray(encode("PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(out[24:29])
    out[16:29] = ihdr
    out[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(out)


def jpeg_claiming(width: int, height: int) -> bytes:
    out = bytearray(encode("JPEG"))
    sof = out.index(b"\xff\xc0")
    out[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def gif_claiming(width: int, height: int) -> bytes:
    """A GIF whose screen and image descriptor both claim ``width`` x ``height``."""
    out = bytearray(encode("GIF"))
    out[6:10] = struct.pack("<HH", width, height)
    at = 13 + (3 * 2 ** ((out[10] & 7) + 1) if out[10] & 0x80 else 0)
    while out[at] == 0x21:  # extension blocks: label, then sub-blocks until a zero length
        at += 2
        while out[at]:
            at += out[at] + 1
        at += 1
    descriptor = at
    assert out[descriptor] == 0x2C
    out[descriptor + 5:descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(out)


def webp_claiming(width: int, height: int) -> bytes:
    """A lossless WebP whose header claims ``width`` x ``height`` (14 bits each: at most 16,384)."""
    lossless = io.BytesIO()
    _picture().save(lossless, "WEBP", lossless=True)
    out = bytearray(lossless.getvalue())
    vp8l = out.index(b"VP8L")
    bits = (width - 1) | ((height - 1) << 14) | (int.from_bytes(out[vp8l + 9:vp8l + 13], "little") & ~((1 << 28) - 1))
    out[vp8l + 9:vp8l + 13] = bits.to_bytes(4, "little")
    return bytes(out)


def jpeg_with_zip() -> bytes:
    """A JPEG with a ZIP archive appended (a classic polyglot: both programs open it)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("payload.html", "<script>alert(1)</script>")
    return encode("JPEG") + archive.getvalue()


def gif_with_script() -> bytes:
    """A GIF header that is also a JavaScript expression (GIFAR-style), then garbage."""
    return b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;alert(document.cookie);//" + b"\x00" * 64


def png_with_html() -> bytes:
    """A valid PNG carrying an HTML page in a text chunk."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<html><script>alert(1)</script></html>")
    out = io.BytesIO()
    _picture().save(out, "PNG", pnginfo=info)
    return out.getvalue()


# JPEG, WebP (lossy) and HEIC carry no checksum over their compressed pixels: damage inside them
# decodes to damaged pixels, as it does in a browser, and those pixels are what gets checked.
NO_CHECKSUM = "decodes as damaged pixels"
# name -> (data, the decoder's code, None when the visible picture is a valid image to check,
# or NO_CHECKSUM)
HOSTILE = {
    "gif truncated": (truncated(encode("GIF")), "corrupt"),
    "gif corrupt": (corrupt(encode("GIF")), "corrupt"),
    "gif claims 30000x30000": (gif_claiming(30_000, 30_000), "too-large"),
    "webp truncated": (truncated(encode("WEBP")), "corrupt"),
    "webp corrupt": (corrupt(encode("WEBP")), NO_CHECKSUM),
    "webp claims 16384x16384": (webp_claiming(16_384, 16_384), "too-large"),
    "heic truncated": (truncated(encode("HEIC")), "corrupt"),
    "heic corrupt": (corrupt(encode("HEIC")), NO_CHECKSUM),
    "png truncated": (truncated(encode("PNG")), "corrupt"),
    "png corrupt": (corrupt(encode("PNG")), "corrupt"),
    "png claims 1x100000": (png_claiming(1, 100_000), "corrupt"),
    "png claims 30000x30000": (png_claiming(30_000, 30_000), "too-large"),
    "jpeg corrupt": (corrupt(encode("JPEG")), NO_CHECKSUM),
    "jpeg claims 30000x30000": (jpeg_claiming(30_000, 30_000), "too-large"),
    "jpeg claims 1x65000": (jpeg_claiming(1, 65_000), NO_CHECKSUM),
    "gif with script": (gif_with_script(), "corrupt"),
    "html labelled a photo": (b"<html><body><img src=x onerror=alert(1)></body></html>", "not-an-image"),
    "jpeg with a zip appended": (jpeg_with_zip(), None),
    "png with html inside": (png_with_html(), None),
}
# Codes a damaged file may honestly be reported with (a truncated header reads as "not a picture").
DAMAGED = {"corrupt", "not-an-image", "too-large"}


def _declared_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_a_png_damaged_after_its_header_is_corrupt_not_filled_in():
    """A PNG whose pixel data is damaged raises "corrupt"; reading its metadata must not half-decode it with filler."""
    for data in (corrupt(encode("PNG")), png_claiming(1, 100_000), truncated(encode("PNG"))):
        with pytest.raises(decoding.DecodeError) as caught:
            decoding.decode(data, max_pixels=CAP, long_side=1600)
        assert caught.value.code == "corrupt"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pictures_get_a_stable_code_quickly(name):
    """Each hostile picture is refused by the decoder with a stable code within a second, or decodes if it is one."""
    data, code = HOSTILE[name]
    started = time.monotonic()
    if code is None:
        decoded = decoding.decode(data, max_pixels=CAP, long_side=1600)
        assert decoded.frames and decoded.frames[0].size == (96, 64)
    elif code is NO_CHECKSUM:
        try:
            decoded = decoding.decode(data, max_pixels=CAP, long_side=1600)
        except decoding.DecodeError as exc:
            assert exc.code in DAMAGED, exc
        else:
            assert decoded.frames and decoded.frames[0].size == _declared_size(data)
    else:
        with pytest.raises(decoding.DecodeError) as caught:
            decoding.decode(data, max_pixels=CAP, long_side=1600)
        assert caught.value.code in ({code} if code == "too-large" else DAMAGED), caught.value
    assert time.monotonic() - started < DECODE_WITHIN_S


@pytest.fixture(scope="module")
def checker(tmp_path_factory):
    """The real worker pool, one worker, with an empty registry (every face is unidentified)."""
    c = ImageChecker(SETTINGS, tmp_path_factory.mktemp("registry") / "registry.sqlite", PURPOSES, workers=1)
    yield c
    c.close()


def _check(checker, data: bytes, content_type: str | None):
    return asyncio.run(checker.check(data, channel="class_story", class_id="class", content_type=content_type))


@pytest.mark.slow
def test_every_hostile_picture_is_a_clear_finding_from_the_worker_in_bounded_time_and_memory(checker):
    """Through the worker pool each hostile picture is unreadable with a reason (or checked if valid), within bounds."""
    slowest = 0.0
    for name, (data, code) in sorted(HOSTILE.items()):
        started = time.monotonic()
        result = _check(checker, data, "image/jpeg")
        slowest = max(slowest, time.monotonic() - started)
        if code is None:
            assert result.findings.is_complete, (name, result.findings)
        elif code is NO_CHECKSUM:
            assert result.findings.is_complete or result.findings.error, (name, result.findings)
        else:
            assert not result.findings.is_complete and result.findings.error, (name, result.findings)
    assert slowest < CHECK_WITHIN_S
    assert asyncio.run(checker.run(worker.peak_rss_mb)) < WORKER_PEAK_MB


@pytest.mark.slow
@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", "video/mp4", None, "text/plain"])
def test_a_picture_under_the_wrong_content_type_is_still_checked_as_a_photo(checker, content_type):
    """The label does not decide: a JPEG sent as PNG, video, text or nothing is still analysed as a photo."""
    result = _check(checker, encode("JPEG"), content_type)
    assert result.kind is AttachmentKind.PHOTO
    assert result.findings.is_complete


@pytest.mark.slow
def test_text_labelled_as_a_photo_fails_closed(checker):
    """Bytes that are not a picture but claim to be one are a failed check, never a face-free photo."""
    result = _check(checker, b"Dear parents, the trip is on Friday." * 20, "image/jpeg")
    assert result.kind is AttachmentKind.PHOTO
    assert not result.findings.is_complete and result.findings.unreadable
