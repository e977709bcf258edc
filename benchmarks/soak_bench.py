"""Load and soak: mixed teacher traffic through the real proxy at a fixed rate, on loopback only.

An open-loop generator starts requests on a fixed schedule (200 per second by
default, for 60 seconds), whatever the answers' speed, so a slow proxy shows
up as latency rather than as a politely slower client. The mix, per 100
requests: 50 text writes (class messages, story posts, point awards), 45 reads
(rosters, skills, classes, the session), 1 photo upload (a 480x360 JPEG
without faces, really analysed by the one image worker: at 200 requests/s
that is two photos a second, about what one worker on a shared two-core
machine sustains; benchmarks/proxy_bench.py measures 12-megapixel uploads)
and 4 long-polls (a PubNub-style subscribe that trickles for about a
second). Each simulated device logs in and reads its class's skills first,
as the app does, so awards are judged against learned point values.

Figures:

1. the same mix straight to the stand-in for the first seconds (the
   baseline: what the client, TLS and the stand-in cost without the proxy);
2. through dojoguard: requests started, errors (any exception, a 5xx, or a
   text write refused), latency percentiles per kind from the scheduled start
   (so queueing counts), and each beside the baseline's (ratio);
3. the proxy's resident memory sampled every few seconds, and its image
   workers' total, first and last sample and the ratio between them;
4. error and traceback lines in the proxy's own log (target: 0).

Everything listens on 127.0.0.1; nothing leaves the machine.

Run:  python benchmarks/soak_bench.py                        (200 req/s for 60 s)
      python benchmarks/soak_bench.py --rate 50 --seconds 10  (while developing)
"""

from __future__ import annotations

import argparse
import io
import json
import queue
import random
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from PIL import Image

from dojoguard.clock import FileClock
from dojoguard.standin import data
from dojoguard.standin.harness import ProxyProcess, free_port

MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
TEACH = "teach.classdojo.com"
POLL = "classdojo.pubnub.com"
# Requests in flight at once at most; beyond it a start waits (and its wait is counted as latency).
WORKERS = 48


@dataclass(frozen=True)
class Sample:
    kind: str
    scheduled: float
    latency_s: float
    status: int
    error: str | None = None


def photo() -> bytes:
    """A 480x360 picture without faces, with texture so it compresses like a photo."""
    rng = random.Random(5)
    image = Image.new("RGB", (480, 360))
    image.putdata([(rng.randrange(90, 140), rng.randrange(120, 180), rng.randrange(60, 200))
                   for _ in range(480 * 360)])
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


PHOTO = photo()
MIX = (["message"] * 30 + ["story"] * 10 + ["award"] * 10 + ["roster"] * 15 + ["skills"] * 15 + ["classes"] * 10
       + ["session"] * 5 + ["upload"] * 1 + ["poll"] * 4)


def send(client: httpx.Client, base: str, kind: str, n: int) -> httpx.Response:
    """One request of ``kind``; ``base`` is https://HOST or the stand-in's own address."""
    headers = {} if base.startswith("https://teach") else {"Host": TEACH}
    if kind == "message":
        return client.post(f"{base}/api/message-thread/{data.THREAD_ID}/message", headers=headers,
                           json={"body": f"Reading books are due back tomorrow, thank you ({n})"})
    if kind == "story":
        return client.post(f"{base}/api/dojoClass/{data.CLASS_ID}/storyFeed", headers=headers,
                           json={"body": f"What a week in Year 3 ({n})"})
    if kind == "award":
        return client.post(f"{base}/api/dojoClass/{data.CLASS_ID}/awardBatch", headers=headers,
                           json={"behaviorId": data.BEHAVIORS[0]["_id"], "studentIds": [data.PUPILS[n % 3]["_id"]]})
    if kind == "upload":
        return client.post(f"{base}/api/upload", headers=headers, files={"file": (f"p{n}.jpg", PHOTO, "image/jpeg")})
    path = {"roster": f"/api/dojoClass/{data.CLASS_ID}/student", "skills": f"/api/dojoClass/{data.CLASS_ID}/behavior",
            "classes": "/api/dojoClass", "session": "/api/session"}[kind]
    return client.get(base + path, headers=headers)


