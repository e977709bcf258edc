"""glibc malloc settings that keep the proxy's memory flat (measured by benchmarks/soak_bench.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dojoguard.proxy import heap

GLIBC = sys.platform.startswith("linux") and heap._glibc() is not None


@pytest.mark.skipif(not GLIBC, reason="malloc tuning applies to glibc only")
def test_tuning_and_trimming_are_taken_by_glibc():
    assert heap.tune() is True
    assert heap.trim() in (True, False)  # True when there were free pages to give back


@pytest.mark.skipif(not GLIBC, reason="malloc tuning applies to glibc only")
def test_large_freed_bodies_go_back_to_the_system_once_tuned():
    """After tune(), a freed 4 MB body (a photo upload) leaves resident memory where it was: with
    glibc's default, the threshold rises after the first free and later bodies stay in the heap."""
    code = textwrap.dedent("""
        import sys
        from dojoguard.proxy import heap

        def rss_kb():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

        if sys.argv[1] == "tuned":
            heap.tune()
        keep = []
        for i in range(40):
            body = bytearray(4 * 1024 * 1024 + i)   # a photo body, touched
            body[::4096] = b"x" * len(body[::4096])
            keep.append(bytearray(200))             # a small object allocated after it
            del body
        if sys.argv[1] == "tuned":
            heap.trim()
        print(rss_kb())
    """)

    def resident(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    tuned, default = resident("tuned"), resident("default")
    assert tuned < default - 2 * 1024, (tuned, default)  # at least one 4 MB body less held


def test_the_environment_switch_leaves_malloc_alone():
    code = "from dojoguard.proxy import heap; print(heap.tune(), heap.trim())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"DOJOGUARD_MALLOC_TUNING": "off", "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["False", "False"]


def test_the_threshold_is_well_above_asyncios_socket_read_buffer():
    """asyncio reads every socket into a fresh buffer of max_size and shrinks it; a threshold at or
    just above that size would map and unmap memory on every read (two of each per message write)."""
    from asyncio.selector_events import _SelectorSocketTransport

    assert heap.MMAP_THRESHOLD_BYTES >= 2 * _SelectorSocketTransport.max_size
