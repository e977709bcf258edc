"""A spawn context that keeps the processes it starts, so that a stuck image worker can be ended.

``ProcessPoolExecutor`` launches its workers through the multiprocessing
context it is given, and offers no public way to reach them afterwards. A
stuck worker cannot be cancelled, only ended: the image checker gives each
pool one of these contexts and ends the processes it started.
"""

from __future__ import annotations

import multiprocessing.context
from multiprocessing.process import BaseProcess


class KeepingSpawnContext(multiprocessing.context.SpawnContext):
    """The ``spawn`` start method, keeping every process it starts in ``started``."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[BaseProcess] = []

    def Process(self, *args, **kwargs) -> BaseProcess:  # multiprocessing's name for it
        process = super().Process(*args, **kwargs)
        self.started.append(process)
        return process

    def kill_alive(self) -> None:
        """End every process it started that is still running (SIGKILL: a stuck one ignores anything gentler)."""
        for process in self.started:
            if process.is_alive():
                process.kill()
