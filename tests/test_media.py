"""The one media sniffer: every format and ISO base media brand it knows, and the same answer through every caller.

The proxy (finding pictures in a write), the image check (photo, video or
not checked), its video sampler (which demuxer) and the hold export (which
extension) all ask ``dojoguard.media``; the tests at the end send the same
bytes through each and expect one answer.
"""

from __future__ import annotations

import base64
import io
import json

import av
import numpy as np
import pytest
from PIL import Image

from dojoguard import media
from dojoguard.consent_registry import decoding, imagecheck, sample_videos, video
from dojoguard.holds import export
from dojoguard.holds.store import StoredRequest
from dojoguard.proxy import body
from dojoguard.rules.action import AttachmentKind

PHOTO, VIDEO, FILE = AttachmentKind.PHOTO, AttachmentKind.VIDEO, AttachmentKind.FILE


def ftyp(major: bytes, *compatible: bytes, minor: bytes = b"\x00\x00\x00\x00") -> bytes:
    """An ISO base media ``ftyp`` box, followed by a free box (so every sample is long enough to be found in JSON)."""
    payload = major + minor + b"".join(compatible)
    free = b"\x00\x00\x01\x00free" + b"\x00" * 248
    return (8 + len(payload)).to_bytes(4, "big") + b"ftyp" + payload + free


def padded(head: bytes) -> bytes:
    """A signature followed by enough bytes to be a plausible file (and an inline JSON picture)."""
    return head + bytes(range(256))


def ebml(doctype: bytes) -> bytes:
    """The EBML header of a Matroska or WebM file, as FFmpeg writes it."""
    header = (b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
              + b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype + b"\x42\x87\x81\x04\x42\x85\x81\x02")
    return padded(b"\x1aE\xdf\xa3" + bytes([0x80 | len(header)]) + header)


