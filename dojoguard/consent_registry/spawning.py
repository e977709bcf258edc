"""A spawn context that keeps the processes it starts, so that a stuck image worker can be ended.

``ProcessPoolExecutor`` launches its workers through the multiprocessing
context it is given, and offers no public way to reach them afterwards. A
stuck worker cannot be cancelled, only ended: the image checker gives each
pool one of these contexts and ends the processes it started.

A pool may be starting a worker at the moment its workers are ended (a
submit from another thread grows the pool). Such a process was created
before ``kill_alive`` but starts after it, so ``kill_alive`` alone would miss
it and leave it running for ever beside a broken pool: once a context has
ended its processes, every process it starts later is ended as it starts.
"""

from __future__ import annotations

import multiprocessing.context
import threading
from multiprocessing.process import BaseProcess


class _KeptProcess(multiprocessing.context.SpawnProcess):
    """A spawn process that is ended as soon as it starts if its context has already ended the others."""

    def start(self) -> None:
        context = self.__dict__.get("_keeper")
        if context is None:
            return super().start()
        with context._lock:
            super().start()
            if context.ending:
                self.kill()

    def __getstate__(self):
        # The process object is pickled to the child when it is spawned; the
        # context (a lock, the other processes) stays in the parent.
        state = dict(self.__dict__)
        state.pop("_keeper", None)
        return state


class KeepingSpawnContext(multiprocessing.context.SpawnContext):
    """The ``spawn`` start method, keeping every process it starts in ``started``."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[BaseProcess] = []
        self.ending = False
        self._lock = threading.Lock()

    def Process(self, *args, **kwargs) -> BaseProcess:  # multiprocessing's name for it
        process = _KeptProcess(*args, **kwargs)
        process._keeper = self
        self.started.append(process)
        return process

    def kill_alive(self) -> None:
        """End every process it started that is still running, and any it starts from now on.

        SIGKILL: a stuck worker ignores anything gentler.
        """
        with self._lock:
            self.ending = True
            for process in self.started:
                if process.is_alive():
                    process.kill()
