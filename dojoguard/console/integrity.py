"""The audit log's integrity as the console shows it: verified in the background, never while a page waits.

A thread of the console process runs the same verification as ``audit
verify`` and the report (the chain, every retention purge, the newest
checkpoints) at start and every ``EVERY``; pages read the last result.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

EVERY = timedelta(minutes=15)


@dataclass(frozen=True)
class Result:
    at: datetime
    ok: bool
    records: int
    detail: str
    seconds: float


class Verifier:
    def __init__(self, config, clock, open_log):
        self.config, self.clock, self._open_log = config, clock, open_log
        self.latest: Result | None = None
        self._started = False
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def ensure_running(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._loop, name="console-verify", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def run_once(self) -> Result:
        from dojoguard.audit.report import integrity_detail, verify_log

        started = time.perf_counter()
        cfg = self.config
        try:
            checked = verify_log(self._open_log(), cfg.path("audit", "checkpoint_dir"),
                              cfg.path("audit", "checkpoint_publish_dir"), cfg["audit"]["retention_days"],
                              self.clock.now())
            result = Result(self.clock.now(), checked.is_ok, checked.chain.records, integrity_detail(checked),
                            time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - a check that cannot be completed is shown as failed
            result = Result(self.clock.now(), False, 0, f"could not be verified: {exc}", time.perf_counter() - started)
        self.latest = result
        return result

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(EVERY.total_seconds())
