"""Serve the console over HTTPS with cheroot: a threaded WSGI server with TLS, in its own process.

TLS 1.2 or newer only. The peer address cheroot passes as REMOTE_ADDR is
the socket's, which is what ``console.admin_networks`` is checked against.
"""

from __future__ import annotations

import signal
import ssl
import threading

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from dojoguard.console.tls import Certificate

THREADS = 8


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host in ("", "*"):
        host = "::"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def make_server(app, host: str, port: int, certificate: Certificate) -> wsgi.Server:
    server = wsgi.Server((host, port), app, numthreads=THREADS, server_name="dojoguard-console",
                         shutdown_timeout=5)
    adapter = BuiltinSSLAdapter(str(certificate.cert_file), str(certificate.key_file))
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    server.ssl_adapter = adapter
    return server


def serve(server: wsgi.Server, ready=None) -> None:
    """Run until SIGTERM or SIGINT; ``ready(address)`` is called once the socket listens.

    The server runs on its own thread and the main thread only waits: a
    signal handler that stopped cheroot from inside its own loop would wait
    for that loop to end.
    """
    server.prepare()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    serving = threading.Thread(target=server.serve, name="console-server", daemon=True)
    try:
        serving.start()
        if ready is not None:
            ready(server.bind_addr)
        while not stop.wait(0.5) and serving.is_alive():
            pass
    finally:
        server.stop()
        serving.join(10)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
