"""What encrypting a photo upload in slices saves: mitmproxy's TLS write against dojoguard's.

Both send the same body through a real OpenSSL connection over memory
buffers, as mitmproxy drives it, each on a fresh connection (a teacher's
device opens one, uploads a photo or two, and goes), with malloc tuned as the
proxy tunes it (``dojoguard/proxy/heap.py``). Printed: the CPU time and page
faults of one body, median of the rounds, for (a) mitmproxy's
``TLSLayer.send_data``, the whole body in one ``sendall``, and (b)
``dojoguard.proxy.tlsslices.send_data``, and the ratio b/a. The peer checks
every byte of both.

Run:  python benchmarks/tls_slices_bench.py [--size BYTES] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from dojoguard.proxy import heap, tlsslices
from dojoguard.standin import tlspair


def page_faults() -> int:
    with open("/proc/self/stat", encoding="ascii") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def one_body(send_data, body: bytes) -> tuple[float, int]:
    """CPU ms and page faults of sending ``body`` on a fresh connection; the peer checks it."""
    client, server = tlspair.connected()
    layer = tlsslices.layer_over(client)
    faults, started = page_faults(), time.thread_time()
    pieces = [command.data for command in send_data(layer, body)]
    cpu_ms, faults = (time.thread_time() - started) * 1000, page_faults() - faults
    if tlspair.received(server, pieces) != body:
        raise AssertionError("the peer did not receive the body")
    return cpu_ms, faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4_200_000, help="body size (a 12 MP photo is about 4 MB)")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    tuned = heap.tune()
    body = os.urandom(args.size)
    runs = {"(a) mitmproxy": tlsslices._original, "(b) sliced": tlsslices.send_data}
    cpu = {name: [] for name in runs}
    faults = {name: [] for name in runs}
    for _ in range(args.rounds):  # alternate, so that machine noise falls on both alike
        for name, send_data in runs.items():
            c, f = one_body(send_data, body)
            cpu[name].append(c)
            faults[name].append(f)
    print(f"one {args.size / 1e6:.1f} MB body on a fresh TLS connection, median of {args.rounds} rounds "
          f"(malloc tuned: {tuned})")
    for name in runs:
        print(f"   {name:16} CPU {statistics.median(cpu[name]):6.2f} ms   page faults {statistics.median(faults[name]):6.0f}")
    a, b = (statistics.median(cpu[name]) for name in runs)
    print(f"   ratio b/a: CPU {b / a:.2f}")


if __name__ == "__main__":
    main()
