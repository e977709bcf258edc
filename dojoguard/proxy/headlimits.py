"""Request heads: at most ``proxy.max_header_kb``, arriving within ``proxy.header_timeout_s``.

mitmproxy's HTTP/1 server keeps every byte a device sends in one receive
buffer until the blank line that ends the request head, with no limit
(its source says "FIXME: protect against header size DoS"): one connection
sending an endless header block grew the proxy by a gigabyte in seconds,
unrecorded, and ``proxy.body_timeout_s`` only starts once a head is complete.
The same buffer also takes whatever a device sends while its request waits
for the answer (HTTP/1 has no pipelining here), again without limit.

Two bounds, one in mitmproxy's layer and one in an addon:

- Size. ``Http1Server``'s event handler is wrapped: after each read, if the
  buffer waiting for a head (or waiting behind a request in progress) holds
  more than ``proxy.max_header_kb``, the buffer is freed, the device gets a
  431 (when no answer is owed on the connection yet), the connection is
  closed, and addons get a ``dojoguard_head_too_large`` hook (``HeadLimits``
  records it as a ``connection.refused`` event, reason ``header-too-large``).
  One read is at most 64 KiB, so the buffer never passes the limit by more.
- Time. ``HeadLimits`` arms a deadline when a device connects to the proxy
  port, when a decrypted connection's TLS starts, and after each HTTP/1
  answer on a connection that stays open; a request's headers cancel it.
  If it passes while the device is still receiving the last answer, it waits
  again; otherwise the connection is closed and a ``connection.refused`` event
  (reason ``header-timeout``) recorded. Tunnels (CONNECT), WebSockets and
  other upgrades carry no more heads, so they cancel it and do not re-arm it.

HTTP/2 needs neither wrapper for size: h2 keeps at most 64 HEADERS and
CONTINUATION frames of 16 KiB each (``h2.frame_buffer.CONTINUATION_BACKLOG``)
for one header block, and hpack refuses a decoded header list over 64 KiB.

Like ``oversize``, ``install`` checks that the wrapped methods are still the
ones this was written against, and leaves mitmproxy's own in place if not.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
from dataclasses import dataclass

import structlog
from h11._receivebuffer import ReceiveBuffer
from mitmproxy import connection, ctx, http
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ErrorCode, RequestProtocolError

from dojoguard import tasks
from dojoguard.proxy import patches

log = structlog.get_logger("dojoguard.proxy")

OPTION = "dojoguard_max_head_bytes"
DEFAULT_MAX_HEAD_BYTES = 64 * 1024

# The sources of the mitmproxy methods this relies on, as of the pinned version: the handler
# wrapped, the head reader and waiting state whose buffer it bounds, and the state it ends in.
_EXPECTED = "0c50b8b2c87cc5903fd7149d52eefa9032e2c75d3b18dcb1af21d4b62572e75c"

_original = _http1.Http1Server._handle_event
_own = patches.own(_http1.Http1Server, "_handle_event")


@dataclass
class HeadTooLarge:
    client: connection.Client
    size: int
    waiting: bool  # sent behind a request in progress, rather than as a head


@dataclass
class DojoguardHeadTooLargeHook(commands.StartHook):
    """A device's request head (or what it sent while a request was in progress) passed the limit."""

    name = "dojoguard_head_too_large"
    data: HeadTooLarge  # mitmproxy hands a hook's one argument to addons