# Every signature, and every brand, with the format it is. ISO/IEC 23008-12 (HEIF) and the AV1 Image
# File Format name the brands; the last rows are files as real tools write their ftyp boxes.
CASES = {
    # Signatures at byte 0.
    "jpeg": (padded(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"), media.JPEG),
    "png": (padded(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), media.PNG),
    "gif87a": (padded(b"GIF87a"), media.GIF),
    "gif89a": (padded(b"GIF89a"), media.GIF),
    "webp": (padded(b"RIFF\x00\x10\x00\x00WEBPVP8 "), media.WEBP),
    "bmp": (padded(b"BM\x36\x00\x0c\x00\x00\x00"), media.BMP),
    "tiff little-endian": (padded(b"II*\x00\x08\x00\x00\x00"), media.TIFF),
    "tiff big-endian": (padded(b"MM\x00*\x00\x00\x00\x08"), media.TIFF),
    "avi": (padded(b"RIFF\x00\x10\x00\x00AVI LIST"), media.AVI),
    "webm": (ebml(b"webm"), media.WEBM),
    "matroska": (ebml(b"matroska"), media.MATROSKA),
    # Not pictures.
    "riff wave (sound)": (padded(b"RIFF\x00\x10\x00\x00WAVEfmt "), None),
    "pdf": (padded(b"%PDF-1.7\n"), None),
    "text": (b"Dear parents, " * 30, None),
    "empty": (b"", None),
    "ftyp cut short": (b"\x00\x00\x00\x18ftyp", media.MP4),
    # HEIF still images (image items) under a major brand libheif opens: photos.
    "heic": (ftyp(b"heic", b"mif1", b"heic"), media.HEIC),
    "heix": (ftyp(b"heix", b"mif1", b"heix"), media.HEIC),
    "heim": (ftyp(b"heim", b"mif1", b"heim"), media.HEIC),
    "heis": (ftyp(b"heis", b"mif1", b"heis"), media.HEIC),
    "mif1 with heic compatible": (ftyp(b"mif1", b"mif1", b"heic"), media.HEIC),
    "mif1 alone": (ftyp(b"mif1", b"mif1"), media.HEIF),
    # HEIF stills under a major brand libheif does not open: videos (the video sampler reads them).
    "isom major, heic compatible": (ftyp(b"isom", b"isom", b"mif1", b"heic"), media.MP4),
    "mif2": (ftyp(b"mif2", b"mif2"), media.MP4),
    "avci (AVC stills)": (ftyp(b"avci", b"mif1", b"avci"), media.MP4),
    "jpeg in heif": (ftyp(b"jpeg", b"mif1", b"jpeg"), media.MP4),
    "vvic": (ftyp(b"vvic", b"mif1"), media.MP4),
    "evbi": (ftyp(b"evbi", b"mif1"), media.MP4),
    "j2ki": (ftyp(b"j2ki", b"mif1"), media.MP4),
    "1pic": (ftyp(b"1pic", b"mif1"), media.MP4),
    # AVIF: stills and sequences alike (libavif reads both).
    "avif": (ftyp(b"avif", b"avif", b"mif1", b"miaf", b"MA1B"), media.AVIF),
    "avis": (ftyp(b"avis", b"avif", b"avis", b"msf1", b"iso8", b"mif1", b"miaf", b"MA1B"), media.AVIF),
    "avio": (ftyp(b"avis", b"avio", b"msf1"), media.AVIF),
    "msf1 major, avis compatible": (ftyp(b"msf1", b"msf1", b"avis"), media.AVIF),
    # HEIF image sequences (timed tracks): videos.
    "msf1": (ftyp(b"msf1", b"msf1", b"iso8"), media.HEIF_SEQUENCE),
    "hevc": (ftyp(b"hevc", b"msf1", b"hevc"), media.HEIC_SEQUENCE),
    "hevx": (ftyp(b"hevx", b"msf1", b"hevx"), media.HEIC_SEQUENCE),
    "hevm": (ftyp(b"hevm", b"msf1", b"hevm"), media.HEIC_SEQUENCE),
    "hevs": (ftyp(b"hevs", b"msf1", b"hevs"), media.HEIC_SEQUENCE),
    "avcs": (ftyp(b"avcs", b"msf1", b"avcs"), media.HEIF_SEQUENCE),
    "jpgs": (ftyp(b"jpgs", b"msf1"), media.HEIF_SEQUENCE),
    "vvis": (ftyp(b"vvis", b"msf1"), media.HEIF_SEQUENCE),
    "evbs": (ftyp(b"evbs", b"msf1"), media.HEIF_SEQUENCE),
    "evms": (ftyp(b"evms", b"msf1"), media.HEIF_SEQUENCE),
    "j2is": (ftyp(b"j2is", b"msf1"), media.HEIF_SEQUENCE),
    "heic stills and an hevc sequence": (ftyp(b"heic", b"mif1", b"heic", b"msf1", b"hevc"), media.HEIC_SEQUENCE),
    "mp42 major, msf1 compatible": (ftyp(b"mp42", b"mp42", b"msf1"), media.HEIF_SEQUENCE),
    # Videos by the major brand; anything else in an ftyp box is checked as a video too.
    "mp4 isom": (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), media.MP4),
    "mp4 mp42": (ftyp(b"mp42", b"mp42", b"isom"), media.MP4),
    "mov": (ftyp(b"qt  ", b"qt  "), media.MOV),
    "m4v": (ftyp(b"M4V ", b"M4V ", b"M4A ", b"mp42", b"isom"), media.M4V),
    "3gp4": (ftyp(b"3gp4", b"isom", b"3gp4"), media.THREE_GP),
    "3gp5": (ftyp(b"3gp5", b"3gp5"), media.THREE_GP),
    "3gg6": (ftyp(b"3gg6", b"3gg6"), media.THREE_GP),
    "3g2a": (ftyp(b"3g2a", b"3g2a"), media.THREE_G2),
    "m4a (sound, may carry cover art)": (ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), media.MP4),
    "unknown brand": (ftyp(b"abcd", b"abcd"), media.MP4),
    # The ftyp box as the standard sizes it.
    "ftyp with a 64-bit size": (b"\x00\x00\x00\x01ftyp" + (28).to_bytes(8, "big") + b"hevc\x00\x00\x00\x00msf1hevc",
                                media.HEIC_SEQUENCE),
    "heic after a 64-bit size (the photo decoders look at byte 8)": (
        b"\x00\x00\x00\x01ftyp" + (28).to_bytes(8, "big") + b"heic\x00\x00\x00\x00mif1heic", media.MP4),
    "ftyp running to the end (size 0)": (b"\x00\x00\x00\x00ftypmp42\x00\x00\x00\x00mp42hevc", media.HEIC_SEQUENCE),
    "a brand past the end of the box is not read": (b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00heicmif1",
                                                    media.MP4),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_format_and_brand(name):
    """Each signature and brand is the format the standards say; pictures are photos or videos, nothing else is."""
    data, expected = CASES[name]
    assert media.sniff(data) is expected


def test_every_format_is_in_the_table():
    """Every format the sniffer can answer is covered above, and listed in ``FORMATS``."""
    assert {fmt for _, fmt in CASES.values()} - {None} == set(media.FORMATS)


def test_brands_are_read_from_the_major_and_every_compatible_brand():
    """The major brand, and every brand the box lists, as a set."""
    major, every = media.brands(ftyp(b"heic", b"mif1", b"heic", b"miaf"))
    assert major == b"heic" and every == {b"heic", b"mif1", b"miaf"}


def test_a_box_claiming_thousands_of_brands_is_read_only_so_far():
    """A box claiming a huge size is read for its first 64 compatible brands; the file is still a video."""
    data = b"\xff\xff\xff\xffftypisom\x00\x00\x00\x00" + b"mp42" * 10_000 + b"heic"
    major, every = media.brands(data)
    assert major == b"isom" and every == {b"isom", b"mp42"}
    assert media.sniff(data) is media.MP4


@pytest.mark.parametrize(("content_type", "expected"), [
    ("image/png", PHOTO), ("IMAGE/PNG; q=1", PHOTO), ("video/mp4", VIDEO), ("video/x-whatever", VIDEO),
    ("application/octet-stream", None), ("text/plain", None), (None, None), ("", None),
])
def test_bytes_no_signature_matches_go_by_their_label(content_type, expected):
    """Unrecognised bytes labelled a picture are checked as one (and found unreadable); otherwise not a picture."""
    assert media.kind_of(b"not a picture at all", content_type) is expected


def test_the_bytes_win_over_the_label():
    """A JPEG labelled video, or an MP4 labelled a photo, is what its bytes are."""
    assert media.kind_of(CASES["jpeg"][0], "video/mp4") is PHOTO
    assert media.kind_of(CASES["mp4 mp42"][0], "image/jpeg") is VIDEO
    assert media.kind_of(CASES["pdf"][0], "image/jpeg") is PHOTO


# -- Where the three sniffers disagreed -----------------------------------------------------
# What the proxy's body reader, the image check and the hold export answered for the same bytes
# before they shared one sniffer ("-": not a picture), wherever they disagreed or the answer changed.

OLD_ANSWERS = {
    # They disagreed.
    "bmp": ("image/bmp", "photo", "-"),
    "tiff little-endian": ("image/tiff", "photo", "-"),
    "tiff big-endian": ("image/tiff", "photo", "-"),
    "avi": ("-", "video", ".webp"),
    "webm": ("-", "video", "-"),
    "matroska": ("-", "video", "-"),
    "riff wave (sound)": ("-", "file", ".webp"),
    "heim": ("video/mp4", "photo", ".mp4"),
    "heis": ("video/mp4", "photo", ".mp4"),
    "avif": ("image/heic", "photo", ".mp4"),
    "avis": ("video/mp4", "photo", ".mp4"),
    "avio": ("video/mp4", "photo", ".mp4"),
    "hevc": ("image/heic", "photo", ".mp4"),
    "hevx": ("video/mp4", "photo", ".mp4"),
    # They agreed, and sent the file to a check that cannot read it.
    "msf1": ("image/heic", "photo", ".heic"),
    "heic stills and an hevc sequence": ("image/heic", "photo", ".heic"),
}


@pytest.mark.parametrize("name", list(OLD_ANSWERS))
def test_what_any_old_sniffer_took_for_a_picture_is_still_checked(name):
    """Where the proxy's reader or the image check took the bytes for a picture, the one answer now is a
    photo or a video (checked), never a file; the one input neither took for a picture (sound in a RIFF
    file, which only the export saved, as ``.webp``) is not a picture now."""
    data, fmt = CASES[name]
    body_said, check_said, _ = OLD_ANSWERS[name]
    if body_said != "-" or check_said != "file":
        assert fmt is not None and fmt.kind in (PHOTO, VIDEO)
        assert imagecheck.sniff_kind(data, None) in (PHOTO, VIDEO)
    else:
        assert fmt is None and imagecheck.sniff_kind(data, None) is FILE


# -- Every caller asks the one sniffer -------------------------------------------------------

BOUNDARY = "media-test-boundary"


def _form(data: bytes, content_type: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _inline(data: bytes) -> bytes:
    return json.dumps({"body": "hello", "attachments": [{"data": base64.b64encode(data).decode()}]}).encode()


def proxy_reads(data: bytes, how: str) -> str | None:
    """The media type the proxy's body reader gives the picture it finds in ``data``, sent ``how``."""
    if how == "raw":
        read = body.read(data, "application/octet-stream")
    elif how == "part":
        read = body.read(_form(data, "application/octet-stream"), f"multipart/form-data; boundary={BOUNDARY}")
    else:
        read = body.read(_inline(data), "application/json")
    assert len(read.images) <= 1
    return read.images[0].content_type if read.images else None


def export_saves(data: bytes, how: str) -> str | None:
    """The extension `held show --export` saves ``data`` under, sent ``how``, or None when it saves nothing."""
    headers, content = (("content-type", "application/octet-stream"),), data
    if how == "part":
        headers, content = (("content-type", f"multipart/form-data; boundary={BOUNDARY}"),), \
            _form(data, "application/octet-stream")
    elif how == "json":
        headers, content = (("content-type", "application/json"),), _inline(data)
    request = StoredRequest("POST", "https", "teach.classdojo.com", 443, "/api/upload", "HTTP/1.1", headers,
                            content, "10.0.0.5")
    saved = export.media(request)
    assert len(saved) <= 1 and all(found == data for _, found in saved)
    return saved[0][0] if saved else None


# Inline JSON pictures shorter than this are not looked for (too small to be a photo worth checking).
_INLINE_MINIMUM = 192


@pytest.mark.parametrize(("name", "how"), [(name, how) for name in CASES for how in ("raw", "part", "json")
                                           if how != "json" or len(CASES[name][0]) >= _INLINE_MINIMUM])
def test_the_proxy_the_image_check_and_the_export_give_one_answer(name, how):
    """The same bytes, sent as the body, as a multipart file or inline in JSON, are the same format to the
    proxy's reader (its media type), the image check (photo, video or file) and the export (its extension)."""
    data, fmt = CASES[name]
    assert proxy_reads(data, how) == (fmt.mime if fmt else None)
    assert export_saves(data, how) == (fmt.extension if fmt else None)
    assert imagecheck.sniff_kind(data, "application/octet-stream") is (fmt.kind if fmt else FILE)


@pytest.mark.parametrize("name", list(CASES))
def test_the_video_sampler_opens_what_the_sniffer_calls_a_video(name):
    """Every video format has a demuxer; bytes that are no format at all are refused before FFmpeg sees them."""
    data, fmt = CASES[name]
    if fmt is None:
        with pytest.raises(video.VideoError):
            video.container_of(data)
    elif fmt.kind is VIDEO:
        assert video.container_of(data) in video.FORMAT_NAMES


@pytest.mark.parametrize(("content_type", "extension", "kind"), [
    ("image/png", ".png", PHOTO), ("video/quicktime", ".mov", VIDEO), ("video/mp4; codecs=avc1", ".mp4", VIDEO),
    ("image/x-odd", ".bin", PHOTO), ("application/octet-stream", None, FILE),
])
def test_bytes_no_signature_matches_go_by_their_label_everywhere(content_type, extension, kind):
    """Bytes no signature matches, labelled a picture or video, are one to the proxy's reader, the image check
    and the export alike (saved under the label's extension); labelled anything else, to none of them."""
    damaged = b"\x00\x01 damaged"
    request = StoredRequest("PUT", "https", "teach.classdojo.com", 443, "/api/upload", "HTTP/1.1",
                            (("content-type", content_type),), damaged, "10.0.0.5")
    assert export.media(request) == ([(extension, damaged)] if extension else [])
    assert imagecheck.sniff_kind(damaged, content_type) is kind
    found = body.read(damaged, content_type).images
    assert [slot.content_type for slot in found] == ([content_type.split(";")[0]] if extension else [])


# -- Real files go to the check that reads them -----------------------------------------------


def _picture(fmt: str, **options) -> bytes:
    decoding.register_formats()
    out = io.BytesIO()
    frames = [Image.new("RGB", (64, 48), (40 * i, 120, 200)) for i in range(3)]
    if options.pop("animated", False):
        frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100, **options)
    else:
        frames[0].save(out, fmt, **options)
    return out.getvalue()


def _video(container: str, codec: str | None = None, brand: str | None = None) -> bytes:
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(6)]
    if brand is None:
        return sample_videos.encode(frames, fps=2, container=container, codec_name=codec)
    out = io.BytesIO()
    with av.open(out, mode="w", format=container, options={"brand": brand}) as c:
        stream = c.add_stream(codec or sample_videos.codec(), rate=2)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        for pixels in frames:
            c.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        c.mux(stream.encode())
    return out.getvalue()


