"""Location tags: finding and removing GPS data from photos before they leave the school.

A phone photo taken at home or on a trip carries the place it was taken.
For JPEG (nearly every upload) the location is removed by rewriting only the
metadata segments, so the picture itself is not re-compressed; other formats
are re-encoded. The result is checked again: if a location survived, the
strip fails rather than forwarding it.
"""

from __future__ import annotations

import io
import struct

from PIL import ExifTags, Image

from dojoguard.consent_registry import decoding

# A limit for re-encoding only; stripping never needs more than the header.
STRIP_MAX_PIXELS = 400_000_000


class MetadataError(Exception):
    """Location data that could not be removed safely: the photo must not be forwarded as is."""


def clean_exif(exif: Image.Exif) -> Image.Exif:
    """The same EXIF without its GPS directory."""
    cleaned = Image.Exif()
    if len(exif):
        cleaned.load(exif.tobytes())
    if ExifTags.IFD.GPSInfo in cleaned:
        del cleaned[ExifTags.IFD.GPSInfo]
    # Pillow keeps parsed sub-directories aside and writes them back on save.
    cleaned._ifds.pop(ExifTags.IFD.GPSInfo, None)
    return cleaned


def _strip_jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise MetadataError("not a JPEG stream")
    out = io.BytesIO()
    out.write(data[:2])
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise MetadataError("damaged JPEG marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan / end: the rest is image data
            out.write(data[pos:])
            return out.getvalue()
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segment = data[pos:pos + 2 + length]
        if len(segment) < 2 + length:
            raise MetadataError("truncated JPEG segment")
        payload = segment[4:]
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            exif = Image.Exif()
            exif.load(payload)
            if ExifTags.IFD.GPSInfo in exif:
                new_payload = clean_exif(exif).tobytes()
                if len(new_payload) + 2 > 0xFFFF:
                    raise MetadataError("EXIF too large to rewrite")
                segment = b"\xff\xe1" + struct.pack(">H", len(new_payload) + 2) + new_payload
        elif marker == 0xE1 and (b"GPSLatitude" in payload or b"GPSLongitude" in payload):
            segment = b""  # XMP carrying a location: dropped whole
        out.write(segment)
        pos += 2 + length
    raise MetadataError("JPEG ended before its image data")


def _reencode(data: bytes) -> bytes:
    image = decoding.open_image(data, max_pixels=STRIP_MAX_PIXELS)
    fmt = image.format
    image.load()
    exif = clean_exif(image.getexif())
    out = io.BytesIO()
    frames = getattr(image, "n_frames", 1)
    save_args = encode_args(fmt, image)
    image.info.pop("xmp", None)
    if frames > 1 and fmt not in decoding.SINGLE_PICTURE_FORMATS:
        image.save(out, format=save_format(fmt), save_all=True, exif=exif, **save_args)
    else:
        image.save(out, format=save_format(fmt), exif=exif, **save_args)
    return out.getvalue()


def save_format(fmt: str) -> str:
    return "JPEG" if fmt == "MPO" else fmt


def encode_args(fmt: str, image: Image.Image) -> dict:
    """Settings that keep a re-encoded photo close to the original."""
    args: dict = {}
    if image.info.get("icc_profile"):
        args["icc_profile"] = image.info["icc_profile"]
    if fmt in ("JPEG", "MPO"):
        args.update(quality=92)
    elif fmt in ("WEBP", "HEIF", "AVIF"):
        args.update(quality=92)
    return args


def strip_gps(data: bytes) -> bytes:
    """The photo without location tags (unchanged bytes when it had none); raises ``MetadataError``."""
    try:
        image = decoding.open_image(data, max_pixels=STRIP_MAX_PIXELS)
        if not decoding.has_gps(image):
            return data
        fmt = image.format
        stripped = _strip_jpeg(data) if fmt in ("JPEG", "MPO") else _reencode(data)
        if decoding.has_gps(decoding.open_image(stripped, max_pixels=STRIP_MAX_PIXELS)):
            raise MetadataError("a location tag survived stripping")
        return stripped
    except decoding.DecodeError as exc:
        raise MetadataError(f"cannot read the photo to remove its location: {exc}") from exc
    except MetadataError:
        raise
    except Exception as exc:  # any failure must stop the photo, not pass it
        raise MetadataError(f"cannot remove the location: {exc}") from exc
