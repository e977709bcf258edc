"""The environment a command runs in: settings, clock and output streams, in one object.

Commands receive it instead of reaching for globals, so tests can give any
command a frozen clock or a temporary data folder without monkeypatching.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO

from dojoguard import config as config_module
from dojoguard import clock as clocks
from dojoguard.clock import Clock, SystemClock


@dataclass
class Environment:
    config_path: Path | None = None
    clock: Clock = field(default_factory=SystemClock)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

    @cached_property
    def config(self) -> config_module.Config:
        """Loaded on first use; raises ``FileProblems`` when the file is wrong."""
        return config_module.load(self.config_path)

    def follow_proxy_clock(self) -> None:
        """Use the clock of the proxy on this data folder, when it reads its time from a file (staging).

        Only the `held` commands call this, so that their records sit in time
        order with the proxy's. The proxy itself never follows a pointer, and
        one the service account did not write alone (owner-only) is ignored.
        """
        staged = clocks.published(self.config.data_dir)
        if staged is not None and type(self.clock) is SystemClock:
            self.clock = clocks.FileClock(staged)
            print(f"Note: the proxy on this data folder reads its time from {staged} (staging); "
                  "so does this command.", file=self.stderr)
