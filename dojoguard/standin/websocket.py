"""A WebSocket endpoint for the stand-in: accepts the upgrade, records each message, echoes it back.

Built on wsproto (mitmproxy's own WebSocket implementation), so frames are
masked, fragmented and closed as a real server expects. Each message a
client sends is recorded like a request, with method ``WEBSOCKET``, so
tests can see exactly what reached "ClassDojo".
"""

from __future__ import annotations

from typing import Callable

from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Message, Request, TextMessage)

# Enough for the tests' messages; a longer one is still recorded, in pieces.
_READ = 65536


def serve(sock, raw_request: bytes, record: Callable[[bytes, bool], None]) -> None:
    """Run one WebSocket connection on ``sock`` to its close; ``raw_request`` is the upgrade request as received."""
    ws = WSConnection(ConnectionType.SERVER)
    ws.receive_data(raw_request)
    pending: dict[bool, list] = {True: [], False: []}
    while True:
        for event in ws.events():
            if isinstance(event, Request):
                sock.sendall(ws.send(AcceptConnection()))
            elif isinstance(event, Message):
                is_text = isinstance(event, TextMessage)
                pending[is_text].append(event.data)
                if event.message_finished:
                    parts = pending[is_text]
                    pending[is_text] = []
                    data = "".join(parts).encode() if is_text else b"".join(parts)
                    record(data, is_text)
                    reply = TextMessage(data.decode()) if is_text else BytesMessage(data)
                    sock.sendall(ws.send(reply))
            elif isinstance(event, CloseConnection):
                try:
                    sock.sendall(ws.send(event.response()))
                except Exception:  # noqa: BLE001 - the peer may already be gone
                    pass
                return
        try:
            data = sock.recv(_READ)
        except OSError:
            return
        if not data:
            return
        ws.receive_data(data)
