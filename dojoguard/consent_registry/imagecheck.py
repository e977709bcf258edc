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
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dojoguard import media
from dojoguard.consent_registry import decoding, detection, faces, metadata, redaction, video, worker
from dojoguard.consent_registry.fairslots import REQUESTER, FairSlots
from dojoguard.consent_registry.registry import Audience, Registry, RegistryError
from dojoguard.consent_registry.replica import check_fresh
from dojoguard.consent_registry.spawning import KeepingSpawnContext
from dojoguard.rules.action import AttachmentKind, ImageFindings

# Decoding problems are "unreadable"; anything else that stops a check is an "error".
UNREADABLE_CODES = frozenset({"not-an-image", "corrupt", "too-large", "unsupported-format", "too-many-frames"})
WHOLE_SCHOOL_CHANNELS = frozenset({"school_story"})
# Video frames checked in one worker job (about 1 s each for a 1080p frame).
VIDEO_FRAMES_PER_JOB = 8


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
        detect_megapixels=float(images.get("detect_megapixels", faces.Settings.detect_megapixels)),
        threshold=float(images.get("detect_threshold", faces.Settings.threshold)),
        thorough=images.get("mode", "standard") == "thorough",
        tolerance=float(images.get("tolerance", 0.5)),
        max_pixels=int(images.get("max_megapixels", 64)) * 1_000_000,
    )


def sniff_kind(data: bytes, content_type: str | None) -> AttachmentKind:
    """Photo, video or other file (not checked), from the bytes first and the declared type second (``media``).

    Bytes that are no known format but claim ``image/...`` are a photo: the check reports them unreadable.
    """
    return media.kind_of(data, content_type) or AttachmentKind.FILE


def _failed(kind: AttachmentKind, message: str, *, unreadable: bool = False, fmt: str | None = None,
            gps: bool = False) -> ImageCheck:
    return ImageCheck(ImageFindings(unreadable=unreadable, error=message, gps_present=gps), fmt, kind, Layer.FAILED)


