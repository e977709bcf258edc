"""How often the proxy signs a checkpoint: so that at most a minute or a hundred records are unprotected.

Records after the newest published checkpoint are protected by the hash
chain alone, which whoever can write the database can recompute. So the
proxy signs and publishes a checkpoint as soon as ``every_records`` records
have been committed since the last one, and at the latest ``every_s``
seconds after it when anything new was written. A quiet log is left alone:
a checkpoint is not owed for nothing but the previous one's own
``checkpoint.written`` (and ``checkpoint.unpublished``) records, so an idle
proxy writes nothing.

``note`` is called on every commit, possibly on the event loop, and only
compares two numbers; ``run`` does the work and must run on a thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.checkpoint import Checkpoint, PublishError

log_ = structlog.get_logger("dojoguard.audit")

EVERY_RECORDS = 100
EVERY_S = 60.0


class Cadence:
    """The proxy's frequent checkpoints for one audit log."""

    def __init__(self, log, key_path: Path, folder: Path, publish_to: Sequence[Path] = (), *,
                 every_records: int = EVERY_RECORDS, every_s: float = EVERY_S):
        self.log = log
        self.key_path = Path(key_path)
        self.folder = Path(folder)
        self.publish_to = tuple(Path(p) for p in publish_to)
        self.every_records = every_records
        self.every_s = every_s
        self._covered = last_covered(log)
        self._woken = False
        self._wake: Callable[[], None] | None = None
        self._running = threading.Lock()
        self._unpublished: Path | None = None

    @property
    def covered(self) -> int:
        """The last record the newest checkpoint made here covers."""
        return self._covered

    def wake_with(self, wake: Callable[[], None] | None) -> None:
        """``wake()`` is called (from the committing thread) once ``every_records`` are uncovered."""
        self._wake = wake

    def note(self, seq: int) -> None:
        """A record was committed: ask for a checkpoint when the tail has reached its limit."""
        if not self._woken and seq - self._covered >= self.every_records and self._wake is not None:
            self._woken = True
            self._wake()

    def is_owed(self) -> bool:
        return _has_uncovered(self.log, self._covered)

    def run(self) -> Checkpoint | None:
        """Sign, keep and publish a checkpoint if one is owed (blocking); returns it, or None."""
        with self._running:
            self._woken = False
            if not _has_uncovered(self.log, self._covered):
                self._retry_publish()
                return None
            try:
                checkpoint, path = checkpoints.write_checkpoint(
                    self.log, self.key_path, self.folder, self.publish_to,
                    report_unpublished=self._unpublished is None)  # recorded once an outage, not every minute
            except PublishError as exc:
                self._covered = exc.checkpoint.seq
                self._unpublished = exc.path
                log_.error("checkpoint.unpublished", seq=exc.checkpoint.seq, error=str(exc)[:300])
                return exc.checkpoint
            self._covered = checkpoint.seq
            self._unpublished = None
            return checkpoint

    def _retry_publish(self) -> None:
        """Nothing new since a checkpoint that could not be published: try publishing that one again."""
        path = self._unpublished
        if path is None:
            return
        public = self.folder / checkpoints.PUBLIC_KEY_NAME
        try:
            for destination in self.publish_to:
                checkpoints.publish(path, public, destination)
        except OSError as exc:
            log_.warning("checkpoint.still_unpublished", file=path.name, error=str(exc)[:300])
            return
        self._unpublished = None
        log_.info("checkpoint.published_late", file=path.name)

    def wait_idle(self) -> None:
        """Return once no checkpoint is being made (for a clean shutdown)."""
        with self._running:
            pass


def last_covered(log) -> int:
    """The record the newest ``checkpoint.written`` in the log says it covered (0: none yet)."""
    with log.lock:
        row = log.connection.execute(
            "SELECT body FROM records WHERE type = 'checkpoint.written' ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return 0
    try:
        return int(json.loads(row[0])["seq"])
    except (ValueError, KeyError, TypeError):
        return 0  # a damaged record: checkpoint at once rather than trust it


def _has_uncovered(log, covered: int) -> bool:
    """A record after ``covered`` other than the checkpoints' own bookkeeping (a short range scan)."""
    with log.lock:
        row = log.connection.execute(
            "SELECT 1 FROM records WHERE seq > ? AND type NOT IN ('checkpoint.written', 'checkpoint.unpublished') "
            "LIMIT 1", (covered,)).fetchone()
    return row is not None
