"""How fast a trust's proxies ship to one PostgreSQL, how late records arrive, and how long a year's report takes.

Runs a private PostgreSQL server from the system's packages (as the tests do)
and prints three figures, each beside a yardstick measured in the same run:

1. **Shipping throughput** with 1, 5 and 20 proxy nodes: each node is its own
   process with its own audit log (SQLite, the proxy's schema, sealed decision
   records of the real size) and runs the real ``Shipper`` until everything is
   in the central store (chain checked by the store's trigger, checkpoints
   verified). Aggregate records/s, against a bare ``COPY`` of the same rows
   into a plain table (no trigger, no derived columns) on one connection, and
   against the same rows inserted straight into the store's own table (its
   checks, no shipper). Target: >= 5,000 records/s with 20 nodes.
2. **Lag** from a record's commit in a node's log to its arrival centrally,
   with 20 nodes writing at the peak of a 60-school trust's school day
   (``--lag-rate`` records/s in all; see below) for ``--lag-seconds``, each
   with the shipper thread the proxy runs (``trust.ship_every_s`` 0.5).
   Target: p99 <= 2 s.
3. **A trust-wide year report**: 30 schools, ``--year-decisions`` decisions
   (default 7,000,000) over a school year, generated in the server (the
   chain trigger is off for that load only: the report reads the same
   columns either way), then ``dojoguard.trust.report.gather`` for the whole
   trust and for one school, with the owner's account and with leaders' own
   accounts (row-level security on). Target: <= 30 s.

The peak load: a 60-school trust of 30 teachers a school, each making about
60 ClassDojo writes a school day (messages, points, posts), is 108,000
decisions a day; if a fifth of them fall in the busiest hour, that is 6 a
second. ``--lag-rate`` defaults to 60 a second, ten times that.

Run:  .venv/bin/python benchmarks/trust_bench.py [--records 60000] [--lag-rate 60] [--lag-seconds 60]
                                                 [--year-decisions 7000000] [--skip-year]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.log import AuditLog
from dojoguard.audit.record import canonical, format_time, seal
from dojoguard.trust import accounts
from dojoguard.trust import report as trust_report
from dojoguard.trust.central import Central
from dojoguard.trust.shipper import Shipper, ShipSettings
from tests.support.postgres import PostgresServer, as_account, require_server

T0 = datetime(2026, 9, 7, 7, 30, tzinfo=UTC)
VERDICTS = ["allow"] * 90 + ["block"] * 4 + ["defer"] * 3 + ["hold"] * 2 + ["warn"]
KINDS = ["message.send"] * 5 + ["points.award"] * 3 + ["story.post", "comment.post"]


def decision_body(n: int, school: int) -> str:
    """A decision record's body of the real shape and size (about 700 bytes)."""
    verdict = VERDICTS[n % len(VERDICTS)]
    rules = [] if verdict == "allow" else [["messages-in-school-hours", "positive-points-only", "photo-consent",
                                            "doorstep-length"][n % 4]]
    return canonical({
        "policy_revision": "a3f1c2d4e5f60718", "decided_at": format_time(T0), "acted_at": format_time(T0),
        "kind": KINDS[n % len(KINDS)], "channel": "message", "endpoint": "/api/message-thread/{id}/message",
        "teacher": f"5f00000000000000{school:04d}{n % 30:04d}", "device": "10.20.1.17",
        "class": f"6a00000000000000{school:04d}{n % 12:04d}", "pupils": [],
        "verdict": verdict, "rules": rules, "matched": [{"rule": r, "verdict": verdict} for r in rules],
        "reason": "no rule matched: the policy's default applied" if not rules else "outside school hours",
        "by_default": not rules, "exemptions_used": [], "exempted_rules": [],
        "hashes": {"text_hmac": f"{n:064x}", "text_key": "k1"}, "counts": {"attachments": 0, "text_chars": 140},
        "masked": ["text", "teacher_name"]})


# -- one node -------------------------------------------------------------------------------

