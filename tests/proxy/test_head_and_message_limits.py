"""Request heads and WebSocket messages through the real proxy: bounded in size (and heads in time), recorded.

A real ``dojoguard run`` in front of the stand-in, with the limits set small
(an 8 KiB head, a 1.5 s head deadline, a 1 MiB write cap) so that each flood
is real but short, on loopback only.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request, TextMessage

from dojoguard.clock import FileClock
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import MONDAY_10, through_connect, write_config

pytestmark = pytest.mark.slow

MAX_HEADER_KB = 8
HEADER_TIMEOUT_S = 1.5
WRITE_CAP = 1024 * 1024  # max_write_body_mb: 1
MEDIA_BYTES = 1536 * 1024  # a photo the stand-in serves (under the proxy's 2 MB body limit here), read slowly
SLOW_HOST = "slow.example.org"
# Each flood comes from its own loopback address, so one test's refusal record does not hide another's.
HEAD_DEVICE = "127.0.0.21"
TUNNEL_DEVICE = "127.0.0.22"
WAIT_DEVICE = "127.0.0.23"
SILENT_DEVICE = "127.0.0.24"
TRICKLE_DEVICE = "127.0.0.25"
IDLE_DEVICE = "127.0.0.26"
DOWNLOAD_DEVICE = "127.0.0.28"
WS_DEVICE = "127.0.0.27"


class Silent:
    """A web server that accepts requests and never answers them, so a request stays in progress."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("limits")
    silent = Silent()
    config = write_config(folder, max_write_body_mb=1, max_header_kb=MAX_HEADER_KB,
                          header_timeout_s=HEADER_TIMEOUT_S)
    clock = folder / "clock"
    FileClock.write(clock, MONDAY_10)  # in school hours, so a message is allowed
    with StandIn(folder / "standin", media_bytes=MEDIA_BYTES) as standin:
        proxy = ProxyProcess(config, folder, standin.port, standin.ca_cert, clock_file=clock,
                             extra_args=("--resolve", f"{SLOW_HOST}:80:127.0.0.1:{silent.port}")).start()
        try:
            context = ssl.create_default_context(cafile=str(proxy.ca_cert))
            with httpx.Client(proxy=proxy.url, verify=context, timeout=30) as client:
                login = client.post("https://teach.classdojo.com/api/session",
                                    json={"login": "teacher@example.org", "password": data.PASSWORD})
                assert login.status_code == 200, login.text
                cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
                yield {"folder": folder, "standin": standin, "proxy": proxy, "client": client, "cookie": cookie}
        finally:
            proxy.stop()
            silent.close()


def records(world, kind: str) -> list[dict]:
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT body FROM records WHERE type = ? ORDER BY seq", (kind,)).fetchall()
        return [json.loads(body) for (body,) in rows]
    finally:
        db.close()


def refusals(world, device: str, reason: str) -> list[dict]:
    return [r for r in records(world, "connection.refused") if r.get("device") == device and r.get("reason") == reason]


