"""How fast the audit log is, beside baselines measured in the same run.

    .venv/bin/python benchmarks/audit_bench.py            # full figures (about a minute)
    .venv/bin/python benchmarks/audit_bench.py --quick    # smaller sizes while developing

Prints:
- durable appends per second (target >= 500/s), beside a bare SQLite
  INSERT + COMMIT with WAL and synchronous=FULL of a same-sized row;
- verification speed in records per second (target >= 100,000/s), beside
  hashlib.sha256 over the same sealed bytes already in memory;
- report generation time for a year of a 40-teacher school (target <= 10 s),
  beside reading and parsing the same rows without any counting.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dojoguard.audit.chain import verify_chain
from dojoguard.audit.entry import decision_fields
from dojoguard.audit.log import AuditLog
from dojoguard.audit.record import SEPARATOR
from dojoguard.audit.render import render
from dojoguard.audit.report import build_report, period_bounds
from dojoguard.clock import FixedClock
from dojoguard.rules.action import Action, Channel, Kind, Points
from dojoguard.rules.decision import Decision, Match, Verdict

LONDON = ZoneInfo("Europe/London")
RULES = [("no-messages-after-hours", Verdict.DEFER, "Messages to families are sent between 08:00 and 17:00"),
         ("photo-consent", Verdict.BLOCK, "A face in the photo has no Class Story photo consent"),
         ("sensitive-words", Verdict.HOLD, "The message mentions a safeguarding matter: a leader reviews it"),
         ("faces-blurred", Verdict.REDACT, "Faces without consent were blurred"),
         ("points-negative", Verdict.WARN, "Negative points are shared with families")]
KINDS = [(Kind.POINTS_AWARD, Channel.POINTS), (Kind.MESSAGE_SEND, Channel.MESSAGE),
         (Kind.STORY_POST, Channel.CLASS_STORY), (Kind.COMMENT_POST, Channel.COMMENT)]


def school_action(rng: random.Random, at: datetime, teacher: int) -> tuple[Action, Decision]:
    kind, channel = KINDS[min(rng.randrange(6), 3)]  # points are the most common
    action = Action(kind=kind, channel=channel, at=at, teacher_id=f"t-{teacher:03d}", teacher_name="A Teacher",
                    device_address=f"10.20.{teacher}.{rng.randrange(2, 250)}", class_id=f"c-{teacher % 28:02d}",
                    students=tuple(f"s-{teacher % 28:02d}-{rng.randrange(30):02d}" for _ in range(rng.randint(1, 3))),
                    text="x" * rng.randint(10, 400) if kind is not Kind.POINTS_AWARD else None,
                    points=Points(value=1, skill_id="sk-1") if kind is Kind.POINTS_AWARD else None,
                    endpoint=str(kind))
    if rng.random() < 0.9:
        decision = Decision(verdict=Verdict.ALLOW, matches=(), policy_revision="a1b2c3d4e5f60718",
                            at=at, by_default=True)
    else:
        rule, verdict, reason = RULES[rng.randrange(len(RULES))]
        decision = Decision(verdict=verdict, matches=(Match(rule, verdict, reason, "notice"),),
                            policy_revision="a1b2c3d4e5f60718", at=at)
    return action, decision


def bench_appends(folder: Path, n: int) -> None:
    rng = random.Random(1)
    with AuditLog.open(folder / "appends.sqlite", emit_decisions=False) as log:
        pairs = [school_action(rng, datetime.now(UTC), i % 40) for i in range(n)]
        started = time.perf_counter()
        for action, decision in pairs:
            log.append_decision(action, decision)
        ours = n / (time.perf_counter() - started)
        row_size = len(log.rows(after_seq=n // 2)[0][4])

    conn = sqlite3.connect(folder / "baseline.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, body TEXT)")
    body = "x" * row_size
    started = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
    baseline = n / (time.perf_counter() - started)
    conn.close()
    print(f"durable appends:      {ours:10,.0f} /s   baseline bare INSERT+COMMIT (FULL): {baseline:10,.0f} /s   "
          f"ratio {ours / baseline:.2f}   target >= 500/s: {'met' if ours >= 500 else 'NOT MET'}")


def build_year(folder: Path, teachers: int, per_teacher_day: int) -> Path:
    """A school year (190 days) of decisions, sealed by the real write path in one transaction per day."""
    path = folder / "year.sqlite"
    clock = FixedClock(datetime(2025, 9, 1, 7, 0, tzinfo=UTC))
    rng = random.Random(2)
    day, school_days = date(2025, 9, 1), 0
    with AuditLog.open(path, clock=clock, emit_decisions=False) as log:
        while school_days < 190:
            if day.weekday() < 5:
                school_days += 1
                times = sorted(datetime(day.year, day.month, day.day, 7, tzinfo=UTC)
                               + timedelta(seconds=rng.randrange(11 * 3600))
                               for _ in range(teachers * per_teacher_day))

                def one_day(log_, pending, times=times):
                    record = None
                    for at in times:
                        clock.set(at)
                        action, decision = school_action(rng, at, rng.randrange(teachers))
                        fields = decision_fields(action, decision, log_.fingerprint_key())
                        record = log_.insert("decision", decision.decision_id, fields, pending)
                    return record

                log.write_in_transaction(one_day)
            day += timedelta(days=1)
    return path


def bench_verify(path: Path) -> None:
    with AuditLog.open(path, emit_decisions=False) as log:
        started = time.perf_counter()
        result = verify_chain(log.connection)
        elapsed = time.perf_counter() - started
        assert result.is_intact
        sealed = [SEPARATOR.join((str(r[0]), r[1], r[2], r[3], r[5], r[4])).encode() for r in log.rows()]
    started = time.perf_counter()
    for data in sealed:
        hashlib.sha256(data).hexdigest()
    baseline = len(sealed) / (time.perf_counter() - started)
    ours = result.records / elapsed
    print(f"verification:         {ours:10,.0f} records/s ({result.records:,} in {elapsed:.2f} s)   "
          f"baseline sha256 of the same bytes in memory: {baseline:10,.0f} /s   ratio {ours / baseline:.2f}   "
          f"target >= 100,000/s: {'met' if ours >= 100_000 else 'NOT MET'}")


def bench_report(path: Path, teachers: int) -> None:
    start, end = period_bounds(date(2025, 9, 1), date(2026, 8, 31), LONDON)
    with AuditLog.open(path, emit_decisions=False) as log:
        started = time.perf_counter()
        rows = log.rows(start=start, end=end)
        for row in rows:
            json.loads(row[4])
        baseline = time.perf_counter() - started
        started = time.perf_counter()
        report = build_report(log, start, end, tz=LONDON, now=datetime(2026, 9, 1, tzinfo=UTC),
                              policy_reviewed="2025-09-01")
        html = render(report, "html")
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        csv = render(report, "csv")
        csv_s = time.perf_counter() - started
    print(f"year report (HTML):   {elapsed:10.2f} s   ({report.decisions:,} decisions, {teachers} teachers, "
          f"whole chain verified too; {len(html) / 1e6:.1f} MB)   baseline read+parse the rows: {baseline:.2f} s   "
          f"ratio {elapsed / baseline:.2f}   target <= 10 s: {'met' if elapsed <= 10 else 'NOT MET'}")
    print(f"  + CSV of every record: {csv_s:.2f} s more ({len(csv) / 1e6:.1f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    args = parser.parse_args()
    appends = 300 if args.quick else 3000
    teachers, per_day = (40, 3) if args.quick else (40, 30)
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        folder = Path(tmp)
        print(f"audit benchmark (python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
              f"{os.cpu_count()} cpu)")
        bench_appends(folder, appends)
        started = time.perf_counter()
        path = build_year(folder, teachers, per_day)
        print(f"(built a school year: {teachers} teachers x {per_day} actions a day x 190 days "
              f"in {time.perf_counter() - started:.1f} s)")
        bench_verify(path)
        bench_report(path, teachers)


if __name__ == "__main__":
    main()
