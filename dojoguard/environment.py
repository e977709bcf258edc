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
        """Loaded on first use; raises ``FileProblems`` when the file is wrong.

        When the proxy on this data folder reads its time from a clock file
        (staging), the command's clock follows the same file, so every record
        in the audit log is stamped by one clock.
        """
        loaded = config_module.load(self.config_path)
        staged = clocks.published(loaded.data_dir)
        if staged is not None and type(self.clock) is SystemClock:
            self.clock = clocks.FileClock(staged)
            print(f"Note: the proxy on this data folder reads its time from {staged} (staging); "
                  "so does this command.", file=self.stderr)
        return loaded
