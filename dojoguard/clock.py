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