def _answer_431(limit: int) -> bytes:
    response = http.Response.make(
        431, f"dojoguard: the request head is larger than this proxy accepts ({limit // 1024} KiB)\n".encode(),
        {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"})
    return http1.assemble_response(response)


def handle_event(self, event: events.Event):
    """``Http1Server._handle_event``, refusing a connection whose unread head passes the limit."""
    yield from _original(self, event)
    if not isinstance(event, events.DataReceived):
        return
    reading, waiting = self.state == self.read_headers, self.state == self.wait
    limit = patches.option_bytes(self.context, OPTION, DEFAULT_MAX_HEAD_BYTES)
    if not (reading or waiting) or len(self.buf) <= limit:
        return
    size = len(self.buf)
    self.buf = ReceiveBuffer()  # the head is never used: free it before anything waits
    self.state = self.done
    if reading and self.conn.state & connection.ConnectionState.CAN_WRITE:
        yield commands.SendData(self.conn, _answer_431(limit))
    yield commands.CloseConnection(self.conn)
    if waiting:
        # As mitmproxy does when a device leaves mid-request: the request in progress ends.
        yield ReceiveHttp(RequestProtocolError(self.stream_id, "Request head too large.",
                                               ErrorCode.CLIENT_DISCONNECTED))
    yield DojoguardHeadTooLargeHook(HeadTooLarge(self.context.client, size, waiting))


def source_digest() -> str:
    """The digest of the pinned mitmproxy code this wraps or relies on (see ``_EXPECTED``)."""
    return patches.source_digest(_original, _http1.Http1Server.read_headers, _http1.Http1Connection.wait,
                                 _http1.Http1Connection.done)


def install() -> bool:
    """Use ``handle_event`` for every HTTP/1 client connection of this process; False if mitmproxy's differs."""
    if _http1.Http1Server._handle_event is handle_event:
        return True
    if source_digest() != _EXPECTED:
        return False
    _http1.Http1Server._handle_event = handle_event
    return True


def uninstall() -> None:
    """Put mitmproxy's own handler back."""
    patches.restore(_http1.Http1Server, "_handle_event", _own)


class HeadLimits:
    """The head-size setting for the layer, the head deadline, and the records of both refusals."""

    def __init__(self, services, reporter):
        self.services = services
        self.reporter = reporter
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._clients: dict[str, connection.Client] = {}

    @property
    def settings(self):
        return self.services.settings

    def load(self, loader) -> None:
        loader.add_option(OPTION, int, self.settings.max_header_kb * 1024,
                          "Largest HTTP/1 request head (request line and headers) read, in bytes.")

    # -- size -------------------------------------------------------------------

    async def dojoguard_head_too_large(self, data: HeadTooLarge) -> None:
        from dojoguard.proxy.bounds import device_of

        self.stop(data.client)
        await self.reporter.refused(device_of(data.client), "header-too-large",
                                    limit_kb=self.settings.max_header_kb, size_kb=data.size // 1024,
                                    waiting=data.waiting)

    # -- time -------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        from dojoguard.proxy.bounds import _regular

        if _regular(client) and not client.error:
            self.arm(client)  # on the proxy port, the first thing a device sends is a request head

    def tls_start_client(self, data) -> None:
        self.arm(data.context.client)  # a decrypted connection: requests follow the handshake

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.stop(flow.client_conn)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self.stop(flow.client_conn)  # a tunnel: what follows is TLS, or bytes passed through unread

    def response(self, flow: http.HTTPFlow) -> None:
        self._after(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._after(flow)

    def client_disconnected(self, client: connection.Client) -> None:
        self.stop(client)

    def _after(self, flow: http.HTTPFlow) -> None:
        """After an answer on an HTTP/1 connection that stays open, the next head has its deadline."""
        request, response = flow.request, flow.response
        if request.is_http2 or request.is_http3 or request.method.upper() == "CONNECT":
            return
        if flow.websocket is not None or (response is not None and response.status_code == 101):
            return
        if not flow.client_conn.connected:
            return
        self.arm(flow.client_conn)

    def arm(self, client: connection.Client) -> None:
        timeout = self.settings.header_timeout_s
        if not timeout:
            return
        self.stop(client)
        self._clients[client.id] = client
        self._timers[client.id] = asyncio.get_running_loop().call_later(timeout, self._timed_out, client.id)

    def stop(self, client: connection.Client) -> None:
        timer = self._timers.pop(client.id, None)
        self._clients.pop(client.id, None)
        if timer is not None:
            timer.cancel()

    def _timed_out(self, client_id: str) -> None:
        self._timers.pop(client_id, None)
        client = self._clients.pop(client_id, None)
        if client is None:
            return
        if still_sending(client_id):
            # The deadline starts when an answer is handed to mitmproxy, not when the device has it:
            # a device still downloading a large answer is not idle.
            self.arm(client)
            return
        if not close_connection(client_id):
            return
        from dojoguard.proxy.bounds import device_of

        device = device_of(client)
        log.warning("request.header_timeout", device=device)
        tasks.start(self.reporter.refused(device, "header-timeout", timeout_s=self.settings.header_timeout_s))

    def done(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._clients.clear()


def _io(client_id: str):
    try:
        handler = ctx.master.addons.get("proxyserver").connections.get(client_id)
        return handler.transports.get(handler.client) if handler is not None else None
    except AttributeError:
        return None


def still_sending(client_id: str) -> bool:
    """Whether bytes for the device are still on their way: in the connection's buffer or the kernel's send queue."""
    writer = getattr(_io(client_id), "writer", None)
    try:
        transport = writer.transport
        if transport.get_write_buffer_size() > 0:
            return True
        sock = transport.get_extra_info("socket")
    except AttributeError:
        return False
    if sock is None or not hasattr(termios, "TIOCOUTQ"):
        return False
    try:
        # Bytes sent but not yet acknowledged by the device (Linux); a large answer can sit here whole.
        unsent = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except OSError:
        return False
    return struct.unpack("i", unsent)[0] > 0


def close_connection(client_id: str, why: str = "the request head took too long") -> bool:
    """Close a device's connection by its id; False when it is already gone.

    mitmproxy offers no command for this; its own idle timeout does the same
    (cancels the task that reads the connection).
    """
    task = getattr(_io(client_id), "handler", None)
    if task is None or task.done():
        return False
    task.cancel(f"dojoguard: {why}")
    return True
