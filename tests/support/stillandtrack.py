"""A HEIF file with a still picture AND a timed track: the kind of file that is a photo to one reader, a video to another.

Built by moving boxes: the still's ``meta`` box (and its ``mdat``) from a
HEIC made by pillow-heif, the track's ``moov`` (and its ``mdat``) from an
MP4 made by PyAV, under one ``ftyp`` that names both (``heic`` and
``msf1``), with the offsets inside both rewritten for their new places.
"""

from __future__ import annotations

import io
import struct

import pillow_heif
from PIL import Image

from dojoguard.consent_registry import sample_videos

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def build(still: Image.Image, track_picture: Image.Image, *, track_first: bool = True) -> bytes:
    """``still`` as the file's primary image, beside a two-second track showing ``track_picture``."""
    out = io.BytesIO()
    pillow_heif.from_pillow(still.convert("RGB")).save(out, quality=90)
    heic = out.getvalue()
    mp4 = sample_videos.encode(sample_videos.still(track_picture, 2, size=(640, 360), fps=10), fps=10)
    in_heic, in_mp4 = _top_level(heic), _top_level(mp4)
    ftyp = struct.pack(">I", 8 + 4 + 4 + 4 * 4) + b"ftyp" + b"heic" + b"\0\0\0\0" + b"mif1heicmsf1iso8"
    meta, moov = bytearray(_box(heic, in_heic[b"meta"])), bytearray(_box(mp4, in_mp4[b"moov"]))
    heic_mdat, mp4_mdat = _box(heic, in_heic[b"mdat"]), _box(mp4, in_mp4[b"mdat"])
    first, second = (moov, meta) if track_first else (meta, moov)
    heic_mdat_at = len(ftyp) + len(first) + len(second)
    _shift_iloc(meta, heic_mdat_at - in_heic[b"mdat"][0])
    _shift_chunk_offsets(moov, 0, len(moov), heic_mdat_at + len(heic_mdat) - in_mp4[b"mdat"][0])
    return bytes(ftyp + first + second + heic_mdat + mp4_mdat)


def _boxes(data, start: int = 0, end: int | None = None):
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, header = int.from_bytes(data[at:at + 4], "big"), 8
        if size == 1:
            size, header = int.from_bytes(data[at + 8:at + 16], "big"), 16
        elif size == 0:
            size = end - at
        yield bytes(data[at + 4:at + 8]), at, header, size
        at += size


def _top_level(data: bytes) -> dict[bytes, tuple[int, int]]:
    return {kind: (at, size) for kind, at, _, size in _boxes(data)}


def _box(data: bytes, where: tuple[int, int]) -> bytes:
    at, size = where
    return data[at:at + size]


def _add(buf: bytearray, at: int, width: int, delta: int) -> None:
    buf[at:at + width] = (int.from_bytes(buf[at:at + width], "big") + delta).to_bytes(width, "big")


def _shift_chunk_offsets(buf: bytearray, start: int, end: int, delta: int) -> None:
    """Move every ``stco``/``co64`` chunk offset of the track by ``delta``."""
    for kind, at, header, size in _boxes(buf, start, end):
        if kind in _CONTAINERS:
            _shift_chunk_offsets(buf, at + header, at + size, delta)
        elif kind in (b"stco", b"co64"):
            width = 4 if kind == b"stco" else 8
            for k in range(int.from_bytes(buf[at + 12:at + 16], "big")):
                _add(buf, at + 16 + width * k, width, delta)


def _shift_iloc(meta: bytearray, delta: int) -> None:
    """Move every file-offset item location in ``meta``'s ``iloc`` box by ``delta``."""
    for kind, at, header, _ in _boxes(meta, 12):  # meta is a full box: version and flags first
        if kind != b"iloc":
            continue
        p = at + header
        version = meta[p]
        p += 4
        sizes = int.from_bytes(meta[p:p + 2], "big")
        p += 2
        offset_size, length_size, base_size, index_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15, sizes & 15
        count_width = 2 if version < 2 else 4
        count = int.from_bytes(meta[p:p + count_width], "big")
        p += count_width
        for _ in range(count):
            p += 2 if version < 2 else 4  # item id
            method = 0
            if version in (1, 2):
                method = int.from_bytes(meta[p:p + 2], "big") & 15
                p += 2
            p += 2  # data reference index
            if base_size:
                if method == 0:
                    _add(meta, p, base_size, delta)
                p += base_size
            extents = int.from_bytes(meta[p:p + 2], "big")
            p += 2
            for _ in range(extents):
                if version in (1, 2) and index_size:
                    p += index_size
                if offset_size and not base_size and method == 0:
                    _add(meta, p, offset_size, delta)
                p += offset_size + length_size