def build_node(folder: Path, records: int, school: int) -> None:
    """An audit log (the proxy's own schema) holding ``records`` sealed decisions, and a checkpoint at its end."""
    log = AuditLog.open(folder / "audit.sqlite")
    try:
        conn = log.connection
        seq, prev = conn.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        rows = []
        for n in range(records):
            seq += 1
            at = format_time(T0 + timedelta(milliseconds=seq * 10))
            body = decision_body(n, school)
            record_id = f"{school:04d}{seq:012d}"
            digest = seal(seq, record_id, at, "decision", prev, body)
            rows.append((seq, record_id, at, "decision", body, prev, digest))
            prev = digest
        with log.transaction():
            conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        checkpoints.write_checkpoint(log, folder / "signing.key", folder / "checkpoints")
    finally:
        log.close()


def settings_for(folder: Path, dsn: str, node: int, every_s: float = 0.5) -> ShipSettings:
    return ShipSettings(database=dsn, school=f"school-{node % 30:02d}", node=f"node-{node:02d}",
                        audit_database=folder / "audit.sqlite", checkpoint_dir=folder / "checkpoints",
                        signing_key=folder / "signing.key", every_s=every_s, batch_records=2000)


def ship_node(args) -> int:
    folder, dsn, node, go = args
    shipper = Shipper(settings_for(Path(folder), dsn, node))
    go.wait()
    try:
        return shipper.ship_all()
    finally:
        shipper.close()


def write_node(args) -> None:
    """Write ``rate`` records a second for ``seconds`` into a node's log, shipping as the proxy does."""
    folder, dsn, node, rate, seconds, go = args
    folder = Path(folder)
    log = AuditLog.open(folder / "audit.sqlite")
    shipper = Shipper(settings_for(folder, dsn, node), record=log.append_event)
    shipper.start()
    go.wait()
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        n += 1
        log.append_event("report.sent", {"period_from": "a", "period_to": "b", "file": f"r{n}", "recipients": 0})
        next_at = start + n / rate
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    time.sleep(3)  # let the shipper deliver the last ones
    shipper.stop()
    log.close()


# -- the figures ------------------------------------------------------------------------------

def throughput(server: PostgresServer, work: Path, nodes: int, total: int) -> tuple[float, int]:
    dsn = server.create_database()
    Central.open(dsn).close()
    per_node = total // nodes
    folders = []
    for i in range(nodes):
        folder = work / f"ship-{nodes}-{i}"
        folder.mkdir()
        build_node(folder, per_node, i % 30)
        folders.append(folder)
    with multiprocessing.Manager() as manager:
        go = manager.Event()
        with multiprocessing.Pool(nodes) as pool:
            pending = pool.map_async(ship_node, [(str(f), dsn, i, go) for i, f in enumerate(folders)])
            time.sleep(1.0)  # every process connected and waiting
            started = time.perf_counter()
            go.set()
            shipped = sum(pending.get())
            elapsed = time.perf_counter() - started
    for folder in folders:
        shutil.rmtree(folder)
    return shipped / elapsed, shipped


def bare_copy(server: PostgresServer, total: int, *, into_store: bool = False) -> float:
    """The same number of rows of the same size COPYed into a plain table: the yardstick.

    ``into_store``: into the central store's own table instead (its chain trigger and derived columns),
    still on one connection with no shipper: what the store's checks cost, apart from the shipping.
    """
    import psycopg

    dsn = server.create_database()
    if into_store:
        central = Central.open(dsn)
        central.register("node-00", "school-01", log_id="copy", start_seq=1, start_prev="0" * 64,
                         public_key_pem=checkpoints.public_key_pem(checkpoints.Ed25519PrivateKey.generate()).decode())
        central.close()
    rows, prev = [], "0" * 64
    for n in range(total):
        at = format_time(T0 + timedelta(milliseconds=n * 10))
        body = decision_body(n, 1)
        digest = seal(n + 1, f"x{n}", at, "decision", prev, body)
        rows.append(("node-00", n + 1, f"x{n}", at, "decision", body, prev, digest, "school-01"))
        prev = digest
    table = "records (node, seq, id, at, type, body, prev, hash, school)" if into_store else "plain"
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not into_store:
            conn.execute("CREATE TABLE plain (node text, seq bigint, id text, at text, type text, body text, "
                         "prev text, hash text, school text, PRIMARY KEY (node, seq))")
        started = time.perf_counter()
        for i in range(0, total, 2000):
            with conn.transaction(), conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows[i:i + 2000]:
                    copy.write_row(row)
        return total / (time.perf_counter() - started)