def wait_for(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    return predicate()


def rss_mb(proxy: ProxyProcess) -> float:
    for line in Path(f"/proc/{proxy.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def plain(world, source: str) -> socket.socket:
    raw = socket.socket()
    raw.bind((source, 0))
    raw.settimeout(10)
    raw.connect(("127.0.0.1", world["proxy"].port))
    return raw


def tunnel(world, source: str, host: str = "teach.classdojo.com") -> ssl.SSLSocket:
    return through_connect(world["proxy"], plain(world, source), f"{host}:443", host)


def flood(sock, start: bytes, piece: bytes, most: int) -> tuple[int, bytes]:
    """Send ``start`` then ``piece`` again and again until the proxy closes (or ``most`` bytes); bytes sent, answer."""
    sent = 0
    try:
        sock.sendall(start)
        while sent < most:
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        pass
    answer = b""
    try:
        sock.settimeout(5)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    except (ConnectionResetError, TimeoutError, ssl.SSLError, OSError):
        pass
    return sent, answer


def closed_within(sock, seconds: float) -> float | None:
    """Seconds until the proxy closed ``sock`` (reading and discarding), or None if it stayed open."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except (TimeoutError, socket.timeout, ssl.SSLWantReadError):
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            return time.monotonic() - started
    return None


def read_response(sock) -> bytes:
    """One whole HTTP/1.1 answer with a Content-Length, as a kept-alive client reads it."""
    sock.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        assert chunk, answer
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, answer
        body += chunk
    return head + b"\r\n\r\n" + body


HEADER_LINE = b"X-Pad: " + b"a" * 1000 + b"\r\n"


# -- the size of a request head ---------------------------------------------------

def test_an_endless_header_block_is_answered_431_and_closed(world):
    """One plain connection sending headers without end gets a 431 and is closed within a read of the limit."""
    before = rss_mb(world["proxy"])
    with plain(world, HEAD_DEVICE) as raw:
        sent, answer = flood(raw, b"GET http://www.example.org/ HTTP/1.1\r\nHost: www.example.org\r\n",
                             HEADER_LINE * 64, 200 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert sent < 8 * 1024 * 1024, "the proxy kept reading a head far past its limit"
    assert rss_mb(world["proxy"]) - before < 50
    found = wait_for(lambda: refusals(world, HEAD_DEVICE, "header-too-large"))
    assert found and found[0]["limit_kb"] == MAX_HEADER_KB


def test_the_head_limit_holds_inside_a_decrypted_tunnel_too(world):
    """The same flood inside TLS to ClassDojo (a write's head) gets the same 431 and close."""
    with tunnel(world, TUNNEL_DEVICE) as tls:
        sent, answer = flood(tls, f"POST /api/message-thread/{data.THREAD_ID}/message HTTP/1.1\r\n"
                             "Host: teach.classdojo.com\r\n".encode(), HEADER_LINE * 64, 200 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert sent < 8 * 1024 * 1024
    assert wait_for(lambda: refusals(world, TUNNEL_DEVICE, "header-too-large"))
    assert not [r for r in world["standin"].received if b"X-Pad" in json.dumps(r.headers).encode()]


def test_one_header_line_without_an_end_is_refused_as_well(world):
    """A single endless header line (no line breaks to split on) passes the limit all the same."""
    with plain(world, HEAD_DEVICE) as raw:
        sent, answer = flood(raw, b"GET http://www.example.org/ HTTP/1.1\r\nX-Long: ", b"b" * 65536,
                             200 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert sent < 8 * 1024 * 1024


def test_a_head_just_under_the_limit_is_served(world):
    """Ordinary large headers (cookies) under the limit reach ClassDojo as before."""
    padding = "c" * (MAX_HEADER_KB * 1024 - 2048)
    response = world["client"].get("https://teach.classdojo.com/api/session", headers={"X-Pad": padding})
    assert response.status_code != 431
    assert response.status_code < 500


def test_what_a_device_sends_while_its_request_waits_is_bounded(world):
    """Bytes piled up behind a request still in progress (no pipelining) close the connection past the limit."""
    with plain(world, WAIT_DEVICE) as raw:
        raw.sendall(f"GET http://{SLOW_HOST}/ HTTP/1.1\r\nHost: {SLOW_HOST}\r\n\r\n".encode())
        time.sleep(0.5)  # the request is now waiting for an answer that never comes
        sent, _ = flood(raw, b"", b"z" * 65536, 200 * 1024 * 1024)
    assert sent < 8 * 1024 * 1024
    assert wait_for(lambda: refusals(world, WAIT_DEVICE, "header-too-large"))


# -- the time a request head may take -------------------------------------------------

def test_a_connection_that_sends_nothing_is_closed_at_the_head_deadline(world):
    """A device that opens a connection and says nothing holds it only until header_timeout_s."""
    with plain(world, SILENT_DEVICE) as raw:
        took = closed_within(raw, HEADER_TIMEOUT_S + 5)
    assert took is not None and took >= HEADER_TIMEOUT_S - 0.2
    assert wait_for(lambda: refusals(world, SILENT_DEVICE, "header-timeout"))


def test_a_head_trickled_in_does_not_restart_the_deadline(world):
    """A head sent a byte at a time is closed at the deadline, however steadily the bytes come."""
    with plain(world, TRICKLE_DEVICE) as raw:
        raw.sendall(b"GET http://www.example.org/ HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT_S + 5:
            try:
                raw.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            raw.settimeout(0.01)
            try:
                if raw.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except OSError:
                closed = True
                break
    assert closed and time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_a_kept_alive_connection_gets_a_new_deadline_after_each_answer(world):
    """Requests within the deadline are served on one connection; idle past it after an answer, it is closed."""
    with tunnel(world, IDLE_DEVICE) as tls:
        for _ in range(3):
            time.sleep(HEADER_TIMEOUT_S / 2)
            tls.sendall(b"GET /api/session HTTP/1.1\r\nHost: teach.classdojo.com\r\n\r\n")
            answer = read_response(tls)
            assert answer.startswith(b"HTTP/1.1 "), answer[:80]
            assert not answer.startswith(b"HTTP/1.1 431")
        took = closed_within(tls, HEADER_TIMEOUT_S + 5)
    assert took is not None
    assert wait_for(lambda: refusals(world, IDLE_DEVICE, "header-timeout"))


def test_a_slow_download_is_not_cut_by_the_next_heads_deadline(world):
    """A device still receiving a large answer past header_timeout_s gets all of it: only an idle connection is closed."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # the answer waits in the proxy, not here
    raw.bind((DOWNLOAD_DEVICE, 0))
    raw.settimeout(10)
    raw.connect(("127.0.0.1", world["proxy"].port))
    raw.sendall(b"CONNECT teach.classdojo.com:443 HTTP/1.1\r\nHost: teach.classdojo.com:443\r\n\r\n")
    assert raw.recv(1024).startswith(b"HTTP/1.1 200")
    context = ssl.create_default_context(cafile=str(world["proxy"].ca_cert))
    with context.wrap_socket(raw, server_hostname="teach.classdojo.com") as tls:
        tls.sendall(b"GET /uploads/big.jpg HTTP/1.1\r\nHost: teach.classdojo.com\r\n\r\n")
        started, answer = time.monotonic(), b""
        while b"\r\n\r\n" not in answer:
            answer += tls.recv(65536)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        while len(body) < MEDIA_BYTES:
            chunk = tls.recv(32 * 1024)
            assert chunk, f"cut after {len(body)} bytes"
            body += chunk
            time.sleep(0.05)
        took = time.monotonic() - started
    assert len(body) == MEDIA_BYTES
    assert took > HEADER_TIMEOUT_S, "the download was too quick to prove anything"
    assert not refusals(world, DOWNLOAD_DEVICE, "header-timeout")


# -- WebSocket messages ------------------------------------------------------------------

def open_ws(world) -> tuple[ssl.SSLSocket, WSConnection]:
    tls = tunnel(world, WS_DEVICE)
    ws = WSConnection(ConnectionType.CLIENT)
    tls.sendall(ws.send(Request(host="teach.classdojo.com", target="/realtime",
                                extra_headers=[(b"cookie", world["cookie"].encode())])))
    while True:
        ws.receive_data(tls.recv(65536))
        if any(isinstance(e, AcceptConnection) for e in ws.events()):
            return tls, ws


def ws_events(tls, ws, seconds: float = 10) -> list:
    """What the proxy sends back until it closes (or ``seconds``)."""
    found: list = []
    tls.settimeout(seconds)
    try:
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            ws.receive_data(chunk)
            found.extend(ws.events())
            if any(isinstance(e, CloseConnection) for e in found):
                break
    except (TimeoutError, ssl.SSLError, OSError):
        pass
    return found


def ws_send_until_closed(tls, ws, make, most: int) -> int:
    sent = 0
    try:
        while sent < most:
            piece = make()
            tls.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        pass
    return sent


def too_large_decisions(world) -> list[dict]:
    return [r for r in records(world, "decision") if "proxy.body-too-large" in json.dumps(r)]


def test_a_never_finished_websocket_message_is_closed_with_1009_and_recorded(world):
    """Fragments of one message past the write cap: the socket closes with 1009, a block is recorded, nothing sent on."""
    before, decisions = rss_mb(world["proxy"]), len(too_large_decisions(world))
    tls, ws = open_ws(world)
    with tls:
        fragment = "a" * (256 * 1024)
        sent = ws_send_until_closed(tls, ws, lambda: ws.send(TextMessage(fragment, message_finished=False)),
                                    100 * 1024 * 1024)
        closes = [e for e in ws_events(tls, ws) if isinstance(e, CloseConnection)]
    assert closes and closes[0].code == 1009
    assert sent < 40 * 1024 * 1024, "the proxy kept reading a message far past the cap"
    assert rss_mb(world["proxy"]) - before < 60
    assert wait_for(lambda: len(too_large_decisions(world)) > decisions)
    assert not [r for r in world["standin"].received if r.method == "WEBSOCKET" and b"aaaa" in r.body]


def test_one_huge_websocket_frame_is_closed_as_well(world):
    """One frame over the cap, sent in pieces (no fragments to count), is closed with 1009 all the same."""
    tls, ws = open_ws(world)
    with tls:
        frame = ws.send(BytesMessage(b"b" * (3 * WRITE_CAP)))
        pieces = iter(frame[i:i + 65536] for i in range(0, len(frame), 65536))
        ws_send_until_closed(tls, ws, lambda: next(pieces, b"") or b"", len(frame))
        closes = [e for e in ws_events(tls, ws) if isinstance(e, CloseConnection)]
    assert closes and closes[0].code == 1009
    assert not [r for r in world["standin"].received if r.method == "WEBSOCKET" and len(r.body) > WRITE_CAP]


def test_many_messages_each_under_the_cap_all_pass(world):
    """The cap is per message: several messages that together pass it arrive, each judged."""
    tls, ws = open_ws(world)
    marker = "under-cap-" + str(time.monotonic())
    with tls:
        for _ in range(3):
            tls.sendall(ws.send(TextMessage(json.dumps({"text": marker, "pad": "p" * (WRITE_CAP // 2)}))))
        echoes: list = []
        tls.settimeout(10)
        while len(echoes) < 3:
            chunk = tls.recv(1 << 20)
            assert chunk, "the proxy closed a socket whose messages were each under the cap"
            ws.receive_data(chunk)
            found = list(ws.events())
            assert not [e for e in found if isinstance(e, CloseConnection)]
            echoes += [e for e in found if isinstance(e, TextMessage) and e.message_finished]
        tls.sendall(ws.send(CloseConnection(code=1000)))
    assert len([r for r in world["standin"].received if r.method == "WEBSOCKET" and marker.encode() in r.body]) == 3


def test_a_websocket_outlives_the_head_deadline(world):
    """Once upgraded, a quiet WebSocket is not closed by the head deadline (no head is due on it)."""
    tls, ws = open_ws(world)
    with tls:
        time.sleep(HEADER_TIMEOUT_S + 1)
        tls.sendall(ws.send(TextMessage(json.dumps({"text": "still here"}))))
        found = ws_events(tls, ws, seconds=5)
    assert [e for e in found if isinstance(e, TextMessage) and "still here" in e.data]


# -- permessage-deflate: the cap counts inflated bytes ------------------------------------
# The stand-in does not offer permessage-deflate, so these drive the proxy's WebSocket
# connection object directly, with real wsproto deflate on both ends.

def deflate_pair():
    """A device's deflating WebSocket end, and the proxy's end of it with the message bound in place."""
    from mitmproxy.proxy.layers.websocket import WebsocketConnection
    from wsproto.connection import Connection
    from wsproto.extensions import PerMessageDeflate

    from dojoguard.proxy import wslimits

    def negotiated() -> PerMessageDeflate:
        extension = PerMessageDeflate()
        extension.finalize("permessage-deflate")
        return extension

    device = Connection(ConnectionType.CLIENT, [negotiated()])
    proxy_side = WebsocketConnection(ConnectionType.SERVER, [negotiated()], conn=None)
    wslimits._bound(proxy_side, WRITE_CAP)
    return device, proxy_side


def test_a_deflate_bomb_is_inflated_no_further_than_the_cap():
    """A small compressed message that inflates to 64 MiB is cut at the cap and closed with 1009, never inflated whole."""
    device, proxy_side = deflate_pair()
    bomb = device.send(BytesMessage(b"\0" * (64 * 1024 * 1024)))
    assert len(bomb) < 256 * 1024  # small on the wire
    proxy_side.receive_data(bomb)
    inflated, closed = 0, None
    for event in proxy_side.events():
        if isinstance(event, BytesMessage):
            inflated += len(event.data)
        elif isinstance(event, CloseConnection):
            closed = event.code
            break
    assert closed == 1009
    assert inflated <= WRITE_CAP + 1


def test_a_bomb_split_over_many_frames_is_counted_across_them():
    """The same bomb sent as many small compressed fragments of one message is counted across them and closed."""
    device, proxy_side = deflate_pair()
    closed = None
    for _ in range(64):
        proxy_side.receive_data(device.send(BytesMessage(b"\0" * (1024 * 1024), message_finished=False)))
        for event in proxy_side.events():
            if isinstance(event, CloseConnection):
                closed = event.code
        if closed:
            break
    assert closed == 1009


def test_an_honest_compressed_message_under_the_cap_inflates_whole():
    """A compressed message under the cap comes out whole and unchanged: the bound does not cut honest ones."""
    device, proxy_side = deflate_pair()
    text = ("a teacher's message " * 60_000)[: WRITE_CAP - 10]
    wire = device.send(TextMessage(text))
    assert len(wire) < len(text) // 10  # it really was compressed
    for _ in range(2):  # and the same again: the count starts afresh with each message
        proxy_side.receive_data(wire if _ == 0 else device.send(TextMessage(text)))
        events = list(proxy_side.events())
        assert not [e for e in events if isinstance(e, CloseConnection)]
        assert "".join(e.data for e in events if isinstance(e, TextMessage)) == text


# -- the wrappers are the ones in use ------------------------------------------------------

def test_the_wrapped_mitmproxy_code_is_the_version_the_limits_were_written_for():
    """The pinned mitmproxy and wsproto still have the methods wrapped here, so the limits are on, not skipped."""
    from dojoguard.proxy import headlimits, wslimits

    assert headlimits.source_digest() == headlimits._EXPECTED
    assert wslimits.source_digest() == wslimits._EXPECTED


async def test_building_the_proxy_puts_both_limits_in_place():
    """The master dojoguard runs has the HTTP/1 head limit and the WebSocket message limit installed."""
    from mitmproxy.proxy.layers.http._http1 import Http1Server
    from mitmproxy.proxy.layers.websocket import WebsocketLayer

    from dojoguard.proxy import headlimits, master, wslimits

    master.build(with_termlog=False)
    assert Http1Server._handle_event is headlimits.handle_event
    assert WebsocketLayer.relay_messages is wslimits.relay_messages
    assert WebsocketLayer._handle_event is wslimits.start
