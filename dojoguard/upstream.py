"""Connections dojoguard opens to ClassDojo itself (fetching an attachment, sending on a held request).

Both honour the proxy's ``--resolve`` map (dial another address, still verify
and name the real host, as curl does) and verify certificates as mitmproxy
does upstream: certifi's bundle, plus the staging CA when one is configured.
"""

from __future__ import annotations

import http.client
import ssl

import certifi

Resolve = dict[tuple[str, int], tuple[str, int]]


def tls_context(upstream_trust: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if upstream_trust:
        context.load_verify_locations(cafile=upstream_trust)
    return context


def https_connection(host: str, port: int, *, resolve: Resolve, context: ssl.SSLContext,
                     timeout: float) -> http.client.HTTPSConnection:
    """An HTTPS connection to ``host:port`` (or where ``resolve`` sends it), verified for ``host``."""
    address, target_port = resolve.get((host, port), (host, port))
    return _NamedHTTPSConnection(address, target_port, server_hostname=host, timeout=timeout, context=context)


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """Dials one address but verifies (and sends SNI for) another name: curl's --resolve."""

    def __init__(self, address: str, port: int, *, server_hostname: str, **kwargs):
        super().__init__(address, port, **kwargs)
        self._server_hostname = server_hostname

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)
