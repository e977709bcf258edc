"""Videos that carry a cover picture (FFmpeg's "attached picture"), as edited videos and galleries' files may."""

from __future__ import annotations

import io

import av
from PIL import Image

from dojoguard.consent_registry import sample_videos

SIZE = (640, 360)


def with_cover(picture: Image.Image | bytes, shots, *, covers: int = 1, fmt: str = "JPEG") -> bytes:
    """An MP4 of ``shots`` ((picture, seconds) each) that also carries ``covers`` cover pictures.

    ``picture`` is saved as ``fmt`` (JPEG or PNG), or used as it is when
    given as bytes (a cover that is not a picture).
    """
    if isinstance(picture, Image.Image):
        saved = io.BytesIO()
        picture.convert("RGB").save(saved, fmt)
        picture = saved.getvalue()
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as c:
        main = c.add_stream(sample_videos.codec(), rate=25)
        main.width, main.height, main.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        cover_streams = []
        for _ in range(covers):
            cover = c.add_stream("png" if fmt == "PNG" else "mjpeg")
            cover.width, cover.height = 64, 48
            cover.pix_fmt = "rgb24" if fmt == "PNG" else "yuvj420p"
            cover.disposition = av.stream.Disposition.attached_pic
            cover_streams.append(cover)
        for shot, seconds in shots:
            for pixels in sample_videos.still(shot, seconds, size=SIZE):
                c.mux(main.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        c.mux(main.encode())
        for cover in cover_streams:
            packet = av.Packet(picture)
            packet.stream, packet.pts, packet.dts = cover, 0, 0
            c.mux(packet)
    return out.getvalue()
