"""What an MIS import costs for a whole school, and what weighing each consent against the office's costs.

A SIMS export of a large primary (``--pupils``, 1,500 by default) is imported
into a fresh registry, then imported again (nothing changes), then again after
the office recorded a withdrawal by hand for one pupil in ten (each of those
is a conflict, kept and reported). Each is timed as the median of several
runs, and compared with the baseline measured in the same run: a dry run of
the first import (the same reading, checking and writing, rolled back), so
the ratios say what the later imports cost beside it on this machine.

    python benchmarks/import_bench.py [--pupils 1500] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dojoguard import config
from dojoguard.clock import FixedClock
from dojoguard.consent_registry import importer
from dojoguard.consent_registry.registry import BIOMETRIC, Registry, State

SETTINGS = config.load()["consent"]["import"]
CLOCK = FixedClock(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))


def export(folder: Path, pupils: int) -> Path:
    rows = ["Adno,UPN,Legal Forename,Legal Surname,Year,Reg,Parental Consent"]
    codes = ['"P, SS, BIO"', "P", '"P, SS"', "", "SS"]
    for n in range(pupils):
        rows.append(f"{10000 + n},,Pupil{n},Family{n % 97},{n % 7},{n % 7}A,{codes[n % len(codes)]}")
    path = folder / "sims.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def timed(registry: Registry, path: Path, **options) -> tuple[float, importer.Report]:
    start = time.perf_counter()
    report = importer.import_file(registry, path, "sims", SETTINGS, **options)
    return time.perf_counter() - start, report


def one_run(folder: Path, pupils: int) -> tuple[list[float], int]:
    """The four timings of one fresh registry, and the conflicts the last import kept."""
    path = export(folder, pupils)
    with Registry.open(folder / "registry.sqlite", clock=CLOCK) as registry:
        times = [timed(registry, path, dry_run=True)[0], timed(registry, path)[0], timed(registry, path)[0]]
        for person in registry.people()[::10]:
            registry.set_consent(person.id, BIOMETRIC, State.REFUSED, source="parent", informed_by="office")
        seconds, report = timed(registry, path)
    return [*times, seconds], len(getattr(report, "conflicts", ()))  # (an older importer has no conflicts)


NAMES = ("dry run of the first import (baseline)", "first import", "re-import, nothing changed",
         "re-import after hand withdrawals (1 in 10 a conflict)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            times, conflicts = one_run(Path(folder), args.pupils)
            runs.append(times)
    medians = [statistics.median(column) for column in zip(*runs, strict=True)]
    print(f"{args.pupils} pupils, median of {args.runs} runs; {conflicts} conflicts kept in the last import")
    for name, median in zip(NAMES, medians, strict=True):
        print(f"  {name:<56} {median * 1000:8.0f} ms  {median / args.pupils * 1e6:6.0f} us/pupil  "
              f"x{median / medians[0]:.2f}")


if __name__ == "__main__":
    main()