class ImageChecker:
    """Owns the worker pool and a read connection to the registry; ``close()`` when done."""

    def __init__(self, images_settings: dict, registry_path: str | Path | None, channel_purposes: dict,
                 *, workers: int | None = None, copy: bool = False):
        self.images = dict(images_settings)
        self.settings = settings_from(self.images)
        self.registry_path = Path(registry_path) if registry_path else None
        # The file is this proxy's copy of a trust's register (storage on PostgreSQL): it must say when it
        # was last confirmed, and be recent enough; a file without that record is not trusted.
        self.copy = copy
        self.channel_purposes = dict(channel_purposes)
        self.timeout = float(self.images.get("timeout_s", 30))
        # A video is many frames: its own, longer limit for all of its work (docs/images.md#videos).
        self.video_timeout = float(self.images.get("video_timeout_s", 120))
        self.video_limits = video.Limits.from_settings(self.images)
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
        # The context keeps the workers it starts, so that a stuck one can be ended (see spawning.py).
        self._pool_context = KeepingSpawnContext()
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._pool_context,
                                   initializer=worker.initialise, initargs=(self.decode_budget, self.memory_limit))
        # Start every worker now, so the first teacher's photo does not wait
        # for the face engine to load.
        for _ in range(self.workers):
            pool.submit(worker.ping)
        return pool

    def worker_pids(self) -> list[int]:
        """The process ids of the running image workers (for measuring their CPU and memory)."""
        return [p.pid for p in self._pool_context.started if p.is_alive()]

    def _replace_pool(self, broken: ProcessPoolExecutor) -> None:
        with self._pool_lock:
            if self._pool is not broken:
                return
            # A stuck worker cannot be cancelled: end its process so it frees
            # the core and the memory.
            self._pool_context.kill_alive()
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

    async def run(self, fn, *args, requester: str | None = None, deadline: float | None = None,
                  borrow: bool = False):
        """Run ``fn`` in a worker with the check timeout; a dead or stuck worker raises.

        ``requester`` (who asked; by default the current request's, see
        ``fairslots.REQUESTER``) decides whose turn it is when workers are busy.
        ``deadline`` (event-loop time; a video's): waiting for a worker and the
        job itself must both end by then, or ``TimeoutError``. ``borrow``: take
        an idle worker beyond the requester's share if nobody waits (see
        ``FairSlots.try_borrow``), else wait a turn as usual.
        """
        loop = asyncio.get_running_loop()
        slots = self._slots_for(loop)
        who = requester if requester is not None else REQUESTER.get()
        if borrow and slots.try_borrow(who):
            pass
        elif deadline is None:
            await slots.acquire(who)
        else:
            async with asyncio.timeout_at(deadline):
                await slots.acquire(who)
        try:
            return await self._in_worker(fn, *args, deadline=deadline)
        finally:
            slots.release(who)

    async def _in_worker(self, fn, *args, deadline: float | None = None):
        loop = asyncio.get_running_loop()
        limit = self.timeout if deadline is None else deadline - loop.time()
        if limit <= 0:
            raise TimeoutError
        pool = self._pool
        try:
            return await asyncio.wait_for(loop.run_in_executor(pool, fn, *args), limit)
        except (TimeoutError, BrokenProcessPool):
            await asyncio.to_thread(self._replace_pool, pool)
            raise

    async def analyse(self, data: bytes, allowed: np.ndarray | None, match_faces: bool,
                      *, requester: str | None = None) -> faces.Analysis:
        """One photo's analysis; its detection split over two workers when one is idle (detection.py)."""
        loop = asyncio.get_running_loop()
        who = requester if requester is not None else REQUESTER.get()
        slots = self._slots_for(loop)
        split = self.workers > 1 and await asyncio.to_thread(self._worth_splitting, data)
        async with slots.slot(who):
            if not (split and slots.try_borrow(who)):
                return await self._in_worker(worker.check, data, self.settings, allowed, match_faces, detection.ALL)
            try:
                parts = await asyncio.gather(
                    *(self._in_worker(worker.check, data, self.settings, allowed, match_faces, part)
                      for part in (detection.TOP, detection.REST)), return_exceptions=True)
            finally:
                slots.release(who)
        for part in parts:
            if isinstance(part, BaseException):
                raise part
        return faces.combine(list(parts))

    def _worth_splitting(self, data: bytes) -> bool:
        # The header only; a picture that cannot even be opened goes whole to
        # one worker, which reports why.
        try:
            size, frames = decoding.peek(data, max_pixels=self.settings.max_pixels)
        except Exception:  # noqa: BLE001 - any problem is the worker's to report
            return False
        return frames == 1 and detection.plan(size, self.settings.detect_megapixels).split

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
            # A proxy's copy of a trust's register must have been confirmed recently (replica.py).
            check_fresh(self._registry.database, required=self.copy)
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
            kind = sniff_kind(data, content_type)
            limit = self.video_timeout if kind is AttachmentKind.VIDEO else self.timeout
            return _failed(kind, f"the {kind.value} check took longer than {limit:g} s")
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
            return await self._video(data, audience, allowed, registry_problem)
        # Faces are matched, and people whose faces were not found are looked
        # for, unless the whole audience is known to be permitted: with the
        # registry unavailable too, so that such a person fails the check
        # closed instead of passing as "no face".
        match_faces = audience is None or not audience.all_permitted
        analysis = await self.analyse(data, allowed, match_faces)
        return self._findings(analysis, audience, registry_problem)

    async def _video(self, data: bytes, audience: Audience | None, allowed: np.ndarray | None,
                     registry_problem: str | None) -> ImageCheck:
        """Sample the video's frames in a worker, then run the photo check on them (docs/images.md#videos).

        ``images.video_timeout_s`` bounds the whole check, waiting for workers
        included (the teacher's request is open meanwhile); past it the check fails closed.
        """
        kind = AttachmentKind.VIDEO
        deadline = asyncio.get_running_loop().time() + self.video_timeout
        sampled = await self.run(worker.sample_video, data, self.video_limits, deadline=deadline)
        if isinstance(sampled, video.Failure):
            return _failed(kind, sampled.message, unreadable=sampled.code in video.UNREADABLE_CODES,
                           fmt=None)
        match_faces = audience is None or not audience.all_permitted  # as for a photo
        # A few frames a job, in lanes: as many as one requester may hold workers
        # (see _slots_for; one on a two-core machine), each taking its turns so
        # other teachers' photos go between them, and one more lane that runs
        # only on a worker nobody else is waiting for (borrowed).
        frames = sampled.frames
        chunks = [frames[i:i + VIDEO_FRAMES_PER_JOB] for i in range(0, len(frames), VIDEO_FRAMES_PER_JOB)]

        async def lane(share, borrow: bool) -> list:
            # One job at a time per lane; the second lane borrows an idle worker
            # while nobody else waits, else takes its turn like any job.
            return [await self.run(worker.check_frames, chunk, self.settings, allowed, match_faces,
                                   deadline=deadline, borrow=borrow) for chunk in share]

        count = max(1, self.workers - 1) + (1 if self.workers > 1 else 0)
        lanes = [chunks[i::count] for i in range(count)]
        jobs = [asyncio.create_task(lane(share, borrow=self.workers > 1 and i == count - 1))
                for i, share in enumerate(lanes)]
        try:
            results = await asyncio.gather(*jobs)
        except BaseException:
            # One job failed (or the check was cancelled): the others' answers cannot help, stop waiting for them.
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            raise
        return self._video_findings([a for done in results for r in done for a in r], sampled, audience,
                                    registry_problem)

    def _video_findings(self, analyses: list[faces.Analysis], sampled: video.Sampled, audience: Audience | None,
                        registry_problem: str | None) -> ImageCheck:
        kind, fmt = AttachmentKind.VIDEO, sampled.format
        known = bool(audience and audience.is_known)
        frames = len(analyses)
        if frames != len(sampled.frames):
            return _failed(kind, "not every sampled frame was checked", fmt=fmt)
        failed = next((a for a in analyses if a.error_code is not None), None)
        if failed is not None:
            return _failed(kind, f"a video frame could not be checked: {failed.error or failed.error_code}", fmt=fmt)
        found = sum(len(a.boxes) for a in analyses)
        unverified = sum(a.people_unverified for a in analyses)
        if not found and not unverified:
            return ImageCheck(ImageFindings(frames_checked=frames), fmt, kind, Layer.VIDEO, (), known)
        if registry_problem is not None or audience is None:
            return ImageCheck(ImageFindings(faces_found=found, people_unverified=unverified, frames_checked=frames,
                                            error=registry_problem or "no audience"), fmt, kind, Layer.FAILED,
                              (), known)
        if audience.all_permitted:
            return ImageCheck(ImageFindings(faces_found=found, faces_permitted=found, frames_checked=frames),
                              fmt, kind, Layer.AUDIENCE_PERMITTED, (), known)
        if any(len(a.permitted or ()) != len(a.boxes) for a in analyses):
            return _failed(kind, "faces found but not all could be matched", fmt=fmt)
        permitted = sum(sum(a.permitted or ()) for a in analyses)
        return ImageCheck(ImageFindings(faces_found=found, faces_permitted=permitted,
                                        faces_not_permitted=found - permitted, faces_unidentified=found - permitted,
                                        people_unverified=unverified, frames_checked=frames),
                          fmt, kind, Layer.VIDEO, (), known)

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
        not_permitted = tuple(b for b, ok in zip(boxes, permitted, strict=True) if not ok)
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
