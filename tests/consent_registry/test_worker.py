"""The image-check worker processes: they give way to the proxy when the machine is busy."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from dojoguard.consent_registry import worker
from dojoguard.consent_registry.imagecheck import ImageChecker

PURPOSES = {"class_story": "class_story", "school_story": "school_story", "portfolio": "portfolio",
            "message": "class_story"}
SETTINGS = {"tolerance": 0.5, "max_megapixels": 64, "timeout_s": 30,
            "mode": "standard"}


def niceness(pid: int) -> int:
    # Field 19 of /proc/<pid>/stat (counting from 1) is the nice value; the name in brackets may hold spaces.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_workers_run_below_the_proxys_priority():
    """A worker runs in the idle scheduling class, so a photo analysis never delays a text message's turn.

    Its nice value is also WORKER_NICENESS below its parent's: what applies where there is no idle class.
    """
    checker = ImageChecker(SETTINGS, None, PURPOSES, workers=1)
    try:
        pid = asyncio.run(checker.run(worker.ping))
        assert pid != os.getpid()
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        assert os.sched_getscheduler(os.getpid()) != os.SCHED_IDLE  # the proxy itself stays in the normal class
        assert niceness(pid) == min(19, os.nice(0) + worker.WORKER_NICENESS)
    finally:
        checker.close()


def test_engine_build_says_whether_dlib_links_blas():
    """The benchmark and IT staff can see which dlib build checks photos (BLAS makes templates ~5x faster)."""
    import dlib

    from dojoguard.consent_registry import faces

    described = faces.engine_build()
    assert described.startswith(f"dlib {dlib.__version__}, ")
    assert ("with BLAS" in described) == bool(dlib.DLIB_USE_BLAS)


def test_workers_give_blas_one_thread_and_leave_ctrl_c_to_the_proxy():
    """Each worker is one core's worth of checking (the pool decides parallelism, not OpenBLAS), and a
    Ctrl-C to the process group is left to the proxy, which stops its workers itself."""
    import signal

    checker = ImageChecker(SETTINGS, None, PURPOSES, workers=1)
    try:
        threads = asyncio.run(checker.run(os.getenv, "OPENBLAS_NUM_THREADS"))
        sigint = asyncio.run(checker.run(signal.getsignal, signal.SIGINT))
    finally:
        checker.close()
    assert threads == "1"
    assert sigint == signal.SIG_IGN


def test_workers_exit_when_the_proxy_is_killed(tmp_path):
    """A proxy killed outright (SIGKILL, the OOM killer) leaves no image worker behind."""
    import subprocess
    import sys
    import time

    code = (
        "import asyncio, os, sys\n"
        "from dojoguard.consent_registry import worker\n"
        "from dojoguard.consent_registry.imagecheck import ImageChecker\n"
        f"checker = ImageChecker({SETTINGS!r}, None, {PURPOSES!r}, workers=1)\n"
        "print(asyncio.run(checker.run(worker.ping)), flush=True)\n"
        "os._exit(9)  # no clean shutdown of the pool, as after SIGKILL\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    pid = int(out.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + worker.PARENT_CHECK_S * 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
