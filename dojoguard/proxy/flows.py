"""The edge: mitmproxy flows turned into the plain values the rest of dojoguard works with."""

from __future__ import annotations

import zlib

from mitmproxy import http

from dojoguard.proxy import routing
from dojoguard.proxy.recognition import Request

ROUTE = "dojoguard.route"
# Upstream connections sent to another address than the one asked for, until they are open:
# server connection id -> the (host, port) the device asked for. Bounded: one entry per connection
# being opened, removed when it opens or fails.
_ASKED: dict[str, tuple[str, int]] = {}
_MAX_ASKED = 10_000


def connect_elsewhere(server, address: tuple[str, int]) -> None:
    """Open ``server`` to ``address`` (a judged IP, a --resolve target) while it keeps the name it was asked for.

    Once open, ``name_again`` puts the asked name back, so everything decided
    later (which connections are decrypted, which name the upstream
    certificate must carry, where a request is routed) sees the name the
    device asked for, as it would if the name had been dialled directly.
    """
    if server.id not in _ASKED:
        if len(_ASKED) >= _MAX_ASKED:
            _ASKED.pop(next(iter(_ASKED)))
        _ASKED[server.id] = (str(server.address[0]), int(server.address[1]))
    server.address = address


def name_again(server) -> None:
    """After the connection opened (or failed): the address is the asked name again."""
    asked = _ASKED.pop(server.id, None)
    if asked is not None and server.address != asked:
        # mitmproxy refuses to change an open connection's address through its setter.
        object.__setattr__(server, "address", asked)


def forget(server) -> None:
    _ASKED.pop(server.id, None)


def names_of(flow: http.HTTPFlow) -> routing.Names:
    """Every name the request carries: where the proxy connects, the TLS server name, Host and authority."""
    req = flow.request
    server = flow.server_conn
    target = None
    if server is not None and server.address:
        target = (str(server.address[0]), int(server.address[1]))
    if target is None:
        # No upstream connection yet (a plain request in explicit mode): mitmproxy
        # connects to the request's own host, taken from its absolute-form target.
        target = (req.host, req.port)
    requested = list(req.headers.get_all("host"))
    if req.authority:
        requested.append(req.authority)
    return routing.Names(connection=target[0] or None, sni=flow.client_conn.sni if flow.client_conn else None,
                         requested=tuple(requested))


def route_of(flow: http.HTTPFlow, catalogue) -> routing.Route:
    """Where the request goes and whether that is ClassDojo, worked out once per flow and catalogue.

    The request line and headers are fixed once they have arrived, and
    mitmproxy re-parses the Host header on every read, so the answer is
    kept in the flow's metadata; a catalogue reloaded in between (new
    hosts) is asked again.
    """
    found = flow.metadata.get(ROUTE)
    if found is None or found[0] != catalogue.revision:
        port = flow.request.port
        try:
            route = routing.route(names_of(flow), lambda h: catalogue.role_of(h, port))
        except Exception:  # noqa: BLE001 - a hook that raises lets the flow through: refuse instead
            route = routing.Route(flow.request.host or "", None, "the request's host names could not be read")
        found = flow.metadata[ROUTE] = (catalogue.revision, route)
    return found[1]


def host_of(flow: http.HTTPFlow) -> str:
    """The host the request is judged as (see ``route_of``); the Host header when not yet routed."""
    found = flow.metadata.get(ROUTE)
    if found is not None:
        return found[1].host
    return routing.normalise(flow.request.pretty_host)


def frame_request(flow: http.HTTPFlow, content: bytes, *, is_text: bool) -> Request:
    """A WebSocket message a device sent, as a write to judge by its content.

    A text message is read as JSON when it is JSON and as text otherwise;
    a binary one as a body of no stated type: a picture, or UTF-8 words,
    or else bytes that cannot be read (refused).
    """
    req = flow.request
    content_type = "text/plain; charset=utf-8"
    if is_text and content[:1] in (b"{", b"["):
        content_type = "application/json"
    elif not is_text:
        # A picture is checked as the picture it is; UTF-8 text as text; anything else (a wide
        # encoding, compressed or binary framing) is bytes with no words the rules can read,
        # which fails closed for a write nobody has described.
        content_type = "application/octet-stream"
    return Request(method="WEBSOCKET", host=host_of(flow), port=req.port, path=req.path,
                   headers=(("content-type", content_type), *((k, v) for k, v in req.headers.items(multi=True)
                                                             if k.lower() == "cookie")),
                   content=content, client_address=client_address(flow))


