"""Short real videos built in code from pictures, for trying and testing the video check.

Encoded with PyAV (H.264 through libx264 when the installed FFmpeg has it,
MPEG-4 Part 2 otherwise), so that the check reads the same kind of file a
phone makes, not a stand-in. Only the small source pictures are stored.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
from PIL import Image


def codec() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def encode(frames: Iterable[np.ndarray], *, fps: int = 25, container: str = "mp4", codec_name: str | None = None,
           rotation: int | None = None) -> bytes:
    """RGB frames (all one size, even width and height) as a video file; ``rotation`` tags it as a phone would.

    ``rotation``: degrees a player turns the picture counter-clockwise to show
    it upright (a phone held upright records a landscape picture and -90).
    """
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as c:
        stream = None
        for pixels in frames:
            if stream is None:
                stream = c.add_stream(codec_name or codec(), rate=fps)
                stream.height, stream.width = pixels.shape[:2]
                stream.pix_fmt = "yuv420p"
                if stream.codec_context.name in ("libx264", "h264"):
                    stream.options = {"preset": "veryfast", "crf": "23"}
                if rotation is not None:
                    stream.set_display_rotation(rotation)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")):
                c.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                c.mux(packet)
    return out.getvalue()


def fit(image: Image.Image, size: tuple[int, int], background=(120, 130, 140)) -> np.ndarray:
    """``image`` scaled to fit inside ``size`` (width, height), centred on a plain background."""
    frame = Image.new("RGB", size, background)
    picture = image.convert("RGB")
    factor = min(size[0] / picture.width, size[1] / picture.height)
    picture = picture.resize((max(1, round(picture.width * factor)), max(1, round(picture.height * factor))),
                             Image.Resampling.LANCZOS)
    frame.paste(picture, ((size[0] - picture.width) // 2, (size[1] - picture.height) // 2))
    return np.asarray(frame)


def still(image: Image.Image, seconds: float, *, size: tuple[int, int] = (640, 360), fps: int = 25):
    """Frames of ``image`` held still, with a little sensor noise so that no two frames are the same."""
    pixels = fit(image, size)
    rng = np.random.default_rng(0)
    for _ in range(round(seconds * fps)):
        noise = rng.integers(-2, 3, size=pixels.shape, dtype=np.int16)
        yield np.clip(pixels.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def pan(image: Image.Image, seconds: float, *, size: tuple[int, int] = (1920, 1080), fps: int = 25,
        zoom: float = 1.25):
    """A slow camera pan across ``image`` (scaled to ``zoom`` times the frame), left to right and back."""
    canvas = fit(image, (round(size[0] * zoom) // 2 * 2, round(size[1] * zoom) // 2 * 2))
    spare_x, spare_y = canvas.shape[1] - size[0], canvas.shape[0] - size[1]
    count = round(seconds * fps)
    for i in range(count):
        phase = 1 - abs(2 * i / max(1, count - 1) - 1)  # 0 -> 1 -> 0
        x, y = round(spare_x * phase), round(spare_y * phase)
        yield canvas[y:y + size[1], x:x + size[0]]
