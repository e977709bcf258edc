"""One demo day, played once for the module's tests: the real proxy, the stand-in and the real commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dojoguard.audit.log import AuditLog
from dojoguard.demo.day import Day, StepResult
from dojoguard.demo.school import TIMEZONE, demo_day
from dojoguard.demo.world import World
from dojoguard.standin import Received


@dataclass(frozen=True)
class Played:
    folder: Path
    day: date
    steps: dict[str, StepResult]
    received: tuple[Received, ...]
    proxy_log: str
    report: Path
    records: tuple[dict, ...]
    progress: tuple[str, ...]


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> Played:
    folder = tmp_path_factory.mktemp("demo-day")
    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    day = demo_day(today)
    progress: list[str] = []
    with World(folder, day, progress.append) as world:
        steps = {s.name: s for s in Day(world).steps()}
        report = folder / "report.html"
        world.dojoguard("audit", "report", "--from", today.isoformat(), "--to", day.isoformat(),
                        "--format", "html", "-o", str(report))
        received = tuple(world.standin.received)
        proxy_log = world.proxy.log()
    with AuditLog.open(folder / "data" / "audit.sqlite") as log:
        records = tuple(r.to_dict() for r in log.records())
    return Played(folder, day, steps, received, proxy_log, report, records, tuple(progress))
