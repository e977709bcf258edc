"""WebSocket messages: at most ``proxy.max_write_body_mb`` each, counted after permessage-deflate.

mitmproxy's ``WebsocketLayer`` keeps every fragment of a message
(``frame_buf``) until the message ends, and only then calls the
``websocket_message`` hook, with no limit: one never-finished message of
300 one-megabyte fragments grew the proxy by 300 MB, kept. With
permessage-deflate, wsproto also inflates each received piece without a
limit, so a few kilobytes on the wire can become a gigabyte in one step.

Here the layer is wrapped in three places:

- ``start``: each side's deflate extension inflates at most the limit and
  one byte more per piece (``BoundedDeflate``), so the count below sees the
  inflated size without ever holding more than that;
- each side's ``events``: the bytes of the current message are counted as
  wsproto hands them over; past the limit the buffered fragments are freed
  and, in place of the message, a close with code 1009 ("message too big")
  is handed to mitmproxy's own close path, which closes both sides;
- ``relay_messages``: after that close, addons get a
  ``dojoguard_websocket_too_large`` hook (``WebsocketLimits`` records a
  ``proxy.body-too-large`` decision for a device's message to ClassDojo, a
  ``connection.refused`` event otherwise).

Messages from the server are bounded the same way: the proxy holds them
the same way. ``install`` checks the wrapped methods against the pinned
mitmproxy and wsproto versions, as ``oversize`` does.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import structlog
import wsproto.connection
import wsproto.events
import wsproto.extensions
import wsproto.frame_protocol
from mitmproxy import http
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers import websocket as ws_layer
from wsproto.frame_protocol import CloseReason

from dojoguard.proxy import patches

log = structlog.get_logger("dojoguard.proxy")

OPTION = "dojoguard_max_ws_message_bytes"
DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024
MESSAGE_TOO_BIG = 1009

# The sources this relies on, as of the pinned versions: the layer's start and relay, the
# connection whose events and frame buffer are bounded, wsproto's events, its inflation of a
# received piece, and the decoder that calls that inflation.
_EXPECTED = "dfe11287939acc7bf449d419a7c5d5001b6d7768dd2ee196dddc8c36c2229623"

_original_start = ws_layer.WebsocketLayer.start
_original_relay = ws_layer.WebsocketLayer.relay_messages
_own = {name: patches.own(ws_layer.WebsocketLayer, name) for name in ("start", "relay_messages", "_handle_event")}


@dataclass
class MessageTooLarge:
    flow: http.HTTPFlow
    from_client: bool
    size: int


@dataclass
class DojoguardWebsocketTooLargeHook(commands.StartHook):
    """One WebSocket message passed the limit; the socket has been closed with 1009."""

    name = "dojoguard_websocket_too_large"
    data: MessageTooLarge  # mitmproxy hands a hook's one argument to addons


class BoundedDeflate(wsproto.extensions.PerMessageDeflate):
    """permessage-deflate that inflates one received piece to at most ``limit`` + 1 bytes.

    What is left uninflated is dropped: more than ``limit`` bytes means the
    message is over the limit, and the socket is closed before it is read on.
    """

    limit: int = DEFAULT_MAX_MESSAGE_BYTES
    cut: bool = False

    def frame_inbound_payload_data(self, proto, data):
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        if self.cut:
            return b""
        try:
            inflated = self._decompressor.decompress(bytes(data), self.limit + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        # Input left uninflated means the piece alone passes the limit.
        self.cut = bool(self._decompressor.unconsumed_tail) or len(inflated) > self.limit
        return inflated

    def frame_inbound_complete(self, proto, fin):
        if self.cut:
            # zlib's flush would inflate all the input left behind, without a limit: never call it.
            self._decompressor, self._inbound_compressed, self.cut = None, None, False
            return None
        return super().frame_inbound_complete(proto, fin)


def _bound(ws: ws_layer.WebsocketConnection, limit: int) -> None:
    """Count ``ws``'s message bytes as they are read; past ``limit``, free them and hand on a 1009 close."""
    for extension in ws._proto.extensions:
        if type(extension) is wsproto.extensions.PerMessageDeflate:
            extension.__class__ = BoundedDeflate
            extension.limit = limit
    read = ws.events
    ws.dojoguard_size = 0
    ws.dojoguard_over = 0

    def events():
        for event in read():
            if isinstance(event, wsproto.events.Message):
                data = event.data
                ws.dojoguard_size += len(data.encode() if isinstance(data, str) else data)
                if ws.dojoguard_size > limit:
                    ws.dojoguard_over, ws.dojoguard_size = ws.dojoguard_size, 0
                    ws.frame_buf = [b""]
                    yield wsproto.events.CloseConnection(code=MESSAGE_TOO_BIG, reason="message too big")
                    return
                if event.message_finished:
                    ws.dojoguard_size = 0
            yield event

    ws.events = events


