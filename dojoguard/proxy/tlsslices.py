"""Encrypting a large body in slices, so that a photo upload does not stall every other teacher.

mitmproxy hands a whole request body to OpenSSL in one ``sendall`` (its
``TLSLayer.send_data``), and reads the ciphertext out of OpenSSL's memory
buffer afterwards. For a 4 MB photo that buffer grows from nothing to 4 MB
by steps of a third, and OpenSSL moves it at every step: it allocates a new
buffer, copies the old one over and wipes it. mitmproxy runs all of it in
one step of the event loop, after the photo's check, so every other request
waits for it. Measured on fresh connections (``benchmarks/tls_slices_bench.py``,
one 4.2 MB body): 8.7 ms of CPU and 5,000 page faults that way, 2.7 ms and
1,000 in slices.

Here the body goes to OpenSSL a slice at a time, and each slice's ciphertext
is taken out before the next goes in: the buffer never grows past one slice.
The bytes on the wire are the same TLS records in the same order; only the
memory they pass through changes. Bodies of one slice or less take
mitmproxy's own path unchanged.

This replaces one method of a mitmproxy class, because mitmproxy creates its
TLS layers itself and offers no setting for it. ``install`` first checks that
the method, and the ``tls_interact`` it calls, are still the ones this was
written against (mitmproxy is pinned); after an upgrade that changed either,
mitmproxy's own method stays in place and the proxy says so at start: slower
with large bodies, never wrong.
"""

from __future__ import annotations


from mitmproxy import connection
from mitmproxy.proxy.layers import tls
from OpenSSL import SSL

from dojoguard.proxy import patches

# Plaintext per slice: three full TLS records, so that one slice's ciphertext
# (49,218 bytes) comes out of mitmproxy's own read of up to 64 kB in one piece.
SLICE = 3 * 16 * 1024

# The sources this relies on, as of the pinned version: the method replaced, and the read of
# OpenSSL's output it calls after each slice (its 64 kB read is what SLICE is sized for).
_EXPECTED = "a6d4db4d291d36a96e40c0036aae256fe0b127bf268669f0774f05cd1c9e74b1"

_original = tls.TLSLayer.send_data
_own = patches.own(tls.TLSLayer, "send_data")


def send_data(self, data: bytes):
    """``TLSLayer.send_data``, one slice at a time for bodies over one slice."""
    if len(data) <= SLICE:
        yield from _original(self, data)
        return
    view = memoryview(data)
    for start in range(0, len(view), SLICE):
        try:
            self.tls.sendall(view[start:start + SLICE])
        except (SSL.ZeroReturnError, SSL.SysCallError):
            # As mitmproxy: the peer has gone, what is left of the body is dropped.
            break
        yield from self.tls_interact()
    yield from self.tls_interact()  # what a slice cut short by the peer's going left behind


def layer_over(ssl_conn) -> tls.ServerTLSLayer:
    """A TLS layer with only what ``send_data`` needs, its OpenSSL connection and its peer (tests, benchmark)."""
    layer = object.__new__(tls.ServerTLSLayer)
    layer.tls = ssl_conn
    layer.conn = connection.Server(address=("classdojo.test", 443))
    return layer


def source_digest() -> str:
    """The digest of the pinned mitmproxy code this replaces or relies on (see ``_EXPECTED``)."""
    return patches.source_digest(_original, tls.TLSLayer.tls_interact)


def install() -> bool:
    """Use ``send_data`` for every TLS connection of this process; False if mitmproxy's method has changed."""
    if tls.TLSLayer.send_data is send_data:
        return True
    if source_digest() != _EXPECTED:
        return False
    tls.TLSLayer.send_data = send_data
    return True


def uninstall() -> None:
    """Put mitmproxy's own ``send_data`` back."""
    patches.restore(tls.TLSLayer, "send_data", _own)
