"""Safe decoding of uploaded pictures into the RGB pixels a face detector can use.

Uploads are hostile input: a few hundred bytes can declare a 100,000 x
100,000 image, a file can stop half way, or claim to be a JPEG and be
something else. Every such case raises ``DecodeError`` with a stable code,
which the image check reports as "unreadable" (fail closed). The pixel cap is
checked from the header, before any pixel is decoded.

Pixels alone do not bound memory: a 7900 x 7900 PNG is under a 64 MP cap,
yet Pillow holds it in 250 MB (four bytes a pixel for RGB), and converting
a transparent one to RGB at full size made four more copies (a worker
reached 855 MB). So the memory a decode will need is also worked out from
the header (width x height x bytes a pixel in Pillow's storage, after a
JPEG's reduced-size decoding is chosen, times the copies the steps make)
and a picture over ``memory_budget`` bytes is refused before decoding. And
a frame is scaled down to the detector's size first, in its own colour
mode, and only then turned and converted, so the copies are small ones.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageSequence

# The formats a teacher's device plausibly uploads as a photo. MPO is how
# Pillow names JPEGs with extra pictures (iPhone gain maps, stereo pairs).
PHOTO_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "WEBP", "HEIF", "AVIF", "TIFF", "BMP"})
# Extra pictures in an MPO file are derived from the first (gain maps,
# thumbnails): only the first is checked, and redaction writes only it.
SINGLE_PICTURE_FORMATS = frozenset({"MPO"})

_registered = False


class DecodeError(Exception):
    """A picture that cannot be decoded safely. ``code`` is stable, the message is for people."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Frame:
    """One picture ready for detection, and how to map its pixels back to the original."""

    pixels: np.ndarray  # RGB (or grey, when asked for), uint8, C-contiguous (dlib silently misbehaves otherwise)
    scale: float        # original pixels (after EXIF orientation) per processing pixel
    size: tuple[int, int]  # original (width, height) after EXIF orientation


@dataclass(frozen=True)
class Decoded:
    format: str
    frames: tuple[Frame, ...]
    gps_present: bool


def register_formats() -> None:
    """Teach Pillow HEIC/HEIF (iPhone and iPad photos); idempotent."""
    global _registered
    if not _registered:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _registered = True


# Bytes a pixel takes in Pillow's storage: one for L/P/1, two for 16-bit
# grey, four for everything else (RGB is stored as RGBX).
_ONE_BYTE_MODES = frozenset({"1", "L", "P"})
_TWO_BYTE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
# The decode for detection, when a process sets no other (see ``set_memory_budget``).
DEFAULT_MEMORY_BUDGET = 330 * 1024 * 1024
_memory_budget = DEFAULT_MEMORY_BUDGET


def set_memory_budget(limit_bytes: int) -> None:
    """The most memory one decode for detection may need in this process (set once per image worker)."""
    global _memory_budget
    _memory_budget = int(limit_bytes)


def memory_budget() -> int:
    return _memory_budget


def bytes_per_pixel(mode: str) -> int:
    if mode in _ONE_BYTE_MODES:
        return 1
    if mode in _TWO_BYTE_MODES:
        return 2
    return 4


def decode_cost(image: Image.Image, data_size: int = 0, frame_pixels: int = 0) -> int:
    """Bytes decoding ``image`` for detection needs at its peak, from the header alone.

    The decoded frame itself; a second full copy where a step cannot work
    in place (premultiplying alpha to scale, 16-bit and float conversion, a
    HEIF decoder's own buffer, every frame of an animation being copied);
    and the compressed bytes, held meanwhile.
    """
    width, height = image.size
    full = width * height * bytes_per_pixel(image.mode)
    copies = 1.0
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        copies = 2.5  # scaled with premultiplied alpha: a premultiplied copy, and the decoder's rows
    elif image.mode not in ("RGB", "L", "P", "1", "CMYK", "YCbCr") or image.format in ("HEIF", "AVIF"):
        copies = 2.0
    if getattr(image, "n_frames", 1) > 1 and image.format not in SINGLE_PICTURE_FORMATS:
        copies = max(copies, 2.0)
    # Scaling first reduces by a whole factor into a new image (a quarter of the size or
    # less), and the decoder keeps working buffers: measured, about a third more in all.
    # A picture larger than the frame kept for detection is scaled into a new
    # image (four bytes a pixel) and copied into an array (three) while its
    # full-size decode still exists: ``frame_pixels`` is that frame's size.
    return int(full * (copies + 0.35)) + data_size + frame_pixels * 7