def start(self, event):
    """``WebsocketLayer.start``, then each side's messages bounded."""
    yield from _original_start(self, event)
    limit = patches.option_bytes(self.context, OPTION, DEFAULT_MAX_MESSAGE_BYTES)
    _bound(self.client_ws, limit)
    _bound(self.server_ws, limit)


def relay_messages(self, event):
    """``WebsocketLayer.relay_messages``, then a hook for a message closed for its size."""
    yield from _original_relay(self, event)
    for ws, from_client in ((self.client_ws, True), (self.server_ws, False)):
        size = getattr(ws, "dojoguard_over", 0)
        if size:
            ws.dojoguard_over = 0
            assert self.flow.websocket is not None
            self.flow.websocket.closed_by_client = False  # the proxy closed it, not the side that sent the message
            yield DojoguardWebsocketTooLargeHook(MessageTooLarge(self.flow, from_client, size))


def source_digest() -> str:
    """The digest of the pinned mitmproxy and wsproto code this wraps or relies on (see ``_EXPECTED``)."""
    deflate = wsproto.extensions.PerMessageDeflate
    return patches.source_digest(_original_start, _original_relay, ws_layer.WebsocketConnection,
                                 wsproto.connection.Connection.events, deflate.frame_inbound_payload_data,
                                 deflate.frame_inbound_complete, wsproto.frame_protocol.FrameDecoder.process_buffer)


def install() -> bool:
    """Use the bounded WebSocket layer for this process; False if mitmproxy's or wsproto's code differs."""
    layer = ws_layer.WebsocketLayer
    if layer.relay_messages is relay_messages:
        return True
    if source_digest() != _EXPECTED:
        return False
    layer.start, layer.relay_messages = start, relay_messages
    # The layer's first handler is bound when the class is built; it must be the wrapped start.
    layer._handle_event = start
    return True


def uninstall() -> None:
    """Put mitmproxy's own WebSocket layer methods back."""
    for name, before in _own.items():
        patches.restore(ws_layer.WebsocketLayer, name, before)


class WebsocketLimits:
    """The message-size setting for the layer, and the record of a message closed for its size."""

    def __init__(self, services, judge, reporter):
        self.services = services
        self.judge = judge
        self.reporter = reporter

    def load(self, loader) -> None:
        loader.add_option(OPTION, int, self.services.settings.max_write_bytes,
                          "Largest WebSocket message held, in bytes (counted inflated).")

    async def dojoguard_websocket_too_large(self, data: MessageTooLarge) -> None:
        from dojoguard.proxy import flows
        from dojoguard.proxy.bounds import device_of

        flow, from_client, size = data.flow, data.from_client, data.size

        device = flows.client_address(flow) if from_client else device_of(flow.client_conn)
        host = flows.host_of(flow)
        if from_client and self.services.catalogue.role_of(host, flow.request.port) is not None:
            request = flows.frame_request(flow, b"", is_text=True)
            try:
                outcome = await self.judge.too_large(request)
                log.warning("websocket.too_large", decision_id=outcome.decision.decision_id, device=device,
                            host=host, size_mb=size // (1024 * 1024))
                return
            except Exception as exc:  # noqa: BLE001 - the socket is closed all the same; the refusal is reported
                log.error("bounds.record_failed", error=type(exc).__name__)
        await self.reporter.refused(device, "websocket-message-too-large", host=host[:100],
                                    from_client=from_client, size_mb=size // (1024 * 1024))
