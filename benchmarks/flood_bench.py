"""The floods of issue 14 against dojoguard with and without its bounds, measured in the same run.

Each figure is printed for the baseline (the same code with the bounds
taken out) and for dojoguard as it ships, with the ratio:

1. Chained ``CONNECT 127.1:PORT`` lines naming the proxy itself: tunnels
   the proxy opened into itself, its descriptors and resident memory, and
   the latency of text-message writes sent meanwhile.
2. Slow writes (headers and part of a body, then silence) from one device,
   held open: the proxy's descriptors and memory while they are held, how
   many are still open when the body timeout has passed, and text-message
   latency meanwhile.
3. Made-up sessions (logins) and unclassified writes to made-up paths: rows
   in the proxy's own database afterwards.
4. Ten 62-megapixel PNGs (7900 x 7900, under the 64 MP cap; half of them
   transparent) through an image worker: the worker's peak resident memory,
   against the documented ceiling of 600 MB.
5. A real-sized photo from another teacher sent just after a batch of ten
   huge PNGs: how long it waits for its check.

The baseline proxy is ``dojoguard run`` with ``bounds.addons`` reduced to
the Guard alone and the over-limit refusal not installed (what the code did
before); the baseline worker decodes as before (full-size copies, no memory
budget) and the baseline queue is first come, first served. The floods are
smaller than the review's (counts below); every connection is on loopback.

Run:  python benchmarks/flood_bench.py            (the counts below)
      python benchmarks/flood_bench.py --quick    (smaller, while developing)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import socket
import sqlite3
import ssl
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from PIL import Image

from dojoguard.clock import FileClock
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess

MESSAGE_PATH = f"/api/message-thread/{data.THREAD_ID}/message"
MESSAGE = f"https://teach.classdojo.com{MESSAGE_PATH}"
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
FLOOD_DEVICE = "127.0.0.5"
CEILING_MB = 600

# The baseline: the same proxy, its bounds taken out (as before them).
UNBOUNDED = ("import sys; from dojoguard.proxy import bounds, oversize; "
             "bounds.addons = lambda services, guard: [guard]; oversize.install = lambda: False; "
             "sys.argv[0] = 'dojoguard'; from dojoguard.cli import main; main()")


class Proxy(ProxyProcess):
    def __init__(self, config, folder, standin, clock, *, bounded: bool):
        super().__init__(config, folder, standin.port, standin.ca_cert, clock_file=clock)
        self.bounded = bounded
        if not bounded:
            self.args[1:3] = ["-c", UNBOUNDED]  # "-m dojoguard" -> the same CLI without the bounds

    @property
    def pid(self) -> int:
        return self.process.pid

    def fds(self) -> int:
        return len(list(Path(f"/proc/{self.pid}/fd").iterdir()))

    def rss_mb(self) -> float:
        return _status(self.pid, "VmRSS")


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def settle(proxy: Proxy, timeout_s: float = 20.0) -> None:
    """Wait until the proxy's descriptors stop changing (the last flood's connections are gone)."""
    deadline, last = time.monotonic() + timeout_s, -1
    while time.monotonic() < deadline:
        now = proxy.fds()
        if now == last:
            return
        last = now
        time.sleep(1.0)


def client_for(proxy: Proxy) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(proxy.ca_cert))
    client = httpx.Client(proxy=proxy.url, verify=context, timeout=60)
    login = client.post("https://teach.classdojo.com/api/session",
                        json={"login": "teacher@example.org", "password": data.PASSWORD})
    login.raise_for_status()
    return client


def text_latencies(client: httpx.Client, count: int, pause_s: float = 0.05) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            response = client.post(MESSAGE, json={"body": "Reading books are due back tomorrow"})
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        out.append((time.perf_counter() - started) * 1000 if ok else float("inf"))
        time.sleep(pause_s)
    return out


def p50_max(values: list[float]) -> str:
    finite = [v for v in values if v != float("inf")]
    failed = len(values) - len(finite)
    if not finite:
        return "all failed"
    text = f"median {statistics.median(finite):.0f} ms, max {max(finite):.0f} ms"
    return text + (f", {failed} failed" if failed else "")


# -- 1. chained CONNECTs into the proxy itself ---------------------------------

def loop_flood(proxy: Proxy, client: httpx.Client, connections: int, lines: int) -> dict:
    fds0, rss0 = proxy.fds(), proxy.rss_mb()
    line = f"CONNECT 127.1:{proxy.port} HTTP/1.1\r\nHost: 127.1:{proxy.port}\r\n\r\n".encode()
    sockets, tunnels = [], 0
    for _ in range(connections):
        raw = socket.socket()
        raw.bind((FLOOD_DEVICE, 0))
        raw.connect(("127.0.0.1", proxy.port))
        raw.sendall(line * lines)
        sockets.append(raw)
    latencies = text_latencies(client, 20)
    time.sleep(1.0)
    for raw in sockets:
        raw.settimeout(0.5)
        answer = b""
        try:
            while chunk := raw.recv(65536):
                answer += chunk
        except (TimeoutError, OSError):
            pass
        tunnels += answer.count(b"200 Connection established")
    peak_fds, peak_rss = proxy.fds(), proxy.rss_mb()
    for raw in sockets:
        raw.close()
    return {"bytes sent": len(line) * lines * connections, "tunnels": tunnels, "fds": (fds0, peak_fds),
            "rss": (rss0, peak_rss), "text": latencies}


# -- 2. slow writes -------------------------------------------------------------

def slow_writes(proxy: Proxy, client: httpx.Client, count: int, hold_s: float) -> dict:
    fds0, rss0 = proxy.fds(), proxy.rss_mb()
    context = ssl.create_default_context(cafile=str(proxy.ca_cert))
    held: list[ssl.SSLSocket] = []
    refused = 0
    for _ in range(count):
        try:
            raw = socket.socket()
            raw.bind((FLOOD_DEVICE, 0))
            raw.settimeout(5)
            raw.connect(("127.0.0.1", proxy.port))
            raw.sendall(b"CONNECT teach.classdojo.com:443 HTTP/1.1\r\nHost: teach.classdojo.com:443\r\n\r\n")
            if not raw.recv(4096).startswith(b"HTTP/1.1 200"):
                raise OSError("no tunnel")
            tls = context.wrap_socket(raw, server_hostname="teach.classdojo.com")
            tls.sendall(f"POST {MESSAGE_PATH} HTTP/1.1\r\nHost: teach.classdojo.com\r\n"
                        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"body\": \"".encode())
            held.append(tls)
        except OSError:
            refused += 1
    latencies = text_latencies(client, 20)
    during_fds, during_rss = proxy.fds(), proxy.rss_mb()
    time.sleep(hold_s)
    still_open = 0
    for tls in held:
        tls.settimeout(0.05)
        try:
            if tls.recv(1):
                still_open += 1  # an answer arrived; the connection is still there
        except TimeoutError:
            still_open += 1  # nothing to read yet: the proxy is still holding it open
        except OSError:
            pass  # reset or closed by the proxy
    after_fds, after_rss = proxy.fds(), proxy.rss_mb()
    for tls in held:
        try:
            tls.close()
        except OSError:
            pass
    time.sleep(1.0)
    return {"opened": len(held), "refused at once": refused, "still open after hold": still_open,
            "fds": (fds0, during_fds, after_fds), "rss": (rss0, during_rss, after_rss, proxy.rss_mb()),
            "text": latencies}


# -- 3. made-up sessions and unclassified paths ---------------------------------

def learned_rows(proxy: Proxy, folder: Path, sessions: int, paths: int) -> dict:
    context = ssl.create_default_context(cafile=str(proxy.ca_cert))
    with httpx.Client(proxy=proxy.url, verify=context, timeout=60) as c:
        for _ in range(sessions):
            c.post("https://teach.classdojo.com/api/session",
                   json={"login": "teacher@example.org", "password": data.PASSWORD}).raise_for_status()
            c.cookies.clear()
        for i in range(paths):
            c.post(f"https://teach.classdojo.com/api/madeUp{i}Feature", json={"flag": True})
    time.sleep(1.0)
    db = sqlite3.connect(folder / "data" / "proxy.sqlite")
    try:
        return {"sessions": db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0],
                "unclassified": db.execute("SELECT COUNT(*) FROM unclassified").fetchone()[0]}
    finally:
        db.close()


def proxy_figures(args) -> dict:
    results = {}
    for bounded in (False, True):
        folder = Path(tempfile.mkdtemp(prefix="flood-bench-"))
        clock = folder / "clock"
        FileClock.write(clock, MONDAY_10)
        doc = {"data_dir": str(folder / "data"), "images": {"workers": 1}, "logging": {"format": "json"},
               "proxy": {"body_timeout_s": args.body_timeout,
                         # The baseline had no caps at all.
                         "max_sessions": args.max_sessions if bounded else 10**9,
                         "max_unclassified_shapes": args.max_shapes if bounded else 10**9}}
        config = folder / "config.yaml"
        config.write_text(json.dumps(doc))
        with StandIn(folder / "standin") as standin:
            proxy = Proxy(config, folder, standin, clock, bounded=bounded).start()
            try:
                client = client_for(proxy)
                idle = text_latencies(client, 20)
                name = "bounded" if bounded else "baseline"
                print(f"[{name}] idle text writes: {p50_max(idle)}", flush=True)
                loop = loop_flood(proxy, client, args.loop_connections, args.loop_lines)
                print(f"[{name}] loop flood done: {loop['tunnels']} tunnels", flush=True)
                settle(proxy)
                slow = slow_writes(proxy, client, args.slow, args.body_timeout + 3)
                print(f"[{name}] slow writes done", flush=True)
                settle(proxy)
                rows = learned_rows(proxy, folder, args.sessions, args.paths)
                results[name] = {"idle": idle, "loop": loop, "slow": slow, "rows": rows}
                client.close()
            finally:
                proxy.stop()
    return results


# -- 4 and 5. image workers -----------------------------------------------------

def huge_pngs(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        mode = "RGBA" if i % 2 else "RGB"
        image = Image.new(mode, (7900, 7900), (200, 180, 160, 200)[:len(mode)])
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        out.append(buffer.getvalue())
    return out


def ordinary_photo() -> bytes:
    image = Image.new("RGB", (4032, 3024), (120, 140, 160))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _naive_prepare(image, *, long_side, original_size):
    """How a frame was prepared before: turned and converted at full size, then scaled."""
    import numpy as np
    from PIL import ImageOps

    from dojoguard.consent_registry import decoding

    oriented = ImageOps.exif_transpose(image) or image
    rgb = decoding.to_rgb(oriented)
    width, height = original_size
    if long_side > 0 and max(rgb.size) > long_side:
        factor = long_side / max(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor))),
                         Image.Resampling.BILINEAR, reducing_gap=2.0)
    scale = max(width, height) / max(rgb.size)
    return decoding.Frame(np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), scale, (width, height))


def _worker_peak(bounded: bool, pictures: list[bytes], answer) -> None:
    """In a fresh process, as an image worker: the checks of ``pictures``, then the peak resident memory."""
    from dojoguard.consent_registry import decoding, imagecheck, worker

    if bounded:
        worker.initialise(330 * 2**20, CEILING_MB * 2**20)
    else:
        worker.initialise(0, 0)
        decoding.prepare = _naive_prepare
    settings = imagecheck.settings_from({})
    idle = worker.memory_status()
    codes = [worker.check(p, settings, None, False).error_code for p in pictures]
    answer.send((idle, worker.memory_status(), codes))


def worker_peaks(pictures: list[bytes]) -> dict:
    out = {}
    context = multiprocessing.get_context("spawn")
    for bounded in (False, True):
        mine, theirs = context.Pipe()
        process = context.Process(target=_worker_peak, args=(bounded, pictures, theirs))
        process.start()
        idle, status, codes = mine.recv() if mine.poll(600) else ({}, {}, ["no answer"])
        process.join(30)
        out["bounded" if bounded else "baseline"] = {"idle": idle.get("VmRSS", 0.0), "peak": status.get("VmHWM", 0.0),
                                                     "codes": codes}
    return out


def queue_waits(pictures: list[bytes], photo: bytes) -> dict:
    """How long another teacher's photo waits behind a batch of huge ones, first come first served or in turns."""
    from dojoguard.consent_registry import worker
    from dojoguard.consent_registry.imagecheck import ImageChecker

    out = {}
    for fair in (False, True):
        checker = ImageChecker({"workers": 1, "timeout_s": 120}, None, {}, workers=1)
        try:
            async def scenario(checker: ImageChecker, fair: bool) -> float:
                await checker.run(worker.ping)

                async def one(who: str, data: bytes) -> None:
                    # The baseline puts everyone in one queue: what a plain semaphore did.
                    await checker.run(worker.check, data, checker.settings, None, False,
                                      requester=who if fair else "")

                batch = [asyncio.create_task(one("teacher:a", p)) for p in pictures]
                await asyncio.sleep(0.2)
                started = time.perf_counter()
                await one("teacher:b", photo)
                waited = time.perf_counter() - started
                await asyncio.gather(*batch)
                return waited

            out["fair" if fair else "baseline"] = asyncio.run(scenario(checker, fair))
        finally:
            checker.close()
    return out


