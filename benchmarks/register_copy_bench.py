"""How long a proxy's copy of a trust's consent register takes to make, and how late a change reaches it.

Runs a private PostgreSQL server from the system's packages (as the tests do),
fills one school's register on it (``--pupils`` pupils with four consents each,
``--templates`` face templates a pupil, ClassDojo classes of 30), and prints,
each beside a yardstick from the same run:

1. **A whole copy** (``replica.refresh`` after a change: one repeatable-read
   snapshot of the copied tables, written over the proxy's SQLite copy in one
   transaction, then its write-ahead log truncated), against reading the same
   rows from the server alone (the part no copy can avoid).
2. **A confirmation** (nothing changed: the version compared, the copy's
   rows hashed against the digest recorded when they were written, and the
   copy stamped), which the copier does at least every ``heartbeat_s``.
3. **Propagation**: the copier thread running as in the proxy
   (``consent.max_staleness_s`` 300, so its heartbeat is 30 s and only the
   notification can bring a change quickly); ``--changes`` consents recorded
   on the server one at a time, and the time from each commit until the
   copy shows it (median, p99, max), against the heartbeat it would
   otherwise wait for.

Run:  .venv/bin/python benchmarks/register_copy_bench.py [--pupils 1000] [--templates 2] [--changes 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from dojoguard.consent_registry.registry import DEFAULT_PURPOSES, PersonKind, Registry
from dojoguard.consent_registry.replica import COPIED, Replica, open_central, open_copy, refresh
from dojoguard.storage.location import Storage
from tests.support.postgres import PostgresServer, require_server


def fill(storage: Storage, pupils: int, templates: int) -> list[int]:
    rng = np.random.default_rng(7)
    with open_central(storage) as register, register.transaction():
        ids = []
        for n in range(pupils):
            pid, _ = register.upsert_person(PersonKind.PUPIL, f"M{n:05d}", f"First{n}", f"Last{n}",
                                            reg_group=f"G{n // 30}", year=str(1 + n // 150))
            for purpose in DEFAULT_PURPOSES:
                register.record_consent(pid, purpose, "granted", source="paper form", informed_by="office")
            ids.append(pid)
        for pid in ids:
            for t in range(templates):
                vector = rng.normal(0, 0.1, 128)
                register.db.execute("INSERT INTO templates (person_id, model, template, photo_sha256, created_at) "
                                    "VALUES (?, ?, ?, ?, ?)", (pid, "dlib_face_recognition_resnet_model_v1/small",
                                                               vector.tobytes(), f"{pid:032x}{t:032x}", "2026"))
    with open_central(storage) as register:
        for c in range(pupils // 30):
            register.learn_class(f"class{c}", f"G{c}")
            register.learn_roster(f"class{c}", [(f"d{n}", f"First{n}", f"Last{n}") for n in range(c * 30, c * 30 + 30)])
    return ids


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pupils", type=int, default=1000)
    parser.add_argument("--templates", type=int, default=2)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    server = PostgresServer(require_server()).init().start()
    folder = Path(tempfile.mkdtemp(prefix="register-copy-"))
    try:
        storage = Storage(dsn=server.create_database(), school="bench")
        started = time.perf_counter()
        ids = fill(storage, args.pupils, args.templates)
        print(f"register: {args.pupils} pupils, {args.pupils * args.templates} templates, "
              f"{args.pupils // 30} classes (filled in {time.perf_counter() - started:.1f} s)")

        central = storage.open("registry")
        copy = open_copy(folder / "copy.sqlite")
        rows = sum(central.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table, _ in COPIED)

        def read_only():
            for table, order in COPIED:
                central.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()

        def whole_copy():
            # A change first, so the copy is made in full each time.
            central.execute("UPDATE registry_changes SET version = version + 1")
            refresh(central, copy.database, school="bench", max_staleness_s=300)

        def confirm():
            refresh(central, copy.database, school="bench", max_staleness_s=300)

        whole_copy()
        read = timed(read_only, 5)
        full = timed(whole_copy, 5)
        confirmed = timed(confirm, 20)
        print(f"1. whole copy of {rows:,} rows: {full * 1000:.0f} ms median of 5; reading them from the server "
              f"alone: {read * 1000:.0f} ms ({full / read:.1f}x)")
        print(f"2. confirmation (nothing changed): {confirmed * 1000:.1f} ms median of 20 "
              f"({confirmed / full:.3f}x a whole copy)")
        copy.close()
        central.close()

        replica = Replica(storage, folder / "proxy-copy.sqlite", max_staleness_s=300)
        replica.start()
        try:
            deadline = time.monotonic() + 60
            while replica.status.version is None:
                assert time.monotonic() < deadline, "the copier did not start"
                time.sleep(0.01)
            reader = Registry.open(folder / "proxy-copy.sqlite", create=False)
            lags = []
            with open_central(storage) as register:
                for n in range(args.changes):
                    pid = ids[n % len(ids)]
                    state = "refused" if n % 2 == 0 else "granted"
                    register.set_consent(pid, "class_story", state, source="email", informed_by="office")
                    committed = time.perf_counter()
                    while reader.is_permitted(pid, "class_story") != (state == "granted"):
                        time.sleep(0.001)
                    lags.append(time.perf_counter() - committed)
            reader.close()
        finally:
            replica.stop()
        lags.sort()
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(f"3. propagation, commit on the server to the proxy's copy, {len(lags)} changes: median "
              f"{statistics.median(lags) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms; "
              f"the heartbeat it would otherwise wait for: {replica.heartbeat_s:.0f} s "
              f"(p99 is {p99 / replica.heartbeat_s:.4f}x)")
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
