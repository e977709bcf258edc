"""Sliced TLS writes: the same bytes reach the peer, through a buffer that never grows past a slice."""

from __future__ import annotations

import os

import pytest
import structlog
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers import tls
from OpenSSL import SSL

from dojoguard.proxy import master, tlsslices
from dojoguard.proxy.tlsslices import layer_over
from dojoguard.standin import tlspair
from dojoguard.standin.tlspair import received


@pytest.fixture
def pair():
    return tlspair.connected()


def send(layer, data: bytes) -> list[bytes]:
    out = []
    for command in tlsslices.send_data(layer, data):
        assert isinstance(command, commands.SendData) and command.connection is layer.conn
        out.append(command.data)
    return out


@pytest.mark.parametrize("size", [1, tlsslices.SLICE - 1, tlsslices.SLICE, tlsslices.SLICE + 1,
                                  3 * tlsslices.SLICE, 4_200_007])
def test_the_peer_receives_exactly_the_body(pair, size):
    client, server = pair
    body = os.urandom(size)
    assert received(server, send(layer_over(client), body)) == body


def test_a_large_body_goes_out_as_one_write_per_slice(pair):
    """Each slice's ciphertext is read out whole before the next slice goes in."""
    client, server = pair
    body = os.urandom(4_200_007)
    pieces = send(layer_over(client), body)
    assert len(pieces) == -(-len(body) // tlsslices.SLICE)
    assert max(map(len, pieces)) < tlsslices.SLICE + 1024  # one slice and its record overhead, never more
    assert received(server, pieces) == body


def test_successive_bodies_keep_their_order(pair):
    client, server = pair
    bodies = [os.urandom(n) for n in (200_000, 10, 70_000)]
    layer = layer_over(client)
    assert received(server, [p for b in bodies for p in send(layer, b)]) == b"".join(bodies)


class _GoneAfter:
    """An OpenSSL connection whose peer goes away after ``slices`` slices."""

    def __init__(self, real: SSL.Connection, slices: int):
        self.real, self.left = real, slices

    def sendall(self, data):
        if self.left == 0:
            raise SSL.SysCallError(32, "EPIPE")
        self.left -= 1
        return self.real.sendall(data)

    def bio_read(self, n):
        return self.real.bio_read(n)


def test_a_peer_that_goes_away_ends_the_body_quietly(pair):
    """As in mitmproxy: what could be encrypted is sent, the rest is dropped without an exception."""
    client, server = pair
    body = os.urandom(5 * tlsslices.SLICE)
    pieces = send(layer_over(_GoneAfter(client, 2)), body)
    assert received(server, pieces) == body[:2 * tlsslices.SLICE]


async def test_master_build_installs_it():
    master.build(with_termlog=False)
    assert tls.TLSLayer.send_data is tlsslices.send_data


async def test_a_changed_mitmproxy_keeps_its_own_method_and_says_so(monkeypatch):
    monkeypatch.setattr(tls.TLSLayer, "send_data", tlsslices._original)
    monkeypatch.setattr(tlsslices, "_EXPECTED", "0" * 64)
    with structlog.testing.capture_logs() as logs:
        master.build(with_termlog=False)
    assert tls.TLSLayer.send_data is tlsslices._original
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["tls.slices_off"]