# -- report -----------------------------------------------------------------------

def ratio(after: float, before: float) -> str:
    return f"{after / before:.2f}x" if before else "n/a"


def report(proxy: dict, peaks: dict | None, waits: dict | None, args) -> None:
    a, b = proxy["baseline"], proxy["bounded"]
    print("\n== 1. chained CONNECT 127.1:PORT lines "
          f"({args.loop_connections} connections x {args.loop_lines} lines, {a['loop']['bytes sent'] // 1024} kB)")
    print(f"tunnels into itself: baseline {a['loop']['tunnels']}, bounded {b['loop']['tunnels']}")
    print(f"descriptors (before -> during): baseline {a['loop']['fds'][0]} -> {a['loop']['fds'][1]}, "
          f"bounded {b['loop']['fds'][0]} -> {b['loop']['fds'][1]}")
    print(f"RSS MB (before -> during): baseline {a['loop']['rss'][0]:.0f} -> {a['loop']['rss'][1]:.0f}, "
          f"bounded {b['loop']['rss'][0]:.0f} -> {b['loop']['rss'][1]:.0f}")
    print(f"text writes during it: baseline {p50_max(a['loop']['text'])}; bounded {p50_max(b['loop']['text'])} "
          f"(idle: {p50_max(a['idle'])}; {p50_max(b['idle'])})")
    print(f"\n== 2. {args.slow} slow writes from one device, held {args.body_timeout + 3:g} s "
          f"(body_timeout_s {args.body_timeout:g}, max_connections_per_client 128)")
    for name, r in (("baseline", a), ("bounded", b)):
        s = r["slow"]
        print(f"{name}: opened {s['opened']}, refused at once {s['refused at once']}, still open after the hold "
              f"{s['still open after hold']}; descriptors {s['fds'][0]} -> {s['fds'][1]} -> {s['fds'][2]}; "
              f"RSS MB {s['rss'][0]:.0f} -> {s['rss'][1]:.0f} -> {s['rss'][2]:.0f} (after closing: {s['rss'][3]:.0f}); "
              f"text writes meanwhile {p50_max(s['text'])}")
    print(f"descriptors while held, ratio bounded/baseline: "
          f"{ratio(b['slow']['fds'][1] - b['slow']['fds'][0], a['slow']['fds'][1] - a['slow']['fds'][0])}")
    print(f"\n== 3. {args.sessions} made-up sessions, {args.paths} unclassified writes to made-up paths "
          f"(caps {args.max_sessions} and {args.max_shapes})")
    print(f"sessions rows: baseline {a['rows']['sessions']}, bounded {b['rows']['sessions']}; "
          f"unclassified rows: baseline {a['rows']['unclassified']}, bounded {b['rows']['unclassified']}")
    if peaks:
        print(f"\n== 4. image worker peak resident memory, {args.pngs} PNGs of 7900x7900 (half transparent)")
        for name in ("baseline", "bounded"):
            p = peaks[name]
            print(f"{name}: idle {p['idle']:.0f} MB, peak {p['peak']:.0f} MB (growth {p['peak'] - p['idle']:.0f} MB); "
                  f"results {p['codes']}")
        growth = {name: peaks[name]["peak"] - peaks[name]["idle"] for name in ("baseline", "bounded")}
        print(f"peak ratio {ratio(peaks['bounded']['peak'], peaks['baseline']['peak'])}, growth ratio "
              f"{ratio(growth['bounded'], growth['baseline'])}; "
              f"ceiling {CEILING_MB} MB (this script's own imports add to each worker's idle size; "
              f"a worker of the proxy idles at about 170 MB)")
    if waits:
        print(f"\n== 5. another teacher's 12 MP photo sent just after {args.pngs} huge PNGs (one worker)")
        print(f"waited: first come first served {waits['baseline']:.1f} s, in turns {waits['fair']:.1f} s, "
              f"ratio {ratio(waits['fair'], waits['baseline'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-images", action="store_true")
    args = parser.parse_args()
    args.loop_connections, args.loop_lines = (2, 40) if args.quick else (8, 120)
    args.slow = 60 if args.quick else 300
    args.body_timeout = 5.0
    args.sessions, args.paths = (60, 60) if args.quick else (400, 400)
    args.max_sessions, args.max_shapes = 50, 50
    args.pngs = 4 if args.quick else 10
    proxy = proxy_figures(args)
    peaks = waits = None
    if not args.skip_images:
        pictures = huge_pngs(args.pngs)
        peaks = worker_peaks(pictures)
        waits = queue_waits(pictures, ordinary_photo())
    report(proxy, peaks, waits, args)


if __name__ == "__main__":
    sys.exit(main())
