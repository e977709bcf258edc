"""What frequent signed checkpoints cost: one checkpoint at 100,000 records, and verifying against many.

    .venv/bin/python benchmarks/checkpoint_bench.py            # 100,000 records
    .venv/bin/python benchmarks/checkpoint_bench.py --records 20000

Prints:
- the time to sign, keep, publish and record one checkpoint of a log of N
  records (median and worst of 50), with the published copy written to
  another folder, beside the same checkpoint without publishing;
- the time for the cadence to decide nothing is owed (what an idle proxy
  pays once a minute);
- ``verify`` of the whole log against one checkpoint per 100 records (as
  the proxy leaves them), beside the chain alone;
- the cost of a keyed message fingerprint beside the plain SHA-256 it replaced.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.cadence import Cadence
from dojoguard.audit.chain import verify_chain
from dojoguard.audit.entry import decision_fields
from dojoguard.audit.fingerprints import FingerprintKey
from dojoguard.audit.log import AuditLog
from dojoguard.audit.verification import verify
from dojoguard.clock import FixedClock
from dojoguard.rules.action import Action, Channel, Kind
from dojoguard.rules.decision import Decision, Verdict

START = datetime(2026, 9, 1, 8, tzinfo=UTC)


def build(path: Path, records: int, clock: FixedClock) -> AuditLog:
    log = AuditLog.open(path, clock=clock, emit_decisions=False, deferred_sync=True)
    key = log.fingerprint_key()
    done = 1
    while done < records:
        batch = min(5000, records - done)

        def step(log_, pending, batch=batch, first=done):
            record = None
            for i in range(batch):
                at = START + timedelta(seconds=(first + i) * 2)
                clock.set(at)
                action = Action(kind=Kind.MESSAGE_SEND, channel=Channel.MESSAGE, at=at, teacher_id="t-001",
                                device_address="10.20.0.9", class_id="c-01", students=("s-1",),
                                text="Reading books back on Friday please", endpoint="message.send")
                decision = Decision(verdict=Verdict.ALLOW, matches=(), policy_revision="f" * 16, at=at,
                                    by_default=True)
                record = log_.insert("decision", decision.decision_id, decision_fields(action, decision, key), pending)
            return record

        log.write_in_transaction(step)
        done += batch
    return log


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clock = FixedClock(START)
        started = time.perf_counter()
        log = build(tmp / "audit.sqlite", args.records, clock)
        print(f"log of {log.count():,} records built in {time.perf_counter() - started:.1f} s")
        key, local, share = tmp / "keys" / "audit-signing.key", tmp / "checkpoints", tmp / "share"
        share.mkdir()

        def one(publish):
            log.append_event("proxy.started", {"policy_revision": "x", "mode": "bench"}, durable=False)
            checkpoints.write_checkpoint(log, key, local, publish)

        checkpoints.write_checkpoint(log, key, local)  # the key exists from here on
        for label, publish in (("checkpoint, kept locally", []), ("checkpoint, kept and published", [share])):
            ms = timed(lambda publish=publish: one(publish), 50)
            print(f"{label:34s} median {statistics.median(ms):6.2f} ms   worst {max(ms):6.2f} ms")
        cadence = Cadence(log, key, local, [share])
        ms = timed(cadence.is_owed, 200)
        print(f"{'cadence: is a checkpoint owed?':34s} median {statistics.median(ms):6.3f} ms")

        # One checkpoint per 100 records, as the proxy leaves them.
        signing = checkpoints.load_key(key)
        rows = log.rows()
        many = tmp / "many"
        for seq, _id, at, _type, _body, _prev, hash_ in rows[99::100]:
            checkpoints.write(checkpoints.sign(signing, log_id=log.log_id, seq=seq, hash_=hash_,
                                               record_at=datetime.fromisoformat(at), written_at=clock.now()), many)
        files = checkpoints.files(many)
        started = time.perf_counter()
        with log.snapshot() as conn:
            chain = verify_chain(conn)
        alone = time.perf_counter() - started
        result = verify(log, checkpoint_files=files, public_key=signing.public_key())
        assert result.is_ok, result
        print(f"verify: chain alone {alone:.2f} s; with {len(files):,} checkpoints {result.seconds:.2f} s "
              f"({chain.records:,} records)")
        log.close()

    text = "Reading books back on Friday please"
    fkey = FingerprintKey(b"k" * 32)
    n = 200_000
    started = time.perf_counter()
    for _ in range(n):
        fkey.of_text(text)
    hmac_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n):
        hashlib.sha256(text.encode()).hexdigest()
    sha_us = (time.perf_counter() - started) / n * 1e6
    print(f"message fingerprint: HMAC-SHA256 {hmac_us:.2f} us, plain SHA-256 {sha_us:.2f} us")


if __name__ == "__main__":
    main()