def request_of(flow: http.HTTPFlow, *, with_body: bool = True, limit: int | None = None) -> Request:
    """The request as plain values; ``with_body=False`` at the headers stage, before the body is read.

    A compressed body is inflated at most to ``limit`` bytes and one more, so
    a small "zip bomb" shows as an over-cap write instead of filling memory.
    """
    req = flow.request
    return Request(
        method=req.method.upper(),
        host=host_of(flow),
        port=req.port,
        path=req.path,
        headers=tuple((k, v) for k, v in req.headers.items(multi=True)),
        content=body_of(req, limit) if with_body else b"",
        client_address=client_address(flow),
    )


def body_of(req: http.Request, limit: int | None) -> bytes:
    raw = req.raw_content or b""
    encoding = (req.headers.get("content-encoding") or "").strip().lower()
    if not encoding or encoding == "identity":
        return raw
    if limit is None:
        return req.get_content(strict=False) or b""
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _inflate(raw, limit)
    # Brotli, zstd or an unknown coding: apps do not compress what they send, and
    # these cannot be inflated with a bound here. The bytes stay as they came, so
    # nothing in them can be read and the write fails closed as unreadable.
    return raw


def _inflate(raw: bytes, limit: int) -> bytes:
    """The body inflated as a server inflates it, at most ``limit`` bytes and one more.

    A gzip body may be several gzip members one after another (RFC 1952,
    section 2.2); Node and the gzip tool read them all, so every member is
    inflated here too: judging only the first would let "hello " stand for
    "hello " + a second member. Anything after the last member that is not
    a whole member leaves the body as it came, which fails closed as unreadable.
    """
    # wbits 47 reads a gzip or a zlib header; a bare deflate stream needs -15.
    for wbits in (47, -15):
        out, rest = b"", raw
        try:
            while True:
                inflater = zlib.decompressobj(wbits)
                out += inflater.decompress(rest, limit + 1 - len(out))
                if len(out) > limit or inflater.unconsumed_tail:
                    return out[: limit + 1]  # over the cap: judged as too large
                if not inflater.eof:
                    return raw  # cut short: not a whole body
                rest = inflater.unused_data
                if not rest or wbits == -15:
                    return out if not rest else raw
        except zlib.error:
            continue
    return raw


def carries_body(req: http.Request) -> bool:
    """Whether the request has a body, or its head says one follows (framed by length or chunks)."""
    if req.raw_content:
        return True
    length = (req.headers.get("content-length") or "").strip()
    return "transfer-encoding" in req.headers or length not in ("", "0")


def client_address(flow: http.HTTPFlow) -> str:
    peer = flow.client_conn.peername
    return str(peer[0]) if peer else ""


def stored_request(flow: http.HTTPFlow):
    """The request exactly as the device sent it, for the hold store (imported lazily: holds may be absent)."""
    from dojoguard.holds.store import StoredRequest

    req = flow.request
    return StoredRequest(
        method=req.method,
        scheme=req.scheme,
        host=host_of(flow),
        port=original_port(flow),
        path=req.path,
        http_version=req.http_version,
        headers=tuple((k, v) for k, v in req.headers.items(multi=True)),
        content=req.raw_content or b"",
        client_address=client_address(flow),
    )


def original_port(flow: http.HTTPFlow) -> int:
    """The port the device asked for. ``request.port`` may already be the --resolve target's,
    because mitmproxy connects upstream as soon as the device's CONNECT arrives."""
    req = flow.request
    host_header = req.host_header or ""
    if host_header.rsplit(":", 1)[-1].isdigit() and not host_header.endswith("]"):
        return int(host_header.rsplit(":", 1)[-1])
    return 443 if req.scheme == "https" else 80


def refuse(flow: http.HTTPFlow, status: int, body: bytes, headers: dict[str, str]) -> None:
    flow.response = http.Response.make(status, body, headers)