def peek(data: bytes, *, max_pixels: int) -> tuple[tuple[int, int], int]:
    """A picture's stored (width, height) and its number of frames, from the header alone.

    Orientation is not applied: reading EXIF would load a PNG's pixels.
    """
    image = open_image(data, max_pixels=max_pixels)
    try:
        frames = 1 if image.format in SINGLE_PICTURE_FORMATS else getattr(image, "n_frames", 1)
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise DecodeError("corrupt", f"the picture is truncated or damaged ({exc})") from None
    return image.size, frames


def open_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Open (header only) and refuse anything over the pixel cap or not a photo format."""
    register_formats()
    # Never decode a cut-off file with grey filler, whatever another library
    # in this process set (face_recognition switches it on at import).
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise DecodeError("too-large", f"image dimensions exceed the safety limit ({exc})") from None
    except Image.DecompressionBombWarning as exc:
        raise DecodeError("too-large", f"image dimensions exceed the safety limit ({exc})") from None
    except Image.UnidentifiedImageError:
        raise DecodeError("not-an-image", "the data is not a picture in a known format") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DecodeError("corrupt", f"the picture's header is damaged ({exc})") from None
    if image.format not in PHOTO_FORMATS:
        raise DecodeError("unsupported-format", f"{image.format} pictures are not accepted")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise DecodeError("corrupt", "the picture declares no pixels")
    if width * height > max_pixels:
        raise DecodeError("too-large", f"{width}x{height} is over the limit of {max_pixels / 1e6:.0f} megapixels")
    return image


def has_gps(image: Image.Image) -> bool:
    """Whether EXIF (or XMP) carries a location. Unparseable EXIF counts as location present."""
    try:
        exif = image.getexif()
        if ExifTags.IFD.GPSInfo in exif:
            gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
            if gps or exif.get(ExifTags.IFD.GPSInfo):
                return True
    except Exception:  # noqa: BLE001 - damaged metadata: assume the worst
        return True
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    return b"GPSLatitude" in xmp or b"GPSLongitude" in xmp


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: CMYK, 16-bit, float, palette, with or without alpha."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if top > 255:
            values = values * (255.0 / (65535.0 if top <= 65535 else top))
        grey = np.clip(values, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        # Transparent areas shown on white, as ClassDojo's own pages would.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _draft_target(image: Image.Image, long_side: int, grey: bool = False) -> None:
    # Pillow's draft picks the smallest JPEG DCT scale (1/2, 1/4, 1/8) whose
    # result is still at least the requested size: far cheaper than a full decode.
    # In grey, a JPEG's colour channels are not decoded at all.
    if image.format not in ("JPEG", "MPO"):
        return
    width, height = image.size
    factor = long_side / max(width, height) if long_side > 0 else 1.0
    if factor < 1 or grey:
        factor = min(factor, 1.0)
        image.draft("L" if grey else "RGB", (math.ceil(width * factor), math.ceil(height * factor)))


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # noqa: BLE001 - damaged metadata: use the stored orientation
        return 1


def _shrink(image: Image.Image, long_side: int) -> Image.Image:
    """The frame scaled to ``long_side`` in its own mode, so every later copy is a small one."""
    if long_side <= 0 or max(image.size) <= long_side:
        return image
    factor = long_side / max(image.size)
    new_size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    try:
        return image.resize(new_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    except ValueError:
        return image  # a mode Pillow cannot scale (rare 16-bit kinds): converted first, scaled after


def prepare(image: Image.Image, *, long_side: int, original_size: tuple[int, int], release: bool = False,
            grey: bool = False) -> Frame:
    """Scale, orient and convert one loaded frame to at most ``long_side`` pixels on its long side.

    ``release``: free ``image``'s pixels as soon as the scaled copy exists
    (the caller needs it no more), so a huge picture and its copies are
    not all held at once.
    """
    turn = _TRANSPOSE.get(orientation(image))
    small = _shrink(image, long_side)
    if release and small is not image:
        image.close()
    oriented = small.transpose(turn) if turn is not None else small
    if oriented is not small:
        small.close()
    rgb = oriented if grey and oriented.mode == "L" else to_rgb(oriented)
    if grey and rgb.mode != "L":
        rgb = rgb.convert("L")
    if rgb is not oriented:
        oriented.close()
    width, height = original_size
    if long_side > 0 and max(rgb.size) > long_side:
        factor = long_side / max(rgb.size)
        new_size = (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor)))
        rgb = rgb.resize(new_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    scale = max(width, height) / max(rgb.size)
    return Frame(np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), scale, (width, height))


def oriented_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - damaged metadata: use the stored size
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _load_or_raise(image: Image.Image) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as exc:
        raise DecodeError("too-large", f"image dimensions exceed the safety limit ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise DecodeError("corrupt", f"the picture is truncated or damaged ({exc})") from None


def decode(data: bytes, *, max_pixels: int, long_side: int | Callable[[tuple[int, int]], int],
           max_frames: int = 20, memory_limit: int | None = None, grey: bool = False) -> Decoded:
    """Decode every frame of a picture for detection, or raise ``DecodeError``.

    ``long_side``: the longest side to decode at (never above the original),
    or a function of the picture's stored (width, height) giving it. ``grey``:
    frames in grey (a JPEG's colour is then never decoded).
    ``memory_limit`` (bytes) defaults to this process's ``memory_budget()``; 0 means none.
    """
    image = open_image(data, max_pixels=max_pixels)
    # The detection plan depends on the area only, which orientation does not
    # change; image.size is read from the header (reading EXIF would load a PNG).
    if callable(long_side):
        long_side = long_side(image.size)
    fmt = image.format
    try:
        n_frames = 1 if fmt in SINGLE_PICTURE_FORMATS else getattr(image, "n_frames", 1)
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise DecodeError("corrupt", f"the picture is truncated or damaged ({exc})") from None
    if n_frames > max_frames:
        raise DecodeError("too-many-frames", f"an animation of {n_frames} frames is more than the "
                                             f"{max_frames} that can be checked")
    jpeg = fmt in ("JPEG", "MPO")
    if jpeg:
        size = oriented_size(image)  # before draft(), which changes the size the image reports
        if n_frames == 1:
            _draft_target(image, long_side, grey)  # a JPEG then decodes at the reduced size: the estimate uses it
    # Before any pixel is decoded (a PNG's are, below, to read its metadata).
    budget = memory_budget() if memory_limit is None else memory_limit
    width, height = image.size
    shrink = long_side / max(width, height) if 0 < long_side < max(width, height) else 0.0
    cost = decode_cost(image, len(data), int(width * height * shrink * shrink))
    if budget and cost > budget:
        raise DecodeError("too-large", f"decoding this {image.size[0]}x{image.size[1]} {image.mode} picture needs "
                                       f"about {cost // 2**20} MB, over the limit of {budget // 2**20} MB")
    if not jpeg:
        # Reading a PNG's metadata loads its pixels, and the metadata readers below
        # swallow errors: a damaged file would then be left half-decoded with filler.
        # Loading first makes the damage raise here. (JPEGs are loaded after draft().)
        _load_or_raise(image)
        size = oriented_size(image)
    gps = has_gps(image)
    frames = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if n_frames == 1:
                image.load()
                frames.append(prepare(image, long_side=long_side, original_size=size, release=True, grey=grey))
            else:
                for frame in ImageSequence.Iterator(image):
                    frame.load()
                    frames.append(prepare(frame.copy(), long_side=long_side, original_size=size, grey=grey))
                    if len(frames) >= n_frames:
                        break
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError("too-large", f"image dimensions exceed the safety limit ({exc})") from None
    except MemoryError:
        raise DecodeError("too-large", "the picture needs more memory than is allowed") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise DecodeError("corrupt", f"the picture is truncated or damaged ({exc})") from None
    return Decoded(fmt, tuple(frames), gps)
