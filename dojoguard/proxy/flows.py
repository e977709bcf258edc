"""The edge: mitmproxy flows turned into the plain values the rest of dojoguard works with."""

from __future__ import annotations

import zlib

from mitmproxy import http

from dojoguard.proxy.recognition import Request

HOST = "dojoguard.host"


def host_of(flow: http.HTTPFlow) -> str:
    """The host the device addressed, lower-cased.

    mitmproxy parses and validates the Host header again on every read of
    ``pretty_host``, which measured as the dearest part of telling a
    ClassDojo write from other traffic; the request line and headers are
    fixed once they have arrived, so it is worked out once per flow.
    """
    host = flow.metadata.get(HOST)
    if host is None:
        host = flow.metadata[HOST] = flow.request.pretty_host.lower()
    return host


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
    # wbits 47 reads a gzip or a zlib header; a bare deflate stream needs -15.
    for wbits in (47, -15):
        inflater = zlib.decompressobj(wbits)
        try:
            return inflater.decompress(raw, limit + 1)
        except zlib.error:
            continue
    return raw


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
        host=req.pretty_host,
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
