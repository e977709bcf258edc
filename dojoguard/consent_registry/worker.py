"""The code an image-check worker process runs: load the face engine once, then analyse pictures.

Workers are started by ``ImageChecker`` with the "spawn" method, so nothing
of the proxy's threads or open files is inherited, and each holds its own
detector (dlib's is not thread-safe).
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import time

import numpy as np

from dojoguard.consent_registry import decoding, faces, people, video

# How far below the proxy's own priority the image workers run (os.nice increment, 0-19)
# where the scheduler has no idle class (see _lower_priority).
WORKER_NICENESS = 10
# How often a worker checks that the process that started it is still there.
PARENT_CHECK_S = 2.0


def initialise(decode_budget_bytes: int | None = None, memory_limit_bytes: int = 0) -> None:
    """Runs once per worker. Raising here breaks the pool, so every check fails closed.

    ``decode_budget_bytes``: the most one picture's decode may need (see
    ``decoding.decode_cost``); ``memory_limit_bytes``: this worker's ceiling,
    enforced by the kernel once the face engine is loaded (0: none).
    """
    _watch_parent(os.getppid())
    # A Ctrl-C reaches the whole process group; the proxy stops its workers itself
    # (closing the pool), so a worker waiting for work need not print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One core per worker: the pool, not the libraries, decides parallelism.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    # A teacher's text message must not queue behind a photo analysis on a busy machine:
    # the workers yield the CPU to the proxy's event loop whenever both want it.
    _lower_priority()
    decoding.register_formats()
    if decode_budget_bytes is not None:
        decoding.set_memory_budget(decode_budget_bytes)
    _return_freed_memory()
    faces.detector()
    # Libraries mapped now, before the address-space ceiling below is set from what is
    # already reserved: OpenCV alone maps about 300 MB it never touches.
    video.preload()
    people.preload()
    if memory_limit_bytes:
        limit_address_space(memory_limit_bytes)


# glibc's mallopt parameter for the size above which allocations are mapped
# (and given back to the system when freed).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_libc = None


def _return_freed_memory() -> None:
    """Give a check's big buffers back to the system when they are freed, not keep them in the heap.

    glibc raises its mapping threshold after a large buffer is freed, so
    later ones of that size come from the heap and stay resident: after one
    12-megapixel check a worker held about 70 MB more than it needed, which
    the next large picture then lacked under the worker's ceiling. A fixed
    threshold keeps large buffers mapped; ``trim`` after each check returns
    the rest.
    """
    global _libc
    try:
        import ctypes

        _libc = ctypes.CDLL("libc.so.6")
        _libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        # One heap for the process: each thread that allocates (OpenCV's, dlib's) would
        # otherwise reserve its own 64 MB arena, which counts against the address-space
        # ceiling below although it is never used.
        _libc.mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        _libc = None  # not glibc: the decode budget and the ceiling still apply


def trim() -> None:
    if _libc is not None:
        try:
            _libc.malloc_trim(0)
        except AttributeError:
            pass


def _watch_parent(parent: int) -> None:
    """Exit when the proxy is gone (killed with SIGKILL, say).

    Workers wait on a queue whose write end their siblings also hold, so the
    parent's death alone never wakes them: without this, each crash of the
    proxy would leave its workers behind, a couple of hundred megabytes each.
    """
    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="dojoguard-parent-watch", daemon=True).start()


def _lower_priority() -> None:
    """Run in Linux's idle scheduling class: only on CPU time nothing else of normal priority wants.

    A nice value alone was not enough. Measured with 8 clients uploading
    12 MP photos (``benchmarks/proxy_bench.py``), text messages' p99 was 2.3 to
    2.5 times its idle value with the workers at nice 10, and 1.45 to 1.65
    times in the idle class: a niced worker still holds a core for its time
    slice, and the scheduler places a waking request on the busy core behind
    it, whereas a core running only idle-class work counts as free. The cost
    is that on a machine busy to the last cycle a photo waits, and past
    ``images.timeout_s`` its check fails closed; a text message never waits
    for a photo.
    """
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass  # a platform without nice: the worker runs at normal priority, checks still complete
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass  # refused (a container's seccomp policy, say): the nice value above still applies


def limit_address_space(memory_limit_bytes: int) -> int:
    """Let this worker grow by no more than the resident memory left under ``memory_limit_bytes``.

    The budget in ``decoding`` keeps a picture's decode within bounds from
    its header; this is the backstop for whatever that estimate misses
    (a decoder's own buffers, a library's). The kernel limits address
    space, not resident memory, and a loaded worker has reserved far more
    address space than it uses (about 410 MB reserved, 170 MB resident), so
    the limit is what is reserved now plus what may still become resident.
    An allocation past it fails (a MemoryError, which fails that one check
    closed) instead of the machine running out of memory. Returns the limit set.
    """
    status = memory_status()
    size = int(status.get("VmSize", 0) * 1024 * 1024)
    resident = int(status.get("VmRSS", 0) * 1024 * 1024)
    if not size:
        return 0
    limit = size + max(0, memory_limit_bytes - resident)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        return 0  # not allowed here (a container's limits): the decode budget still applies
    return limit


def check(data: bytes, settings: faces.Settings, allowed: np.ndarray | None, match_faces: bool,
          part: str = "all") -> faces.Analysis:
    """One picture's analysis, or one part of its detection (see detection.py)."""
    try:
        return faces.analyse(data, settings, allowed, match_faces, part)
    finally:
        trim()


def sample_video(data: bytes, limits: video.Limits) -> video.Sampled | video.Failure:
    """The frames of a video to check (compressed, see video.py), or why it cannot be checked."""
    try:
        return video.sample(data, limits)
    except video.VideoError as exc:
        return video.Failure(exc.code, str(exc))
    except MemoryError:
        return video.Failure("too-large", "decoding the video needed more memory than a worker may use")


def check_frames(frames: tuple[video.SampledFrame, ...], settings: faces.Settings, allowed: np.ndarray | None,
                 match_faces: bool) -> list[faces.Analysis]:
    """The photo check on each of some video frames (one Analysis each; errors come back as values)."""
    results = []
    for frame in frames:
        try:
            pixels = frame.rgb()
        except (OSError, MemoryError) as exc:
            results.append(faces.Analysis(None, False, error_code="engine", error=f"a video frame was lost: {exc}"))
            continue
        results.append(faces.analyse_pixels(pixels, settings, allowed, match_faces))
        del pixels
    trim()
    return results


def ping() -> int:
    return os.getpid()


def memory_status() -> dict[str, float]:
    """This worker's memory figures from /proc (VmHWM, VmRSS, VmSize, VmData), in megabytes."""
    found: dict[str, float] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmHWM", "VmRSS", "VmSize", "VmData"):
                    found[name] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return found


def peak_rss_mb() -> float:
    """This worker's peak resident memory so far, in megabytes.

    VmHWM belongs to this process's own memory map. ru_maxrss is not used
    where VmHWM exists: Linux carries it across fork and exec, so a worker
    started by a large parent would report the parent's size.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
