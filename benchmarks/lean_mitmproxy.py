"""mitmproxy with exactly the addons dojoguard runs, and without dojoguard's own addon.

A diagnostic baseline for ``proxy_bench.py``: plain ``mitmdump`` loads about
thirty addons that dojoguard leaves out (see ``dojoguard/proxy/master.py``),
so comparing dojoguard with mitmdump mixes two things. Against this process,
the difference is what dojoguard's checks and audit record cost alone.

Run:  python benchmarks/lean_mitmproxy.py --port 8081 --confdir DIR [--upstream-trust CA.pem]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from mitmproxy import options

from dojoguard.proxy import master as proxy_master


async def serve(port: int, confdir: str, upstream_trust: str | None) -> None:
    master = proxy_master.build(options.Options(), with_termlog=False)
    master.options.update(listen_host="127.0.0.1", listen_port=port, confdir=confdir,
                          ssl_verify_upstream_trusted_ca=upstream_trust, http3=False)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--confdir", required=True)
    parser.add_argument("--upstream-trust", default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.confdir, args.upstream_trust))


if __name__ == "__main__":
    main()
