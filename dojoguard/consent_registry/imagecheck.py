"""The image check: may this picture go to this channel and audience?

Layered, so that face recognition is the last resort (see docs/images.md):

1. no face in the picture: nothing to check;
2. every pupil in the audience is permitted for the channel: allowed without
   identifying anyone;
3. otherwise each face is matched against the allow-list (people permitted for
   the channel with written biometric consent and no objection); any face not
   matched is reported as not permitted and the rules decide.

``check`` never raises: any failure comes back as findings with ``unreadable``
or ``error`` set, which the rules treat as a check not completed. The CPU work
runs in a bounded process pool; the event loop only waits on futures.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dojoguard.consent_registry import decoding, faces, metadata, redaction, worker
from dojoguard.consent_registry.fairslots import REQUESTER, FairSlots
from dojoguard.consent_registry.registry import Audience, Registry, RegistryError
from dojoguard.rules.action import AttachmentKind, ImageFindings

# Decoding problems are "unreadable"; anything else that stops a check is an "error".
UNREADABLE_CODES = frozenset({"not-an-image", "corrupt", "too-large", "unsupported-format", "too-many-frames"})
WHOLE_SCHOOL_CHANNELS = frozenset({"school_story"})
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_PHOTO_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


class Layer:
    """Which layer of the check settled the answer (shown by `image check`)."""

    NO_FACE = "no-face"
    AUDIENCE_PERMITTED = "audience-permitted"
    MATCHED = "matched"
    NOT_A_PICTURE = "not-a-picture"
    VIDEO = "video"
    FAILED = "failed"


@dataclass(frozen=True)
class ImageCheck:
    findings: ImageFindings
    format: str | None
    kind: AttachmentKind
    layer: str
    # Every face, [top, right, bottom, left] in original pixels after EXIF orientation.
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    audience_known: bool = False


def settings_from(images: dict) -> faces.Settings:
    return faces.Settings(
        processing_size=int(images.get("processing_size", 1600)),
        upsample=int(images.get("upsample", 1)),
        thorough=images.get("mode", "standard") == "thorough",
        tolerance=float(images.get("tolerance", 0.5)),
        max_pixels=int(images.get("max_megapixels", 64)) * 1_000_000,
    )


def sniff_kind(data: bytes, content_type: str | None) -> AttachmentKind:
    """Photo, video or other file, from the bytes first and the declared type second."""
    head = data[:16]
    if head[4:8] == b"ftyp":
        return AttachmentKind.PHOTO if head[8:12] in _HEIF_BRANDS else AttachmentKind.VIDEO
    if head.startswith(b"\x1aE\xdf\xa3") or (head.startswith(b"RIFF") and head[8:12] == b"AVI "):
        return AttachmentKind.VIDEO
    if head.startswith(_PHOTO_MAGIC) or (head.startswith(b"RIFF") and head[8:12] == b"WEBP"):
        return AttachmentKind.PHOTO
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared.startswith("video/"):
        return AttachmentKind.VIDEO
    if declared.startswith("image/"):
        return AttachmentKind.PHOTO  # claims to be a picture: it will be reported unreadable
    return AttachmentKind.FILE


def _failed(kind: AttachmentKind, message: str, *, unreadable: bool = False, fmt: str | None = None,
            gps: bool = False) -> ImageCheck:
    return ImageCheck(ImageFindings(unreadable=unreadable, error=message, gps_present=gps), fmt, kind, Layer.FAILED)


class ImageChecker:
    """Owns the worker pool and a read connection to the registry; ``close()`` when done."""

    def __init__(self, images_settings: dict, registry_path: str | Path | None, channel_purposes: dict,
                 *, workers: int | None = None):
        self.images = dict(images_settings)
        self.settings = settings_from(self.images)
        self.registry_path = Path(registry_path) if registry_path else None
        self.channel_purposes = dict(channel_purposes)
        self.timeout = float(self.images.get("timeout_s", 30))
        count = workers if workers is not None else int(self.images.get("workers", 0))
        self.workers = count or os.cpu_count() or 1
        self._registry: Registry | None = None
        self._registry_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        # Per worker: the most one picture's decode may need, and the worker's ceiling (docs/images.md).
        self.decode_budget = int(self.images.get("max_decode_mb", decoding.DEFAULT_MEMORY_BUDGET // 2**20)) * 2**20
        self.memory_limit = int(self.images.get("worker_memory_mb", 0)) * 2**20
        self._slots: tuple[asyncio.AbstractEventLoop, FairSlots] | None = None
        self._pool = self._new_pool()

    # -- the pool -----------------------------------------------------------

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=worker.initialise, initargs=(self.decode_budget, self.memory_limit))
        # Start every worker now, so the first teacher's photo does not wait
        # for the face engine to load.
        for _ in range(self.workers):
            pool.submit(worker.ping)
        return pool

    def _replace_pool(self, broken: ProcessPoolExecutor) -> None:
        with self._pool_lock:
            if self._pool is not broken:
                return
            # A stuck worker cannot be cancelled: end its process so it frees
            # the core and the memory. (The executor has no public way to.)
            for process in list(getattr(broken, "_processes", {}).values()):
                if process.is_alive():
                    process.kill()
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def _slots_for(self, loop: asyncio.AbstractEventLoop) -> FairSlots:
        # One job per worker at a time: the timeout then measures the job
        # itself, not time spent queueing behind other teachers' photos, so a
        # busy moment never kills a worker that is making progress. Slots go
        # round the requesters in turn, and with two workers or more one
        # requester never holds them all (see fairslots.py).
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, FairSlots(self.workers, per_requester=max(1, self.workers - 1)))
        return self._slots[1]

    async def run(self, fn, *args, requester: str | None = None):
        """Run ``fn`` in a worker with the check timeout; a dead or stuck worker raises.

        ``requester`` (who asked; by default the current request's, see
        ``fairslots.REQUESTER``) decides whose turn it is when workers are busy.
        """
        loop = asyncio.get_running_loop()
        async with self._slots_for(loop).slot(requester if requester is not None else REQUESTER.get()):
            pool = self._pool
            try:
                return await asyncio.wait_for(loop.run_in_executor(pool, fn, *args), self.timeout)
            except (TimeoutError, BrokenProcessPool):
                await asyncio.to_thread(self._replace_pool, pool)
                raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    # -- the registry -------------------------------------------------------

    def _audience_and_allow_list(self, purpose: str, class_id: str | None,
                                 whole_school: bool) -> tuple[Audience, np.ndarray | None]:
        if self.registry_path is None:
            raise RegistryError("no consent registry is configured")
        with self._registry_lock:
            if self._registry is None:
                self._registry = Registry.open(self.registry_path, create=False)
            audience = self._registry.audience(purpose, class_id=class_id, whole_school=whole_school)
            if audience.all_permitted:
                return audience, None
            allowed = self._registry.allow_list(purpose)
        return audience, (np.stack([a.template for a in allowed]) if allowed else np.zeros((0, 128)))

    # -- the check ----------------------------------------------------------

    async def check(self, data: bytes, *, channel: str, class_id: str | None,
                    content_type: str | None) -> ImageCheck:
        """Check one upload for ``channel`` (and ``class_id``); never raises."""
        try:
            return await self._check(data, channel=str(channel), class_id=class_id, content_type=content_type)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return _failed(sniff_kind(data, content_type), f"the image check took longer than {self.timeout:g} s")
        except BrokenProcessPool:
            return _failed(sniff_kind(data, content_type), "the image-check worker stopped unexpectedly")
        except Exception as exc:  # noqa: BLE001 - the contract: any failure is a failed check
            return _failed(AttachmentKind.PHOTO, f"the image check failed: {type(exc).__name__}: {exc}")

    async def _check(self, data: bytes, *, channel: str, class_id: str | None,
                     content_type: str | None) -> ImageCheck:
        kind = sniff_kind(data, content_type)
        if kind is AttachmentKind.FILE:
            return ImageCheck(ImageFindings(), None, kind, Layer.NOT_A_PICTURE)
        purpose = self.channel_purposes.get(channel)
        audience, allowed, registry_problem = None, None, None
        if purpose is None:
            registry_problem = f"no consent purpose is set for channel {channel!r} (consent.channel_purposes)"
        else:
            try:
                audience, allowed = await asyncio.to_thread(
                    self._audience_and_allow_list, purpose, class_id, channel in WHOLE_SCHOOL_CHANNELS)
            except Exception as exc:  # noqa: BLE001 - registry unavailable: fail closed if a face needs it
                registry_problem = f"the consent registry is unavailable: {exc}"
        if kind is AttachmentKind.VIDEO:
            return self._video(audience)
        # Faces are matched, and people whose faces were not found are looked
        # for, unless the whole audience is known to be permitted: with the
        # registry unavailable too, so that such a person fails the check
        # closed instead of passing as "no face".
        match_faces = audience is None or not audience.all_permitted
        analysis: faces.Analysis = await self.run(worker.check, data, self.settings, allowed, match_faces)
        return self._findings(analysis, audience, registry_problem)

    def _video(self, audience: Audience | None) -> ImageCheck:
        # Videos cannot be checked frame by frame yet. They are reported as
        # videos with no faces counted, so the policy's video rule decides
        # (the shipped policy holds every video for a leader); the layer says
        # whether the whole audience was permitted anyway.
        if audience is not None and audience.all_permitted:
            return ImageCheck(ImageFindings(), None, AttachmentKind.VIDEO, Layer.AUDIENCE_PERMITTED,
                              audience_known=True)
        return ImageCheck(ImageFindings(), None, AttachmentKind.VIDEO, Layer.VIDEO,
                          audience_known=bool(audience and audience.is_known))

    def _findings(self, analysis: faces.Analysis, audience: Audience | None,
                  registry_problem: str | None) -> ImageCheck:
        kind = AttachmentKind.PHOTO
        if analysis.error_code is not None:
            return _failed(kind, analysis.error or analysis.error_code, fmt=analysis.format,
                           unreadable=analysis.error_code in UNREADABLE_CODES, gps=analysis.gps_present)
        boxes = analysis.boxes
        known = bool(audience and audience.is_known)
        # Someone whose face could not be checked (people.py) means the photo is not "no face".
        unverified = analysis.people_unverified
        if not boxes and not unverified:
            return ImageCheck(ImageFindings(gps_present=analysis.gps_present), analysis.format, kind,
                              Layer.NO_FACE, (), known)
        if registry_problem is not None or audience is None:
            return ImageCheck(ImageFindings(faces_found=len(boxes), people_unverified=unverified,
                                            gps_present=analysis.gps_present,
                                            error=registry_problem or "no audience"),
                              analysis.format, kind, Layer.FAILED, boxes, known)
        if audience.all_permitted:
            return ImageCheck(ImageFindings(faces_found=len(boxes), faces_permitted=len(boxes),
                                            gps_present=analysis.gps_present),
                              analysis.format, kind, Layer.AUDIENCE_PERMITTED, boxes, known)
        permitted = analysis.permitted or ()
        if len(permitted) != len(boxes):
            return _failed(kind, "faces found but not all could be matched", fmt=analysis.format,
                           gps=analysis.gps_present)
        not_permitted = tuple(b for b, ok in zip(boxes, permitted) if not ok)
        return ImageCheck(ImageFindings(faces_found=len(boxes), faces_permitted=len(boxes) - len(not_permitted),
                                        faces_not_permitted=len(not_permitted),
                                        faces_unidentified=len(not_permitted), people_unverified=unverified,
                                        gps_present=analysis.gps_present, boxes_not_permitted=not_permitted),
                          analysis.format, kind, Layer.MATCHED, boxes, known)

    # -- changing the picture -----------------------------------------------

    def redact(self, data: bytes, check: ImageCheck) -> bytes:
        """Blur the faces not permitted and strip GPS, in the original format; raises ``RedactionError``."""
        return redaction.redact(data, check.findings, max_pixels=self.settings.max_pixels)

    def strip_gps(self, data: bytes) -> bytes:
        """The photo without location tags; raises ``metadata.MetadataError`` when that cannot be done."""
        return metadata.strip_gps(data)
