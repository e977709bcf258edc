"""What an upload's bytes are: a photo, a video or neither, and in which format.

The one sniffer for everything that asks: the proxy finding the pictures in
a write (``proxy/body.py``), the image check choosing between the photo and
the video check (``consent_registry/imagecheck.py``) and its video sampler
choosing a demuxer, and a leader's export of a held item (``holds/export.py``).
They used to keep a list each, and the lists disagreed.

The bytes decide, never a name or a label; a declared type is only a
fallback for bytes no signature matches (see ``kind_of``). The sniffing
fails closed: whatever could carry a picture is a photo or a video, to be
checked, never "not a picture". Any ISO base media file (``ftyp`` at byte
4: MP4, MOV, 3GP, HEIF, AVIF, and audio-only M4A too, which may carry cover
art) is at least a video.

ISO base media files are read by their ``ftyp`` box, the major brand and
every compatible brand (ISO/IEC 14496-12 4.3; HEIF brands from ISO/IEC
23008-12, AVIF's from the AV1 Image File Format), and sent to the check
that can read them: the photo decoders (libheif and libavif, in Pillow)
open a file by its major brand, and the video sampler (FFmpeg) reads a
HEIF file's tracks and its still images alike.

- AVIF (an AVIF brand, and a major brand libavif opens: ``avif``, ``avis``,
  ``mif1``, ``msf1``): a photo, stills and image sequences alike; libavif
  reads every frame of a sequence;
- a HEIF image sequence (``msf1``, ``hevc``, ``hevx``, ... among the
  brands): a video. A sequence is a timed track, which libheif does not
  read (such a file is not a picture to it); the video sampler decodes the
  track, and refuses a file that has still images as well (two picture
  tracks) rather than check half of it;
- a HEIF still image (major brand ``heic``, ``heix``, ``heim``, ``heis`` or
  ``mif1``): a photo;
- anything else: a video (MOV, 3GP, M4V, or MP4, by the major brand),
  including a HEIF still under a major brand libheif does not open
  (``isom``, ``avci``, ``mif2``, ...), which the video sampler reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from dojoguard.rules.action import AttachmentKind

PHOTO, VIDEO = AttachmentKind.PHOTO, AttachmentKind.VIDEO


@dataclass(frozen=True)
class Format:
    """A recognised format: its name, whether it is checked as a photo or a video, its media type and extension."""

    name: str
    kind: AttachmentKind
    mime: str
    extension: str


JPEG = Format("JPEG", PHOTO, "image/jpeg", ".jpg")
PNG = Format("PNG", PHOTO, "image/png", ".png")
GIF = Format("GIF", PHOTO, "image/gif", ".gif")
WEBP = Format("WebP", PHOTO, "image/webp", ".webp")
BMP = Format("BMP", PHOTO, "image/bmp", ".bmp")
TIFF = Format("TIFF", PHOTO, "image/tiff", ".tif")
HEIC = Format("HEIC", PHOTO, "image/heic", ".heic")
HEIF = Format("HEIF", PHOTO, "image/heif", ".heif")
AVIF = Format("AVIF", PHOTO, "image/avif", ".avif")
HEIC_SEQUENCE = Format("HEIC sequence", VIDEO, "image/heic-sequence", ".heics")
HEIF_SEQUENCE = Format("HEIF sequence", VIDEO, "image/heif-sequence", ".heifs")
MP4 = Format("MP4", VIDEO, "video/mp4", ".mp4")
MOV = Format("MOV", VIDEO, "video/quicktime", ".mov")
M4V = Format("M4V", VIDEO, "video/x-m4v", ".m4v")
THREE_GP = Format("3GP", VIDEO, "video/3gpp", ".3gp")
THREE_G2 = Format("3G2", VIDEO, "video/3gpp2", ".3g2")
WEBM = Format("WebM", VIDEO, "video/webm", ".webm")
MATROSKA = Format("Matroska", VIDEO, "video/x-matroska", ".mkv")
AVI = Format("AVI", VIDEO, "video/x-msvideo", ".avi")

FORMATS = (JPEG, PNG, GIF, WEBP, BMP, TIFF, HEIC, HEIF, AVIF, HEIC_SEQUENCE, HEIF_SEQUENCE, MP4, MOV, M4V,
           THREE_GP, THREE_G2, WEBM, MATROSKA, AVI)
# Families, for callers that care about the container rather than the codec (the video sampler's demuxer).
ISO_BMFF = frozenset({HEIC, HEIF, AVIF, HEIC_SEQUENCE, HEIF_SEQUENCE, MP4, MOV, M4V, THREE_GP, THREE_G2})
EBML = frozenset({WEBM, MATROSKA})

# Signatures at byte 0. "RIFF" is followed by the size, then the form type at byte 8.
_SIGNATURES = (
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
    (b"BM", BMP),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
)
_RIFF_FORMS = {b"WEBP": WEBP, b"AVI ": AVI}
_EBML_MAGIC = b"\x1aE\xdf\xa3"
# The EBML header's DocType element (ID 0x4282, a one-byte size) of a WebM file; Matroska otherwise.
_WEBM_DOCTYPE = b"\x42\x82\x84webm"

_AVIF_BRANDS = frozenset({b"avif", b"avis", b"avio"})
# The major brands with which Pillow's AVIF plugin opens a file.
_AVIF_MAJOR_BRANDS = frozenset({b"avif", b"avis", b"mif1", b"msf1"})
# HEIF image sequences (timed tracks): structural, then by codec (HEVC, AVC, JPEG, VVC, EVC, JPEG 2000).
_HEIF_SEQUENCE_BRANDS = frozenset({b"msf1", b"hevc", b"hevx", b"hevm", b"hevs", b"avcs", b"jpgs", b"vvis",
                                   b"evbs", b"evms", b"j2is"})
_HEVC_SEQUENCE_BRANDS = frozenset({b"hevc", b"hevx", b"hevm", b"hevs"})
# HEVC still images (image items); with ``mif1``, the major brands with which libheif (pillow-heif) opens
# a still. Other codecs' stills (``avci``, ``jpeg``, ``vvic``, ...) under their own major brand it does not
# open: they are left to the video sampler.
_HEVC_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis"})
_HEIF_PHOTO_MAJOR_BRANDS = _HEVC_IMAGE_BRANDS | {b"mif1"}
# Real files list a handful of compatible brands; a box claiming more is read this far only
# (whatever the rest say, the file is still checked as a photo or a video).
_MAX_BRANDS = 64


def sniff(data: bytes) -> Format | None:
    """The format of ``data`` from its first bytes, or None when it is no picture or video format known here."""
    for magic, fmt in _SIGNATURES:
        if data.startswith(magic):
            return fmt
    if data.startswith(b"RIFF"):
        return _RIFF_FORMS.get(data[8:12])
    if data.startswith(_EBML_MAGIC):
        return WEBM if _WEBM_DOCTYPE in data[:64] else MATROSKA
    if data[4:8] == b"ftyp":
        return _iso_bmff(data)
    return None


def brands(data: bytes) -> tuple[bytes, frozenset[bytes]]:
    """An ISO base media file's major brand and all its brands (major and compatible), from its ``ftyp`` box.

    The box size is read as the standard writes it: 1 means a 64-bit size
    follows (the brands start 8 bytes later), 0 means the box runs to the
    end of the data; a size past the end is cut at the end.
    """
    size = int.from_bytes(data[0:4], "big")
    start = 8
    if size == 1:
        size, start = int.from_bytes(data[8:16], "big"), 16
    elif size == 0:
        size = len(data)
    major = data[start:start + 4]
    end = min(size, len(data), start + 8 + 4 * _MAX_BRANDS)
    compatible = (data[i:i + 4] for i in range(start + 8, end - 3, 4))
    return major, frozenset({major, *compatible})


def _iso_bmff(data: bytes) -> Format:
    major, every = brands(data)
    # The photo decoders look for the major brand at byte 8, where a box with a 32-bit size has it.
    photo_major = major if data[8:12] == major else None
    if every & _AVIF_BRANDS and photo_major in _AVIF_MAJOR_BRANDS:
        return AVIF
    if every & _HEIF_SEQUENCE_BRANDS:
        return HEIC_SEQUENCE if every & _HEVC_SEQUENCE_BRANDS else HEIF_SEQUENCE
    if photo_major in _HEIF_PHOTO_MAJOR_BRANDS:
        return HEIC if every & _HEVC_IMAGE_BRANDS else HEIF
    if major == b"qt  ":
        return MOV
    if major.startswith(b"M4V"):
        return M4V
    if major.startswith(b"3g2"):
        return THREE_G2
    if major.startswith((b"3gp", b"3gg")):
        return THREE_GP
    return MP4


def kind_of(data: bytes, content_type: str | None) -> AttachmentKind | None:
    """Photo or video by the bytes first and the declared type second; None for anything else.

    Bytes no signature matches but labelled ``image/...`` are a photo (the
    check then finds them unreadable) and ``video/...`` a video: a label
    that claims a picture is never ignored.
    """
    fmt = sniff(data)
    if fmt is not None:
        return fmt.kind
    return declared_kind(content_type)


def declared_kind(content_type: str | None) -> AttachmentKind | None:
    """Photo for a declared ``image/...``, video for ``video/...``, else None (parameters and case ignored)."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared.startswith("image/"):
        return PHOTO
    if declared.startswith("video/"):
        return VIDEO
    return None
