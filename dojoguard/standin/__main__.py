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
    parser.add_argument("--port", type=int, default=8443, help="port to listen on (0: any free port)")
    parser.add_argument("--folder", type=Path, default=None, help="where to write its CA and certificate")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="dojoguard-standin-"))
    standin = StandIn(folder, port=args.port)
    port = standin.start()
    print(f"ClassDojo stand-in on 127.0.0.1:{port} (testing only)")
    print(f"Its CA certificate: {standin.ca_cert}")
    print(f"Run the proxy against it: dojoguard run --upstream-trust {standin.ca_cert} "
          f"--resolve teach.classdojo.com:443:127.0.0.1:{port} --resolve api.classdojo.com:443:127.0.0.1:{port}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
