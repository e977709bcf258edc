"""Clocks. Everything that asks "what time is it?" asks one of these, so tests can set the time.

``FileClock`` lets a test move the time of a running proxy process: it reads
an ISO time from a file (re-read when the file changes) and lets real time run
on from there. It is enabled only by ``dojoguard run --clock-file``, which is
for tests and staging and says so loudly when used.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

class Clock(Protocol):
    def now(self) -> datetime:
        """An aware datetime (UTC)."""
        ...

class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

class FixedClock:
    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("a clock's time needs a UTC offset")
        self.at = at

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at

class FileClock:
    """Time read from a file holding an ISO timestamp, advancing with real time after each write."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._base = datetime.now(UTC)
        self._read_at = time.monotonic()

    def now(self) -> datetime:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                text = self.path.read_text("utf-8").strip()
                at = datetime.fromisoformat(text)
                if at.tzinfo is None:
                    raise ValueError(f"{self.path}: the time needs a UTC offset")
                self._base, self._read_at, self._stamp = at.astimezone(UTC), time.monotonic(), stamp
        except FileNotFoundError:
            pass

        return self._base + timedelta(seconds=time.monotonic() - self._read_at)

    @staticmethod
    def write(path: str | Path, at: datetime) -> None:
        """Set the time seen by every FileClock on ``path`` (atomically)."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(at.isoformat(), "utf-8")
        os.replace(tmp, path)


# A proxy started with --clock-file names its clock file here, in its data folder, so that the
# commands run against the same data (`held approve`, `exempt grant`...) stamp their records
# with the proxy's time, and the audit log stays in order in staging.
POINTER = "staging-clock"


def publish(data_dir: str | Path, clock_file: str | Path | None) -> None:
    """Record which clock file the proxy uses (None: the real time; any pointer is removed)."""
    pointer = Path(data_dir) / POINTER
    if clock_file is None:
        pointer.unlink(missing_ok=True)
        return
    pointer.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(str(Path(clock_file).resolve()), "utf-8")
    os.replace(tmp, pointer)


def published(data_dir: str | Path) -> Path | None:
    """The clock file a proxy on ``data_dir`` reads its time from, or None when it uses the real time."""
    try:
        target = Path((Path(data_dir) / POINTER).read_text("utf-8").strip())
    except (FileNotFoundError, NotADirectoryError):
        return None
    return target if target.is_file() else None