def _with_brands(data: bytes, major: bytes | None = None, last: bytes | None = None) -> bytes:
    """``data`` with its ftyp box's major brand, or its last compatible brand, replaced (the box keeps its size)."""
    size = int.from_bytes(data[:4], "big")
    data = data[:8] + (major or data[8:12]) + data[12:]
    return data[:size - 4] + (last or data[size - 4:size]) + data[size:]


REAL_FILES = {
    "JPEG": (lambda: _picture("JPEG"), media.JPEG),
    "PNG": (lambda: _picture("PNG"), media.PNG),
    "GIF (animated)": (lambda: _picture("GIF", animated=True), media.GIF),
    "WebP": (lambda: _picture("WEBP"), media.WEBP),
    "BMP": (lambda: _picture("BMP"), media.BMP),
    "TIFF": (lambda: _picture("TIFF"), media.TIFF),
    "HEIC": (lambda: _picture("HEIF"), media.HEIC),
    "HEIC burst (several stills)": (lambda: _picture("HEIF", animated=True), media.HEIC),
    "AVIF": (lambda: _picture("AVIF"), media.AVIF),
    "AVIF sequence": (lambda: _picture("AVIF", animated=True), media.AVIF),
    "MP4": (lambda: _video("mp4"), media.MP4),
    "MOV": (lambda: _video("mov"), media.MOV),
    "3GP": (lambda: _video("3gp"), media.THREE_GP),
    "WebM": (lambda: _video("webm", "libvpx-vp9"), media.WEBM),
    "Matroska": (lambda: _video("matroska"), media.MATROSKA),
    "AVI": (lambda: _video("avi", "mpeg4"), media.AVI),
    "HEIF sequence (msf1)": (lambda: _video("mp4", brand="msf1"), media.HEIF_SEQUENCE),
    "HEVC sequence (hevc)": (lambda: _video("mp4", brand="hevc"), media.HEIC_SEQUENCE),
    "HEIC still under the major brand isom": (lambda: _with_brands(_picture("HEIF"), major=b"isom"), media.MP4),
}


