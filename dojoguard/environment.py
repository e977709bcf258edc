"""The environment a command runs in: settings, clock and output streams, in one object.

Commands receive it instead of reaching for globals, so tests can give any
command a frozen clock or a temporary data folder without monkeypatching.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
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
    # The settings as loaded, and from which path: a command that names another file loads that one.
    _loaded: tuple[Path | None, config_module.Config] | None = field(default=None, init=False, repr=False,
                                                                      compare=False)

    @property
    def config(self) -> config_module.Config:
        """Loaded on first use, and again if ``config_path`` changed; raises ``FileProblems`` when the file is wrong."""
        if self._loaded is None or self._loaded[0] != self.config_path:
            self._loaded = (self.config_path, config_module.load(self.config_path))
        return self._loaded[1]

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
