"""``python -m dojoguard.standin``: run the ClassDojo stand-in until interrupted."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from dojoguard.standin.server import StandIn


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dojoguard.standin",
                                     description="A local HTTPS stand-in for ClassDojo (testing only).")
    parser.add_argument("--listen", metavar="HOST:PORT", default=None,
                        help="address to listen on, e.g. 0.0.0.0:8443 or [::1]:8443 (default: 127.0.0.1 and --port)")
    parser.add_argument("--port", type=int, default=8443, help="port to listen on (0: any free port)")
    parser.add_argument("--folder", type=Path, default=None, help="where to write its CA and certificate")
    args = parser.parse_args()
    host, port = "127.0.0.1", args.port
    if args.listen:
        host, _, given = args.listen.rpartition(":")
        if not host or not given.isdigit():
            parser.error(f"--listen {args.listen!r} is not HOST:PORT (e.g. 0.0.0.0:8443 or [::1]:8443)")
        port = int(given)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="dojoguard-standin-"))
    standin = StandIn(folder, host=host, port=port)
    port = standin.start()
    shown = f"[{standin.host}]" if ":" in standin.host else standin.host
    print(f"ClassDojo stand-in on {shown}:{port} (testing only)")
    print(f"Its CA certificate: {standin.ca_cert}")
    print(f"Run the proxy against it: dojoguard run --upstream-trust {standin.ca_cert} "
          f"--resolve teach.classdojo.com:443:{shown}:{port} --resolve api.classdojo.com:443:{shown}:{port}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
