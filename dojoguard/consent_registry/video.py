"""Bounded frame sampling of an uploaded video, for the face check.

A video is checked by looking at some of its frames: one every
``sample_every_s`` seconds, plus the first frame after each scene change (a
cut from one shot to another), at most ``max_frames`` in all. Frames come
back upright (a phone's rotation tag applied) as RGB pixels.

Uploads are hostile input, so everything is bounded and anything that cannot
be completed raises ``VideoError`` (a ``decoding.DecodeError``, with a stable
code) rather than returning fewer frames:

- only the containers a teacher's device records or shares (MP4/MOV/M4V,
  WebM/Matroska, AVI) are opened, named explicitly so that FFmpeg never
  guesses among its hundreds of formats; the picture track must use a
  common camera codec;
- the frame size is capped from the header, and every decoded frame is
  checked again (a stream may change size part way);
- the declared duration is capped, and not trusted: a stream whose frames
  carry on past the cap, or whose timestamps do not move forward, fails;
- the number of packets and frames walked and the decoding time are capped;
- a file that is cut off, whose decoder reports an error, or that yields
  fewer frames than it declares, is unreadable, never "no faces".

Memory stays bounded: decoding runs on one thread (one core per worker), and
only the frames kept are held, each scaled to at most ``keep_long_side``
pixels and stored JPEG-compressed (about 0.3 MB for a 1080p frame instead of
6 MB of pixels) until they are checked. Nothing is written to disk.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from dojoguard import media
from dojoguard.consent_registry.decoding import DecodeError

# Container from the first bytes, to the FFmpeg demuxer that reads it.
_MOV, _MATROSKA, _AVI = "mov", "matroska", "avi"
FORMAT_NAMES = {_MOV: "MP4", _MATROSKA: "Matroska", _AVI: "AVI"}
# Picture codecs of phone, tablet, camera and screen recordings, and of the
# formats such videos are commonly shared in. Anything else is refused.
VIDEO_CODECS = frozenset({"h264", "hevc", "av1", "vp8", "vp9", "mpeg4", "h263", "mjpeg", "mpeg1video",
                          "mpeg2video", "prores", "msmpeg4v3", "msmpeg4v2"})
# Codes a caller reports as "unreadable"; "too-slow" is a check that ran out of time.
UNREADABLE_CODES = frozenset({"unsupported-format", "no-video", "corrupt", "too-large", "too-long",
                              "too-many-frames"})
# How often, at most, a frame is compared with the last one kept to spot a scene
# change: a shot shorter than this can fall between two comparisons.
SCENE_CHECK_EVERY_S = 0.2
# The small grey picture frames are compared on, (width, height).
THUMBNAIL = (64, 36)
# Of the decoded frames a file declares, how many may be missing (edit lists
# drop a few at the start) before it counts as cut off.
MISSING_FRAMES_ALLOWED = 3
# FFmpeg's disposition of a cover picture (AV_DISPOSITION_ATTACHED_PIC).
ATTACHED_PIC = 0x400
# More cover pictures than this is not a video a device recorded: refused, not decoded one by one.
MAX_COVERS = 4
JPEG_QUALITY = 95


class VideoError(DecodeError):
    """A video that cannot be sampled safely; ``code`` is stable (see ``UNREADABLE_CODES``)."""


@dataclass(frozen=True)
class Failure:
    """A ``VideoError`` as a value, to cross from a worker process (the exception does not pickle)."""

    code: str
    message: str


@dataclass(frozen=True)
class Limits:
    sample_every_s: float = 1.0
    max_frames: int = 60
    # A frame is taken as a new scene when its small grey picture differs from
    # the last kept frame's by more than this (mean absolute difference, 0-255).
    scene_threshold: float = 30.0
    max_duration_s: float = 600.0
    max_pixels: int = 8_300_000  # 4K UHD (3840 x 2160) is 8.29 MP
    keep_long_side: int = 1920
    # Frames a second, on average, over the longest video allowed (slow-motion
    # recordings over this fail closed).
    max_frame_rate: float = 60.0
    time_budget_s: float = 60.0

    @property
    def max_decoded_frames(self) -> int:
        return int(self.max_duration_s * self.max_frame_rate)

    @property
    def max_scene_frames(self) -> int:
        # Scene-change frames count towards max_frames; at most a third of them,
        # so that the regular samples still cover the whole video.
        return max(1, self.max_frames // 3)


    @classmethod
    def from_settings(cls, images: dict) -> Limits:
        """The limits from the ``images`` settings (``images.video``, see docs/images.md#videos)."""
        v = dict(images.get("video") or {})
        d = cls()
        return cls(sample_every_s=float(v.get("sample_every_s", d.sample_every_s)),
                   max_frames=int(v.get("max_frames", d.max_frames)),
                   scene_threshold=float(v.get("scene_threshold", d.scene_threshold)),
                   max_duration_s=float(v.get("max_duration_s", d.max_duration_s)),
                   max_pixels=int(float(v.get("max_megapixels", d.max_pixels / 1e6)) * 1_000_000),
                   time_budget_s=float(v.get("decode_timeout_s", d.time_budget_s)))


@dataclass(frozen=True)
class SampledFrame:
    time: float             # seconds from the first frame
    reason: str             # "interval", "scene" or "cover" (a cover picture the file carries)
    size: tuple[int, int]   # (width, height) kept, upright
    jpeg: bytes = field(repr=False)

    def rgb(self) -> np.ndarray:
        """The frame as upright RGB pixels, uint8, height x width x 3."""
        with Image.open(io.BytesIO(self.jpeg)) as image:
            return np.ascontiguousarray(np.asarray(image.convert("RGB")))


@dataclass(frozen=True)
class Sampled:
    format: str
    codec: str
    size: tuple[int, int]   # (width, height) as stored, before rotation
    rotation: int           # degrees the picture was turned to stand upright
    duration_s: float       # from the first to the last frame decoded
    frames_decoded: int
    frames: tuple[SampledFrame, ...]

    def arrays(self):
        for frame in self.frames:
            yield frame.rgb()


def preload() -> None:
    """Load FFmpeg now (a worker does, before its memory ceiling is set: the libraries are large)."""
    import av  # noqa: F401 - imported only to load the libraries


def container_of(data: bytes) -> str:
    """The demuxer for ``data`` from its first bytes; ``VideoError`` for anything not a plausible upload."""
    fmt = media.sniff(data)
    if fmt in media.ISO_BMFF:
        return _MOV
    if fmt in media.EBML:
        return _MATROSKA
    if fmt is media.AVI:
        return _AVI
    raise VideoError("unsupported-format", "not a video format a school device uploads (MP4, MOV, WebM, MKV, AVI)")


def sample(data: bytes, limits: Limits = Limits()) -> Sampled:
    """Decode ``data`` within ``limits`` and keep the frames to check; raises ``VideoError``."""
    import av  # loaded only by processes that check videos

    fmt = container_of(data)
    # Data references (a MOV pointing at other files) stay off: only these bytes are read.
    options = {"enable_drefs": "0", "use_absolute_path": "0"} if fmt == _MOV else {}
    deadline = time.monotonic() + limits.time_budget_s
    try:
        container = av.open(io.BytesIO(data), mode="r", format=fmt, options=options)
    except av.error.FFmpegError as exc:
        raise VideoError("corrupt", f"the video cannot be read ({_reason(exc)})") from None
    try:
        stream = _picture_stream(container, limits)
        return _sample(container, stream, _covers(container), fmt, limits, deadline)
    except av.error.FFmpegError as exc:
        raise VideoError("corrupt", f"the video is corrupt or cut off ({_reason(exc)})") from None
    finally:
        container.close()


def _reason(exc: Exception) -> str:
    # FFmpeg's message without the (meaningless, in-memory) file name.
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


def _covers(container) -> list:
    """The cover pictures the file carries (FFmpeg's attached pictures): a player may show one as the video."""
    covers = [s for s in container.streams.video if s.disposition & ATTACHED_PIC]
    if len(covers) > MAX_COVERS:
        raise VideoError("unsupported-format", f"the video carries {len(covers)} cover pictures")
    return covers


def _picture_stream(container, limits: Limits):
    streams = [s for s in container.streams.video if not s.disposition & ATTACHED_PIC]
    if not streams:
        raise VideoError("no-video", "the file has no picture track")
    if len(streams) > 1:
        # A player may show any of them: one unchecked track could hide a face.
        raise VideoError("unsupported-format", "the video has more than one picture track")
    stream = streams[0]
    ctx = stream.codec_context
    # The codec, not the decoder FFmpeg picked for it (AV1 is decoded by "libdav1d").
    if _codec(ctx) not in VIDEO_CODECS:
        raise VideoError("unsupported-format", f"the video's picture codec ({_codec(ctx)}) is not one devices record")
    if ctx.width * ctx.height > limits.max_pixels:
        raise VideoError("too-large", f"the video's frames ({ctx.width} x {ctx.height}) exceed the size limit")
    declared = declared_duration(container, stream)
    if declared > limits.max_duration_s:
        raise VideoError("too-long", f"the video lasts {declared:.0f} s, over the {limits.max_duration_s:g} s limit")
    # One thread: the worker pool decides how many cores are busy.
    ctx.thread_type = "NONE"
    ctx.thread_count = 1
    # A decoder that meets damage stops with an error instead of hiding it.
    ctx.options = {"err_detect": "explode"}
    return stream


def _codec(ctx) -> str:
    return ctx.codec.canonical_name


def declared_duration(container, stream) -> float:
    """What the header says, in seconds (0 when it says nothing); a hint only, never trusted as a bound."""
    return max(_seconds(container.duration, 1e-6), _seconds(stream.duration, stream.time_base))


def _seconds(value, unit) -> float:
    if value is None or unit is None:
        return 0.0
    return float(value * unit)


def _thumbnail(frame) -> np.ndarray:
    return frame.to_ndarray(format="gray", width=THUMBNAIL[0], height=THUMBNAIL[1]).astype(np.int16)


def _upright(frame, limits: Limits) -> tuple[np.ndarray, int]:
    rotation = int(round(frame.rotation or 0)) % 360
    if rotation % 90:
        raise VideoError("unsupported-format", f"the video is turned by {rotation} degrees, not a quarter turn")
    scale = min(1.0, limits.keep_long_side / max(frame.width, frame.height))
    width, height = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
    pixels = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    # The display matrix turns the picture counter-clockwise by ``rotation``.
    return np.ascontiguousarray(np.rot90(pixels, k=rotation // 90)), rotation


def _compact(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _cover_frame(packet, limits: Limits) -> SampledFrame:
    """A cover picture (a whole JPEG or PNG in one packet) as one more frame to check."""
    try:
        with Image.open(io.BytesIO(bytes(packet))) as image:
            if image.width * image.height > limits.max_pixels:
                raise VideoError("too-large", f"the video's cover picture ({image.width} x {image.height}) exceeds "
                                              "the size limit")
            picture = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise VideoError("corrupt", f"the video's cover picture cannot be read ({type(exc).__name__})") from None
    picture.thumbnail((limits.keep_long_side, limits.keep_long_side))
    pixels = np.asarray(picture)
    return SampledFrame(0.0, "cover", (pixels.shape[1], pixels.shape[0]), _compact(pixels))


def _sample(container, stream, covers: list, fmt: str, limits: Limits, deadline: float) -> Sampled:
    kept: list[SampledFrame] = []
    # Checked like any frame: a picture a player may show in place of the video.
    cover_frames: list[SampledFrame] = []
    # Spread the regular frames over the declared length, leaving room for scene
    # changes; if the header lies, thinning (below) still keeps within the cap.
    regular = max(1, limits.max_frames - limits.max_scene_frames)
    interval = max(limits.sample_every_s, declared_duration(container, stream) / regular)
    next_sample = next_compare = start = last_time = None
    last_thumb = None
    walked = packets = scenes = 0
    rotation = 0
    for packet in container.demux(stream, *covers):
        if packet.stream is not stream:
            if packet.size and len(cover_frames) < len(covers):
                cover_frames.append(_cover_frame(packet, limits))
            continue
        packets += 1
        if packets > limits.max_decoded_frames + 16:
            raise VideoError("too-many-frames", "the video has more packets than the frame limit allows")
        for frame in packet.decode():
            walked += 1
            if walked > limits.max_decoded_frames:
                raise VideoError("too-many-frames", f"the video has more than {limits.max_decoded_frames} frames")
            if time.monotonic() > deadline:
                raise VideoError("too-slow", f"decoding the video took longer than {limits.time_budget_s:g} s")
            if frame.width * frame.height > limits.max_pixels:
                raise VideoError("too-large", f"a frame ({frame.width} x {frame.height}) exceeds the size limit")
            if frame.time is None:
                raise VideoError("corrupt", "a frame of the video has no timestamp")
            if start is None:
                start = next_sample = next_compare = frame.time
            elif frame.time <= last_time:
                # Frames that do not move forward in time cannot be sampled by time.
                raise VideoError("corrupt", "the video's timestamps do not move forward")
            last_time = frame.time
            at = frame.time - start
            if at > limits.max_duration_s:
                raise VideoError("too-long", f"the video runs past the {limits.max_duration_s:g} s limit")
            periodic = frame.time >= next_sample
            thumb = None
            if not periodic and scenes < limits.max_scene_frames and frame.time >= next_compare:
                next_compare = frame.time + SCENE_CHECK_EVERY_S
                thumb = _thumbnail(frame)
                if float(np.mean(np.abs(thumb - last_thumb))) <= limits.scene_threshold:
                    continue
                scenes += 1
            elif not periodic:
                continue
            pixels, rotation = _upright(frame, limits)
            last_thumb = thumb if thumb is not None else _thumbnail(frame)
            next_compare = frame.time + SCENE_CHECK_EVERY_S
            if periodic:
                next_sample = frame.time + interval
            kept.append(SampledFrame(at, "interval" if periodic else "scene",
                                     (pixels.shape[1], pixels.shape[0]), _compact(pixels)))
            del pixels
            if len(kept) > limits.max_frames:
                # Too many for the cap: keep every other regular sample, twice as far apart.
                kept, interval = _thin(kept), interval * 2
    if walked == 0:
        raise VideoError("corrupt", "the video has no frame that can be decoded")
    if len(cover_frames) < len(covers):
        raise VideoError("corrupt", "the video names a cover picture it does not carry")
    declared = stream.frames or 0
    if declared and walked < declared - MISSING_FRAMES_ALLOWED:
        raise VideoError("corrupt", f"the video stops early ({walked} of {declared} frames)")
    ctx = stream.codec_context
    return Sampled(FORMAT_NAMES[fmt], _codec(ctx), (ctx.width, ctx.height), rotation, float(last_time - start), walked,
                   tuple(kept + cover_frames))


def _thin(kept: list[SampledFrame]) -> list[SampledFrame]:
    out, regular = [], 0
    for frame in kept:
        if frame.reason == "interval":
            regular += 1
            if regular % 2 == 0:
                continue
        out.append(frame)
    return out