def poll(client: httpx.Client, base: str) -> httpx.Response:
    if base.startswith("https://teach"):
        url, headers = f"https://{POLL}/subscribe/demo/channel/0/0", {}
    else:
        url, headers = f"{base}/subscribe/demo/channel/0/0", {"Host": POLL}
    with client.stream("GET", url, headers=headers) as response:
        for _ in response.iter_raw():
            pass
    return response


def drive(make_client, base: str, rate: float, seconds: float, seed: int) -> tuple[list[Sample], float]:
    """Start ``rate`` requests a second for ``seconds``; returns the samples and the rate actually started."""
    tickets: queue.Queue = queue.Queue()
    samples: list[Sample] = []
    lock = threading.Lock()

    def work() -> None:
        with make_client() as client:
            client.post(f"{base}/api/session", json={"login": "teacher@example.org", "password": data.PASSWORD},
                        headers={} if base.startswith("https://teach") else {"Host": TEACH})
            send(client, base, "skills", 0)
            while True:
                ticket = tickets.get()
                if ticket is None:
                    return
                kind, scheduled, n = ticket
                try:
                    response = poll(client, base) if kind == "poll" else send(client, base, kind, n)
                    status, error = response.status_code, None
                    if status >= 500 or (kind in ("message", "story", "award") and status != 200):
                        error = f"status {status}"
                except httpx.HTTPError as exc:
                    status, error = 0, type(exc).__name__
                with lock:
                    samples.append(Sample(kind, scheduled, time.monotonic() - scheduled, status, error))

    workers = [threading.Thread(target=work, daemon=True) for _ in range(WORKERS)]
    for w in workers:
        w.start()
    time.sleep(1.0)  # logins done
    rng = random.Random(seed)
    started = time.monotonic()
    total = int(rate * seconds)
    for n in range(total):
        at = started + n / rate
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        tickets.put((rng.choice(MIX), at, n))
    achieved = total / max(time.monotonic() - started, 1e-9)
    for _ in workers:
        tickets.put(None)
    for w in workers:
        w.join(120)
    return samples, achieved


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


WARM_UP_S = 60.0


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points, in y per x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def watch_memory(pid: int, every_s: float, stop: threading.Event, out: list) -> None:
    started = time.monotonic()
    while not stop.wait(every_s):
        out.append((time.monotonic() - started, rss_mb(pid), sum(rss_mb(c) for c in children(pid))))


