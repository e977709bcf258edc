"""Image workers bounded by memory as well as pixels, and huge batches that cannot starve other photos.

Real worker processes and real pictures: 7900 x 7900 PNGs (62 MP, under the
64 MP cap), the kind that took a worker to 855 MB, and 6000 x 6000 ones (36 MP).
"""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from PIL import Image

from dojoguard.consent_registry import decoding, worker
from dojoguard.consent_registry.imagecheck import ImageChecker

PURPOSES = {"class_story": "class_story"}
SETTINGS = {"tolerance": 0.5, "max_megapixels": 64, "timeout_s": 60,
            "mode": "standard", "max_decode_mb": 330, "worker_memory_mb": 600}
CEILING_MB = 600  # docs/images.md


def png(side: int, mode: str) -> bytes:
    colour = {"RGB": (200, 180, 160), "RGBA": (200, 180, 160, 200), "L": 128}[mode]
    out = io.BytesIO()
    Image.new(mode, (side, side), colour).save(out, "PNG", compress_level=1)
    return out.getvalue()


@pytest.fixture(scope="module")
def huge_rgb() -> bytes:
    return png(6000, "RGB")


@pytest.fixture(scope="module")
def huge_rgba() -> bytes:
    return png(7900, "RGBA")


def test_a_picture_whose_decode_needs_too_much_memory_is_refused_from_its_header(huge_rgba):
    """A 62 MP transparent PNG is refused as too-large before a pixel is decoded (in well under a second)."""
    started = time.perf_counter()
    with pytest.raises(decoding.DecodeError) as refused:
        decoding.decode(huge_rgba, max_pixels=64_000_000, long_side=1600, memory_limit=330 * 2**20)
    assert refused.value.code == "too-large" and "MB" in str(refused.value)
    assert time.perf_counter() - started < 1.0


def test_a_refused_picture_is_never_decoded_in_the_worker(huge_rgba):
    """The refusal comes before the pixels: a worker refusing a 62 MP transparent PNG grows by a few MB at most."""
    checker = ImageChecker(SETTINGS, None, PURPOSES, workers=1)
    try:
        async def scenario():
            idle = await checker.run(worker.memory_status)
            refused = await checker.run(worker.check, huge_rgba, checker.settings, None, False)
            return idle, refused, await checker.run(worker.memory_status)

        idle, refused, after = asyncio.run(scenario())
    finally:
        checker.close()
    assert refused.error_code == "too-large"
    assert after["VmHWM"] - idle["VmHWM"] < 30, (idle, after)


def test_the_budget_cannot_be_walked_around_with_a_jpeg_claiming_to_be_small():
    """The estimate is taken from what the decoder will really build: a JPEG's reduced decode, the real mode."""
    out = io.BytesIO()
    Image.new("RGB", (7000, 7000), (10, 20, 30)).save(out, "JPEG", quality=50)
    data = out.getvalue()
    image = decoding.open_image(data, max_pixels=64_000_000)
    full = decoding.decode_cost(image, len(data))
    # Decoded at 1/4 scale for a 1600 px detector: a fraction of the full-size cost, and accepted.
    decoded = decoding.decode(data, max_pixels=64_000_000, long_side=1600, memory_limit=full // 6)
    assert max(decoded.frames[0].pixels.shape[:2]) <= 1600
    with pytest.raises(decoding.DecodeError):
        decoding.decode(data, max_pixels=64_000_000, long_side=0, memory_limit=full // 6)  # no reduction asked


def test_a_worker_stays_under_the_documented_ceiling_with_huge_pictures(huge_rgb, huge_rgba):
    """After an ordinary 16 MP photo, three 36 MP PNGs (accepted, not failed by the kernel limit), a 62 MP
    one and a transparent one (both refused from the header) leave a worker's peak under 600 MB."""
    checker = ImageChecker(SETTINGS, None, PURPOSES, workers=1)
    try:
        async def scenario():
            ordinary = await checker.run(worker.check, png(4000, "RGB"), checker.settings, None, False)
            assert ordinary.error_code is None
            results = [await checker.run(worker.check, huge_rgb, checker.settings, None, False) for _ in range(3)]
            refused = await checker.run(worker.check, huge_rgba, checker.settings, None, False)
            too_big = await checker.run(worker.check, png(7900, "RGB"), checker.settings, None, False)
            assert too_big.error_code == "too-large"
            return results, refused, await checker.run(worker.memory_status)

        results, refused, status = asyncio.run(scenario())
    finally:
        checker.close()
    assert all(r.error_code is None for r in results)
    assert refused.error_code == "too-large"
    assert status["VmHWM"] < CEILING_MB, status


def test_the_kernel_limit_catches_what_the_estimate_misses(huge_rgba):
    """With the decode budget switched off, worker_memory_mb still stops the picture: that check fails
    closed, the worker's peak stays near its limit, and the next photo is checked normally."""
    settings = dict(SETTINGS, max_decode_mb=100_000, worker_memory_mb=450)
    checker = ImageChecker(settings, None, PURPOSES, workers=1)
    try:
        async def scenario():
            failed = await checker.run(worker.check, huge_rgba, checker.settings, None, False)
            status = await checker.run(worker.memory_status)
            small = await checker.run(worker.check, png(800, "RGB"), checker.settings, None, False)
            return failed, status, small

        failed, status, small = asyncio.run(scenario())
    finally:
        checker.close()
    assert failed.error_code is not None
    assert status["VmHWM"] < 450 + 60, status
    assert small.error_code is None


def test_a_batch_of_huge_pictures_does_not_starve_another_teachers_photo(huge_rgb):
    """One teacher's four 36 MP PNGs and another's small photo sent just after: with one worker, the
    small photo is checked after at most one of the huge ones, not after all four."""
    checker = ImageChecker(dict(SETTINGS, workers=1), None, PURPOSES, workers=1)
    small = png(800, "RGB")
    try:
        async def scenario():
            await checker.run(worker.ping)
            finished: list[str] = []

            async def one(who: str, data: bytes):
                await checker.run(worker.check, data, checker.settings, None, False, requester=who)
                finished.append(who)

            batch = [asyncio.create_task(one("teacher:a", huge_rgb)) for _ in range(4)]
            await asyncio.sleep(0.2)
            started = time.perf_counter()
            await one("teacher:b", small)
            waited = time.perf_counter() - started
            await asyncio.gather(*batch)
            return finished, waited

        finished, waited = asyncio.run(scenario())
    finally:
        checker.close()
    assert finished.index("teacher:b") <= 1, finished
    assert finished.count("teacher:a") == 4