@pytest.mark.parametrize("name", list(REAL_FILES))
def test_real_files_are_sent_to_the_check_that_reads_them(name):
    """Files written by Pillow, pillow-heif and FFmpeg are the format expected, and the check their kind
    chooses reads them: the photo decoder a photo (every frame of an animation or an AVIF sequence), the video
    sampler a video (the track of a HEIF image sequence, a HEIC still libheif would not open)."""
    make, expected = REAL_FILES[name]
    data = make()
    assert media.sniff(data) is expected
    if expected.kind is PHOTO:
        decoded = decoding.decode(data, max_pixels=10**6, long_side=64)
        assert decoded.frames
    else:
        assert video.sample(data).frames


@pytest.mark.parametrize("name", ["HEIF sequence (msf1)", "HEVC sequence (hevc)"])
def test_an_image_sequence_is_no_picture_to_the_photo_decoder(name):
    """Why a HEIF image sequence is a video: the photo decoder reads no picture in it (checked as a photo,
    it could only ever be unreadable), where the video sampler reads its frames."""
    data = REAL_FILES[name][0]()
    with pytest.raises(decoding.DecodeError) as refused:
        decoding.decode(data, max_pixels=10**6, long_side=64)
    assert refused.value.code == "not-an-image"


def test_stills_beside_a_claimed_sequence_are_refused_not_half_checked():
    """A HEIC of several stills whose brands claim an image sequence too is a video, which the sampler
    refuses as unreadable (more than one picture), rather than a photo whose other part goes unchecked."""
    data = _with_brands(_picture("HEIF", animated=True), last=b"msf1")
    assert media.sniff(data).kind is VIDEO
    with pytest.raises(video.VideoError) as refused:
        video.sample(data)
    assert refused.value.code in video.UNREADABLE_CODES