def by_kind(samples: list[Sample]) -> dict[str, list[float]]:
    found = defaultdict(list)
    for s in samples:
        if s.error is None:
            found[s.kind].append(s.latency_s * 1000)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests started per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the proxy is driven")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help="how long the stand-in alone is driven")
    parser.add_argument("--memory-every", type=float, default=5.0, help="seconds between memory samples")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dojoguard-soak-"))
    port = free_port()
    standin = subprocess.Popen([sys.executable, "-m", "dojoguard.standin", "--port", str(port), "--folder",
                                str(folder / "standin")], stdout=subprocess.PIPE, text=True)
    standin.stdout.readline()
    standin_ca = folder / "standin" / "standin-ca.pem"
    config = folder / "config.yaml"
    config.write_text(json.dumps({"data_dir": str(folder / "data"), "logging": {"level": "warning"},
                                  "images": {"workers": 1},
                                  "proxy": {"device_groups": {"school-devices": ["127.0.0.0/8"]}}}))
    clock = folder / "clock"
    FileClock.write(clock, MONDAY_10)
    print(f"{args.rate:.0f} requests/s; proxy for {args.seconds:.0f} s, stand-in alone for "
          f"{args.baseline_seconds:.0f} s; data folder {folder / 'data'}")
    try:
        direct = ssl.create_default_context(cafile=str(standin_ca))
        base_samples, base_rate = drive(lambda: httpx.Client(verify=direct, timeout=60),
                                        f"https://localhost:{port}", args.rate, args.baseline_seconds, 1)
        proxy = ProxyProcess(config, folder, port, standin_ca, clock_file=clock).start()
        memory: list = []
        stop = threading.Event()
        watcher = threading.Thread(target=watch_memory, args=(proxy.process.pid, args.memory_every, stop, memory))
        try:
            trust = ssl.create_default_context(cafile=str(proxy.ca_cert))
            memory.append((0.0, rss_mb(proxy.process.pid), sum(rss_mb(c) for c in children(proxy.process.pid))))
            watcher.start()
            samples, rate = drive(lambda: httpx.Client(proxy=proxy.url, verify=trust, timeout=60),
                                  f"https://{TEACH}", args.rate, args.seconds, 2)
        finally:
            stop.set()
            proxy.stop()
    finally:
        standin.terminate()
        standin.wait(10)

    errors = [s for s in samples if s.error]
    base_errors = [s for s in base_samples if s.error]
    log_lines = [line for line in proxy.log().splitlines()
                 if '"level": "error"' in line or "[error" in line or "Traceback" in line]
    print(f"\n1. baseline (stand-in alone): {len(base_samples)} requests, started at {base_rate:.1f}/s, "
          f"{len(base_errors)} errors")
    print(f"2. through dojoguard: {len(samples)} requests, started at {rate:.1f}/s, {len(errors)} errors")
    for s in errors[:10]:
        print(f"   error: {s.kind} {s.error}")
    lat, base = by_kind(samples), by_kind(base_samples)
    print(f"   {'kind':9}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}   "
          f"{'base p50':>9}{'base p99':>9}{'p50 x':>7}{'p99 x':>7}")
    for kind in sorted(lat):
        v, b = lat[kind], base.get(kind, [])
        p50, p99, b50, b99 = percentile(v, 50), percentile(v, 99), percentile(b, 50), percentile(b, 99)
        print(f"   {kind:9}{len(v):6d}{p50:9.1f}{percentile(v, 95):9.1f}{p99:9.1f}{max(v):9.1f}   "
              f"{b50:9.1f}{b99:9.1f}{p50 / b50 if b else float('nan'):7.2f}{p99 / b99 if b else float('nan'):7.2f}")
    every = [x for v in lat.values() for x in v]
    print(f"   all      {len(every):6d}{percentile(every, 50):9.1f}{percentile(every, 95):9.1f}"
          f"{percentile(every, 99):9.1f}{max(every):9.1f}")
    print("3. memory (s, proxy RSS MB, image workers RSS MB): "
          + ", ".join(f"({t:.0f}, {p:.0f}, {w:.0f})" for t, p, w in memory))
    if len(memory) > 2:
        first, last = memory[1], memory[-1]  # the first sample after load began, and the last
        print(f"   proxy RSS {first[1]:.0f} MB at {first[0]:.0f} s -> {last[1]:.0f} MB at {last[0]:.0f} s: "
              f"ratio {last[1] / first[1]:.3f}")
        # Caches (SQLite pages, certificates, learned rosters) fill in the first minute; after
        # that, flat means no trend: the least-squares slope over the rest of the run.
        settled = [m for m in memory if m[0] >= WARM_UP_S]
        if len(settled) >= 3:
            slope = _slope([(t, p) for t, p, _ in settled]) * 60
            print(f"   after {WARM_UP_S:.0f} s of warm-up: {settled[0][1]:.0f} MB -> {settled[-1][1]:.0f} MB "
                  f"(ratio {settled[-1][1] / settled[0][1]:.3f}), trend {slope:+.2f} MB per minute; "
                  f"image workers {settled[0][2]:.0f} -> {settled[-1][2]:.0f} MB")
            # The proxy hands free pages back once a minute, so memory saws up and down within
            # each minute; the lowest point of each minute shows whether anything is kept.
            minutes: dict[int, list[float]] = {}
            for t, p, _ in settled:
                minutes.setdefault(int(t // 60), []).append(p)
            lows = [min(v) for _, v in sorted(minutes.items())]
            print(f"   lowest in each minute after warm-up (free pages go back once a minute): "
                  f"{', '.join(f'{low:.0f}' for low in lows)} MB")
    print(f"4. error lines in the proxy's log: {len(log_lines)}")
    for line in log_lines[:5]:
        print("   " + line[:200])
    sys.exit(1 if errors or log_lines else 0)


if __name__ == "__main__":
    main()
