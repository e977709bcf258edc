"""How fast the leaders' console answers over a school year of decisions, beside reading the same rows.

    .venv/bin/python benchmarks/console_bench.py            # a year: 228,000 decisions (a minute to build)
    .venv/bin/python benchmarks/console_bench.py --quick    # a tenth of that, while developing

The year is built by the audit benchmark's own writer (40 teachers x 30 actions
a day x 190 school days, sealed by the real write path). The console is the
real Flask application with a logged-in headteacher, asked through Flask's
test client (no network), after its background integrity check has finished.
Prints, as the median of several requests:
- the overview page (this week's figures, per teacher and per rule, and the
  12-week trend; target <= 500 ms), beside reading and parsing the 12 weeks'
  rows it counts; and the first overview after the console starts, which
  counts every day (later ones count only days whose records changed);
- decision searches (target <= 300 ms): this week, one teacher over the whole
  year, one rule and outcome over a term; each beside reading and parsing the
  rows of its date range.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dojoguard import config as config_module
from dojoguard.audit.log import AuditLog
from dojoguard.audit.report import period_bounds
from dojoguard.clock import FixedClock

LONDON = ZoneInfo("Europe/London")
# A Wednesday afternoon in the last full week of the built year (190 school days from 1 September 2025).
TODAY = datetime(2026, 5, 20, 15, 0, tzinfo=UTC)
BASE = "https://console.bench"
REPEATS = 7


def _audit_bench():
    spec = importlib.util.spec_from_file_location("audit_bench", Path(__file__).with_name("audit_bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_rows(path: Path, first: date, last: date) -> float:
    """Seconds to read and parse every record of the local days [first, last]: the floor for any page over them."""
    start, end = period_bounds(first, last, LONDON)
    with AuditLog.open(path, emit_decisions=False) as log:
        started = time.perf_counter()
        with log.snapshot() as conn:
            for row in log.rows(start=start, end=end, conn=conn):
                json.loads(row[4])
        return time.perf_counter() - started


def timed(client, path: str) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        answer = client.get(path, base_url=BASE)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, (path, answer.status_code)
        size = len(answer.data)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of a year, for development")
    args = parser.parse_args()
    teachers, per_day = (40, 3) if args.quick else (40, 30)
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        year = _audit_bench().build_year(folder, teachers, per_day)
        with AuditLog.open(year, emit_decisions=False) as log:
            decisions = log.count() - 1
        print(f"console benchmark: {decisions:,} decisions ({teachers} teachers x {per_day} a day x 190 days, built "
              f"in {time.perf_counter() - started:.0f} s)")
        settings = folder / "config.yaml"
        settings.write_text(json.dumps({"data_dir": str(folder / "data"), "audit": {"database": str(year)}}))
        cfg = config_module.load(settings)

        from dojoguard.console.app import create_app

        app = create_app(cfg, clock=FixedClock(TODAY))
        app.extensions["dojoguard"].accounts.add("head", "headteacher", "three random words here", TODAY)
        client = app.test_client()
        page = client.get("/login", base_url=BASE).get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post("/login", base_url=BASE, headers={"Referer": BASE + "/login"},
                    data={"username": "head", "password": "three random words here", "csrf_token": token})
        started = time.perf_counter()
        client.get("/", base_url=BASE)  # the first overview counts every day; it also starts the integrity check
        cold = time.perf_counter() - started
        verifier = app.extensions["dojoguard"].opened("verifier", lambda: None)
        while verifier.latest is None:
            time.sleep(0.1)
        print(f"(background integrity check: {verifier.latest.records:,} records in {verifier.latest.seconds:.1f} s, "
              f"{'intact' if verifier.latest.ok else 'NOT intact'})")

        today = TODAY.astimezone(LONDON).date()
        monday = today - timedelta(days=today.weekday())
        overview_s, size = timed(client, "/")
        floor = read_rows(year, monday - timedelta(weeks=11), today)
        print(f"overview:                          {overview_s * 1000:7.0f} ms ({size / 1000:.0f} kB)   baseline "
              f"read+parse its 12 weeks of rows: {floor * 1000:5.0f} ms   ratio {overview_s / floor:.2f}   "
              f"target <= 500 ms: {'met' if overview_s <= 0.5 else 'NOT MET'}")
        print(f"  (the first overview after the console starts counts all 84 days: {cold * 1000:.0f} ms, ratio "
              f"{cold / floor:.2f}; the console counts them in the background when it starts, and afterwards only "
              "today, whose records change)")
        searches = [
            ("this week", f"/decisions/?from={monday}&to={today}", monday, today),
            ("one teacher, the whole year", f"/decisions/?from=2025-09-01&to={today}&teacher=t-007",
             date(2025, 9, 1), today),
            ("a rule and outcome, a term", f"/decisions/?from=2026-04-13&to={today}&rule=photo-consent"
                                           "&verdict=block", date(2026, 4, 13), today),
        ]
        for label, path, first, last in searches:
            took, size = timed(client, path)
            floor = read_rows(year, first, last)
            print(f"search, {label + ':':<27}{took * 1000:7.0f} ms ({size / 1000:.0f} kB)   baseline read+parse "
                  f"the range's rows: {floor * 1000:5.0f} ms   ratio {took / floor:.2f}   target <= 300 ms: "
                  f"{'met' if took <= 0.3 else 'NOT MET'}")
        app.extensions["dojoguard"].close()


if __name__ == "__main__":
    main()
