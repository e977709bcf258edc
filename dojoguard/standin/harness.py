"""Run the real proxy (``dojoguard run``) as a child process in front of the stand-in.

Used by the integration tests, the demonstration and the benchmark, so that
all three exercise the proxy exactly as it runs in a school.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from dojoguard.standin.certs import HOSTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProxyProcess:
    """``dojoguard run`` pointed at a stand-in on ``standin_port``; ``start()`` waits until it listens."""

    def __init__(self, config: Path, folder: Path, standin_port: int, standin_ca: Path, *,
                 clock_file: Path | None = None, extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.confdir = Path(folder) / "mitmproxy"
        args = [sys.executable, "-m", "dojoguard", "run", "--config", str(config),
                "--listen", f"127.0.0.1:{self.port}", "--confdir", str(self.confdir),
                "--upstream-trust", str(standin_ca)]
        for host in HOSTS:
            args += ["--resolve", f"{host}:443:127.0.0.1:{standin_port}"]
        if clock_file is not None:
            args += ["--clock-file", str(clock_file)]
        self.args = args + list(extra_args)
        self.output: list[str] = []
        self.process: subprocess.Popen | None = None

    @property
    def ca_cert(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> "ProxyProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env)
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line)
                if "dojoguard is listening" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the proxy did not start:\n" + "".join(self.output))
        return self

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def log(self) -> str:
        return "".join(self.output)

    def __enter__(self) -> "ProxyProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
