"""The long fuzzing run: a hundred thousand mutated ClassDojo writes through the judge, the rules and the audit log.

Each case is a realistic write (message, story post with an inline photo or
named uploads, award, comment, multipart upload, storage PUT, unknown write,
login) with one to four mutations: bytes flipped, cut, inserted or repeated;
JSON values swapped for other types, nested up to 50,000 levels, re-encoded in
UTF-16/32 or Latin-1; content types, charsets, Content-Encoding and duplicate
headers changed; multipart boundaries and part headers broken; paths, methods
and hosts altered. The generator is the one the test suite drives with
Hypothesis (``tests/proxy/fuzzing.py``), here seeded and run in a plain loop.

A failure is a case where judging raised (the addon would still block it, as
an internal error), the decision could not be recorded, an incomplete action
was not blocked, or a photo whose check did not complete was not blocked.

Figures, each beside a baseline from the same run and the same cases:

1. cases/s for generating the cases alone (the baseline);
2. cases/s for recognition alone (catalogue + body parsing);
3. cases/s for the full judge: recognition, rules, hold store and a durable
   audit record per case; and the number of failures (target: 0).

Run:  python benchmarks/fuzz_bench.py                   (100,000 cases)
      python benchmarks/fuzz_bench.py --cases 5000      (while developing)
      python benchmarks/fuzz_bench.py --data-dir /dev/shm/fuzz   (audit log on tmpfs: no fsync cost)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dojoguard import config
from dojoguard.clock import FixedClock
from dojoguard.proxy.judge import Judge
from dojoguard.proxy.recognition import recognise
from dojoguard.proxy.services import open_services
from dojoguard.proxy.settings import Settings
from tests.proxy import fuzzing
from tests.proxy.conftest import write_config

MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
# Attachments named by the cases are "fetched" from a closed local port: nothing leaves the machine.
RESOLVE = tuple(f"{h}:443:127.0.0.1:9" for h in ("teach.classdojo.com", "home.classdojo.com", "api.classdojo.com",
                                                 "dojo-uploads.s3.amazonaws.com"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="dojoguard-fuzz-"))
    folder.mkdir(parents=True, exist_ok=True)
    cfg = config.load(write_config(folder, extra_hosts=[r"^dojo-uploads\.s3\.amazonaws\.com:\d+$"]))
    services = open_services(Settings.from_config(cfg, resolve=RESOLVE), FixedClock(MONDAY_10), images=False)
    print(f"dojoguard data folder: {folder / 'data'}")
    print(f"{args.cases} cases, seed {args.seed}")

    started = time.perf_counter()
    rng = random.Random(args.seed)
    cases = [fuzzing.case(rng) for _ in range(args.cases)]
    generate_rate = args.cases / (time.perf_counter() - started)

    started = time.perf_counter()
    for request in cases:
        recognise(request, services.catalogue)
    recognise_rate = args.cases / (time.perf_counter() - started)

    judge, loop = Judge(services), asyncio.new_event_loop()
    failures: list[tuple[int, str]] = []
    verdicts: collections.Counter = collections.Counter()
    started = time.perf_counter()
    for i, request in enumerate(cases):
        try:
            outcome = loop.run_until_complete(judge.judge(request))
            if outcome.durable is not None:
                # As the proxy does before answering a forwarded write: the record is on disk.
                problem = loop.run_until_complete(outcome.durable.wait())
                if problem is not None:
                    failures.append((i, "record not flushed: " + problem))
        except Exception:  # noqa: BLE001 - counted and shown: this is what the run looks for
            failures.append((i, "raised: " + traceback.format_exc(limit=3)))
            continue
        verdicts[str(outcome.decision.verdict)] += 1
        for problem in fuzzing.violations(outcome):
            failures.append((i, problem))
        if (i + 1) % 20_000 == 0:
            print(f"  ... {i + 1} judged, {len(failures)} failures")
    judge_rate = args.cases / (time.perf_counter() - started)
    loop.close()
    services.close()

    print(f"generating cases (baseline): {generate_rate:10.0f} cases/s")
    print(f"recognition alone:           {recognise_rate:10.0f} cases/s  ({recognise_rate / generate_rate:.2f}x baseline)")
    print(f"full judge + audit record:   {judge_rate:10.0f} cases/s  ({judge_rate / generate_rate:.3f}x baseline)")
    print("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
    print(f"failures: {len(failures)}")
    for i, problem in failures[:10]:
        request = cases[i]
        print(f"  case {i}: {problem}\n    {request.method} {request.host}{request.path[:100]} "
              f"{request.headers} {request.content[:120]!r}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
