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
