"""Sends a kept request on to ClassDojo, as the teacher's device would have.

Used for deferred messages when their window opens and for held items a
leader approved. The request goes straight upstream (not back through the
proxy, so it is not judged twice), over TLS verified as mitmproxy verifies
upstream (see ``dojoguard.upstream``).
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass, field

from dojoguard.holds.store import StoredRequest
from dojoguard.upstream import https_connection, tls_context

# Headers that belong to the original connection, not to the request.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "content-length", "host"}


@dataclass(frozen=True)
class SendResult:
    status: int
    ok: bool
    detail: str
    # The request was written out whole but no answer came back (a timeout, a reset): ClassDojo
    # may have acted on it, so it must not be sent again without a person deciding.
    maybe_delivered: bool = False


@dataclass
class Sender:
    # (host, port) -> (address, port): the `--resolve` map used for staging.
    resolve: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    upstream_trust: str | None = None
    timeout: float = 30.0

    def __post_init__(self):
        self._context = tls_context(self.upstream_trust)

    def send(self, request: StoredRequest) -> SendResult:
        """Send the request; any failure is a result, not an exception, so it can be retried."""
        written = False
        try:
            if request.scheme == "https":
                conn = https_connection(request.host, request.port, resolve=self.resolve, context=self._context,
                                        timeout=self.timeout)
            else:
                address, port = self.resolve.get((request.host, request.port), (request.host, request.port))
                conn = http.client.HTTPConnection(address, port, timeout=self.timeout)
            host_header = request.header("host") or request.host
            conn.putrequest(request.method, request.path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host_header)
            for name, value in request.headers:
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(request.content)))
            conn.endheaders(request.content)
            written = True
            response = conn.getresponse()
            body = response.read(2048)
            conn.close()
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            if written:
                return SendResult(0, False, f"sent to {request.host}, but no answer came back: "
                                  f"{type(exc).__name__}: {exc}", maybe_delivered=True)
            return SendResult(0, False, f"could not reach {request.host}: {type(exc).__name__}: {exc}")
        ok = 200 <= response.status < 300
        detail = f"HTTP {response.status}"
        if not ok and response.status in (401, 403):
            detail += " (the teacher's ClassDojo session may have expired)"
        del body  # ClassDojo's reply may hold personal data: status only.
        return SendResult(response.status, ok, detail)
