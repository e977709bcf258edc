"""Clocks. Everything that asks "what time is it?" asks one of these, so tests can set the time.

``FileClock`` lets a test move the time of a running proxy process: it reads
an ISO time from a file (re-read when the file changes) and lets real time run
on from there. It is enabled only by ``dojoguard run --clock-file``, which is
for tests and staging and says so loudly when used.

``when`` says a time the way teachers are told it (a queued write's release,
the sending time of a held item), so the proxy and the hold store say it alike.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta, tzinfo
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


# A proxy started with --clock-file names its clock file here, in its data folder, while it
# runs, so that the `held` commands run against the same data stamp their records with the
# proxy's time, and the audit log stays in order in staging. The proxy never reads it.
POINTER = "staging-clock"


def publish(data_dir: str | Path, clock_file: str | Path | None) -> None:
    """Record which clock file the proxy uses (None: the real time; any pointer is removed)."""
    pointer = Path(data_dir) / POINTER
    if clock_file is None:
        pointer.unlink(missing_ok=True)
        return
    pointer.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = pointer.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(str(Path(clock_file).resolve()))
    os.replace(tmp, pointer)


def published(data_dir: str | Path) -> Path | None:
    """The clock file a proxy on ``data_dir`` reads its time from, or None when it uses the real time.

    A pointer that is not this user's own, owner-only file is ignored: it was
    not written by a proxy run as this service account.
    """
    pointer = Path(data_dir) / POINTER
    try:
        st = pointer.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        target = Path(pointer.read_text("utf-8").strip())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return target if target.is_file() else None


def when(at: datetime, tz: tzinfo | None) -> str:
    """'8.00am on Monday 30 November', in the school's time zone."""
    local = at.astimezone(tz) if tz else at
    hour = local.strftime("%I").lstrip("0") or "12"
    return f"{hour}.{local:%M}{local.strftime('%p').lower()} on {local:%A} {local.day} {local:%B}"


def minute(at: datetime, tz: tzinfo | None) -> str:
    """'4 Dec 2026 09:12 GMT', to the minute in the school's time zone (for people, not for parsing)."""
    local = at.astimezone(tz) if tz else at
    zone = local.tzname() or ""
    return f"{local.day} {local:%b %Y %H:%M} {zone}".rstrip()
