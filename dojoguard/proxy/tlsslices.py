"""Encrypting a large body in slices, so that a photo upload does not stall every other teacher.

mitmproxy hands a whole request body to OpenSSL in one ``sendall`` (its
``TLSLayer.send_data``), and reads the ciphertext out of OpenSSL's memory
buffer afterwards. For a 4 MB photo that buffer grows from nothing to 4 MB
by steps of a third, and OpenSSL moves it at every step: it allocates a new
buffer, copies the old one over and wipes it. mitmproxy runs all of it in
one step of the event loop, after the photo's check, so every other request
waits for it. Measured on fresh connections (``benchmarks/tls_slices_bench.py``,
one 4.2 MB body): 9.6 ms of CPU and 5,000 page faults that way, 3.1 ms and
1,000 in slices.

Here the body goes to OpenSSL a slice at a time, and each slice's ciphertext
is taken out before the next goes in: the buffer never grows past one slice.
The bytes on the wire are the same TLS records in the same order; only the
memory they pass through changes. Bodies of one slice or less take
mitmproxy's own path unchanged.

This replaces one method of a mitmproxy class, because mitmproxy creates its
TLS layers itself and offers no setting for it. ``install`` first checks that
the method is still the one this was written against (mitmproxy is pinned);
after an upgrade that changed it, mitmproxy's own method stays in place and
the proxy says so at start: slower with large bodies, never wrong.
"""

from __future__ import annotations

import hashlib
import inspect

from mitmproxy.proxy import commands
from mitmproxy.proxy.layers import tls
from OpenSSL import SSL

# Plaintext per slice: four full TLS records. The ciphertext of one slice is
# read out in one piece, so a body becomes as many writes to the socket as
# mitmproxy's own reads of 64 kB would make.
SLICE = 4 * 16 * 1024
# One slice of ciphertext with room for the records' headers and tags.
_READ = SLICE + 4096

# The source of the mitmproxy method replaced here, as of the pinned version.
_EXPECTED = "35a29a1b0b0cb184aaecf3585870bb38fa8663f01ad6a8ea09dc6ef6fe46fcaa"

_original = tls.TLSLayer.send_data


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
        while True:
            try:
                out = self.tls.bio_read(_READ)
            except SSL.WantReadError:
                break
            yield commands.SendData(self.conn, out)
    yield from self.tls_interact()


def source_digest() -> str:
    return hashlib.sha256(inspect.getsource(_original).encode()).hexdigest()


def install() -> bool:
    """Use ``send_data`` for every TLS connection of this process; False if mitmproxy's method has changed."""
    if tls.TLSLayer.send_data is send_data:
        return True
    if source_digest() != _EXPECTED:
        return False
    tls.TLSLayer.send_data = send_data
    return True
