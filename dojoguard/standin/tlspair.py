"""Two OpenSSL connections talking through memory buffers, as mitmproxy drives TLS: for tests and benchmarks.

``connected()`` returns a client and a server that have completed their
handshake; ``received(server, pieces)`` decrypts what the client sent.
(A mitmproxy TLS layer over the client is ``proxy.tlsslices.layer_over``:
only ``proxy/`` imports mitmproxy.)
"""

from __future__ import annotations

import datetime
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL


@functools.cache
def _contexts() -> tuple[SSL.Context, SSL.Context]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "classdojo.test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(datetime.datetime(2020, 1, 1))
            .not_valid_after(datetime.datetime(2040, 1, 1)).sign(key, hashes.SHA256()))
    server = SSL.Context(SSL.TLS_METHOD)
    server.use_certificate(cert)
    server.use_privatekey(key)
    return SSL.Context(SSL.TLS_METHOD), server


def _pump(a: SSL.Connection, b: SSL.Connection) -> None:
    while True:
        try:
            b.bio_write(a.bio_read(65536))
        except SSL.WantReadError:
            return


def connected() -> tuple[SSL.Connection, SSL.Connection]:
    """A fresh client and server connection, handshake done."""
    client_ctx, server_ctx = _contexts()
    client, server = SSL.Connection(client_ctx), SSL.Connection(server_ctx)
    client.set_connect_state()
    server.set_accept_state()
    for _ in range(5):
        for side in (client, server):
            try:
                side.do_handshake()
            except SSL.WantReadError:
                pass
        _pump(client, server)
        _pump(server, client)
    return client, server


def received(server: SSL.Connection, pieces: list[bytes]) -> bytes:
    """The plaintext of the ciphertext ``pieces``, as the server reads it."""
    got = bytearray()
    for piece in pieces:
        server.bio_write(piece)
        while True:
            try:
                got += server.recv(1 << 20)
            except SSL.WantReadError:
                break
    return bytes(got)