def lag(server: PostgresServer, work: Path, nodes: int, rate: float, seconds: float) -> list[float]:
    import psycopg

    dsn = server.create_database()
    Central.open(dsn).close()
    folders = []
    for i in range(nodes):
        folder = work / f"lag-{i}"
        folder.mkdir()
        AuditLog.open(folder / "audit.sqlite").close()
        folders.append(folder)
    with multiprocessing.Manager() as manager:
        go = manager.Event()
        with multiprocessing.Pool(nodes) as pool:
            pending = pool.map_async(write_node, [(str(f), dsn, i, rate / nodes, seconds, go)
                                                  for i, f in enumerate(folders)])
            time.sleep(2.0)
            go.set()
            pending.get()
    with psycopg.connect(dsn) as conn:
        lags = [float(v) for (v,) in conn.execute(
            "SELECT extract(epoch FROM received_at - at::timestamptz) FROM records WHERE type = 'report.sent'")]
    for folder in folders:
        shutil.rmtree(folder)
    return lags


def year_report(server: PostgresServer, decisions: int) -> tuple[float, float, int]:
    import psycopg

    dsn = server.create_database()
    Central.open(dsn).close()
    per_school = decisions // 30
    key = checkpoints.public_key_pem(checkpoints.Ed25519PrivateKey.generate()).decode()
    year_seconds = 320 * 86400
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("ALTER TABLE records DISABLE TRIGGER records_chain")
        for s in range(30):
            conn.execute("INSERT INTO schools VALUES (%s)", (f"school-{s:02d}",))
            conn.execute("INSERT INTO nodes (node, school, log_id, public_key, key_fingerprint, start_seq, start_prev, "
                         "last_seq, last_hash) VALUES (%s, %s, 'year', %s, 'SHA256:year', 1, %s, %s, %s)",
                         (f"node-{s:02d}", f"school-{s:02d}", key, "0" * 64, per_school, "0" * 64))
        started = time.perf_counter()
        for s in range(30):
            # Bodies of the real shape and size, built in the server: verdicts 90% allow, 4% block, 3% defer,
            # 2% hold, 1% warn; thirty teachers and twelve classes a school; spread over a school year.
            conn.execute("""
                INSERT INTO records (node, seq, id, at, type, body, prev, hash, school)
                SELECT %(node)s, n, %(school)s || '-' || n,
                       to_char((timestamptz '2026-09-01 07:00+00' + (n::float8 / %(per)s * %(span)s) * interval '1 second')
                               AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                       'decision', b.body, repeat('0', 64), repeat('0', 64), %(school)s
                  FROM generate_series(1, %(per)s) AS n,
                       LATERAL (SELECT CASE WHEN n %% 100 < 90 THEN 'allow' WHEN n %% 100 < 94 THEN 'block'
                                            WHEN n %% 100 < 97 THEN 'defer' WHEN n %% 100 < 99 THEN 'hold'
                                            ELSE 'warn' END AS verdict) v,
                       LATERAL (SELECT json_build_object(
                           'policy_revision', 'a3f1c2d4e5f60718', 'decided_at', '2026-09-01T07:00:00.000000Z',
                           'acted_at', '2026-09-01T07:00:00.000000Z',
                           'kind', (ARRAY['message.send','message.send','message.send','message.send','message.send',
                                          'points.award','points.award','points.award','story.post',
                                          'comment.post'])[1 + n %% 10],
                           'channel', 'message', 'endpoint', '/api/message-thread/{id}/message',
                           'teacher', '5f0000000000000000' || lpad((%(s)s * 100 + n %% 30)::text, 6, '0'),
                           'device', '10.20.1.17',
                           'class', '6a0000000000000000' || lpad((%(s)s * 100 + n %% 12)::text, 6, '0'),
                           'pupils', json_build_array(), 'verdict', v.verdict,
                           'rules', CASE WHEN v.verdict = 'allow' THEN json_build_array()
                                    ELSE json_build_array((ARRAY['messages-in-school-hours','positive-points-only',
                                         'photo-consent','doorstep-length'])[1 + n %% 4]) END,
                           'reason', 'no rule matched: the policy''s default applied',
                           'by_default', v.verdict = 'allow', 'exemptions_used', json_build_array(),
                           'hashes', json_build_object('text_hmac', md5(n::text) || md5(%(school)s || n),
                                                       'text_key', 'k1'),
                           'counts', json_build_object('attachments', 0, 'text_chars', 140),
                           'masked', json_build_array('text', 'teacher_name'))::text AS body) b""",
                         {"node": f"node-{s:02d}", "school": f"school-{s:02d}", "per": per_school,
                          "span": year_seconds, "s": s})
            print(f"    loaded school {s + 1}/30 ({time.perf_counter() - started:.0f} s)", flush=True)
        conn.execute("ALTER TABLE records ENABLE TRIGGER records_chain")
        conn.execute("VACUUM ANALYZE records")
        (size,) = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('records'))").fetchone()
        print(f"    {per_school * 30:,} decisions loaded in {time.perf_counter() - started:.0f} s; records: {size}")
    central = Central.open(dsn, migrate=False)
    try:
        start, end = datetime(2026, 9, 1, tzinfo=UTC), datetime(2027, 9, 1, tzinfo=UTC)
        started = time.perf_counter()
        made = trust_report.gather(central, start, end)
        whole = time.perf_counter() - started
        assert made.decisions == per_school * 30, made.decisions
        started = time.perf_counter()
        one = trust_report.gather(central, start, end, school="school-07")
        single = time.perf_counter() - started
        assert one.decisions == per_school
        # The same, read by leaders' own accounts: row-level security decides what each sees.
        server.create_login("bench_trust_leader")
        server.create_login("bench_head")
        accounts.grant(central, "bench_trust_leader", None)
        accounts.grant(central, "bench_head", "school-07")
    finally:
        central.close()
    timings = {}
    for account, expected in (("bench_trust_leader", per_school * 30), ("bench_head", per_school)):
        scoped = Central.open(as_account(dsn, account), migrate=False)
        try:
            started = time.perf_counter()
            seen = trust_report.gather(scoped, start, end)
            timings[account] = time.perf_counter() - started
            assert seen.decisions == expected, (account, seen.decisions)
        finally:
            scoped.close()
    return whole, single, made.decisions, timings["bench_trust_leader"], timings["bench_head"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=60000, help="records shipped in each node configuration")
    parser.add_argument("--lag-rate", type=float, default=60.0)
    parser.add_argument("--lag-seconds", type=float, default=60.0)
    parser.add_argument("--year-decisions", type=int, default=7_000_000)
    parser.add_argument("--skip-year", action="store_true")
    args = parser.parse_args()

    server = PostgresServer(require_server())
    server.init()
    with open(server.data / "postgresql.conf", "a") as conf:
        conf.write("max_wal_size = 8GB\ncheckpoint_timeout = 30min\n")
    server.start()
    work = Path(tempfile.mkdtemp(prefix="dojoguard-trust-bench-"))
    try:
        print(f"PostgreSQL {server.bin.parent.name} on this machine ({os.cpu_count()} cores), fsync on")
        print("\n1. Shipping throughput (records/s, all nodes together)")
        baseline = bare_copy(server, args.records)
        print(f"   bare COPY of the same rows, one connection: {baseline:,.0f} records/s")
        checked = bare_copy(server, args.records, into_store=True)
        print(f"   COPY into the store's own table (chain trigger, derived columns), one connection, no shipper: "
              f"{checked:,.0f} records/s ({checked / baseline:.2f}x bare COPY)")
        for nodes in (1, 5, 20):
            rate, shipped = throughput(server, work, nodes, args.records)
            print(f"   {nodes:>2} nodes: {rate:,.0f} records/s ({shipped:,} records; {rate / baseline:.2f}x bare COPY)")
        print(f"\n2. Lag from a node's commit to the central store: 20 nodes, {args.lag_rate:g} records/s in all, "
              f"{args.lag_seconds:g} s")
        lags = sorted(lag(server, work, 20, args.lag_rate, args.lag_seconds))
        p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
        print(f"   {len(lags):,} records: median {statistics.median(lags):.2f} s, p99 {p(0.99):.2f} s, "
              f"max {lags[-1]:.2f} s")
        if not args.skip_year:
            print(f"\n3. Trust-wide year report: 30 schools, {args.year_decisions:,} decisions")
            whole, single, count, leader, head = year_report(server, args.year_decisions)
            print(f"   whole trust: {whole:.1f} s for {count:,} decisions; one school: {single:.1f} s (owner's account)")
            print(f"   read by a trust-wide leader's account: {leader:.1f} s; by one school's head's account "
                  f"(row-level security): {head:.1f} s")
    finally:
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
