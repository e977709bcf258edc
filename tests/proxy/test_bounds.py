"""Bounds through the real proxy: loop guard, CONNECT ports, connections per device, slow and oversized bodies.

A real ``dojoguard run`` in front of the stand-in, with the bounds set small
so that each flood is real but short: every test opens at most a few dozen
connections, on loopback only, and finishes in seconds.
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

from dojoguard.clock import FileClock
from dojoguard.proxy.enforcement import DECISION_HEADER
from dojoguard.standin import StandIn, data
from dojoguard.standin.harness import ProxyProcess
from tests.proxy.conftest import MONDAY_10, through_connect, write_config

pytestmark = pytest.mark.slow

MESSAGE = f"https://teach.classdojo.com/api/message-thread/{data.THREAD_ID}/message"
MAX_CONNECTIONS = 12
BODY_TIMEOUT_S = 1.5
MAX_SESSIONS = 5
MAX_SHAPES = 10
# Each flood comes from its own loopback address, so one test's device never hits another's limit.
FLOOD_DEVICE = "127.0.0.5"
SLOW_DEVICE = "127.0.0.6"
SESSION_DEVICE = "127.0.0.7"
LIMIT_DEVICE = "127.0.0.8"


class Listener:
    """A TCP service on the proxy host (as the SMTP server of the finding); counts who reached it."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0):
        self.sock = socket.create_server((address, port))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.sendall(b"220 smtp.test ESMTP\r\n")
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bounds")
    service = Listener()
    # The service's port is allowed for CONNECT, so only the loop guard stands between a device and it.
    config = write_config(folder, max_write_body_mb=1, body_timeout_s=BODY_TIMEOUT_S,
                          max_connections_per_client=MAX_CONNECTIONS, connect_ports=[443, 80, service.port],
                          max_sessions=MAX_SESSIONS, max_unclassified_shapes=MAX_SHAPES)
    clock = folder / "clock"
    FileClock.write(clock, MONDAY_10)  # in school hours, so a message write is allowed
    with StandIn(folder / "standin") as standin:
        proxy = ProxyProcess(config, folder, standin.port, standin.ca_cert, clock_file=clock).start()
        try:
            yield {"folder": folder, "standin": standin, "proxy": proxy, "service": service}
        finally:
            proxy.stop()
            service.close()


@pytest.fixture(scope="module")
def client(world):
    context = ssl.create_default_context(cafile=str(world["proxy"].ca_cert))
    with httpx.Client(proxy=world["proxy"].url, verify=context, timeout=30) as c:
        login = c.post("https://teach.classdojo.com/api/session?duration=long",
                       json={"login": "teacher@example.org", "password": data.PASSWORD})
        assert login.status_code == 200, login.text
        yield c


def records(world, kind: str = "decision") -> list[dict]:
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT id, body FROM records WHERE type = ? ORDER BY seq", (kind,)).fetchall()
        return [{**json.loads(body), "decision_id": record_id} for record_id, body in rows]
    finally:
        db.close()


def connect(world, target: str, *, source: str = "127.0.0.1") -> bytes:
    """The proxy's answer to ``CONNECT target`` (b"" when it closes the connection without one)."""
    with socket.socket() as raw:
        raw.bind((source, 0))
        raw.settimeout(10)
        raw.connect(("127.0.0.1", world["proxy"].port))
        raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        try:
            return raw.recv(4096)
        except (ConnectionResetError, TimeoutError):
            return b""


def tunnel(world, *, source: str = "127.0.0.1", host: str = "teach.classdojo.com") -> ssl.SSLSocket:
    """A TLS connection to ``host`` through the proxy, as a device opens it."""
    raw = socket.socket()
    raw.bind((source, 0))
    raw.settimeout(10)
    raw.connect(("127.0.0.1", world["proxy"].port))
    return through_connect(world["proxy"], raw, f"{host}:443", host)


def open_fds(proxy: ProxyProcess) -> int:
    return len(list(Path(f"/proc/{proxy.process.pid}/fd").iterdir()))


def rss_mb(proxy: ProxyProcess) -> float:
    for line in Path(f"/proc/{proxy.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    return predicate()


# -- the loop guard and CONNECT ports -------------------------------------------

LOOPBACK_SPELLINGS = ("127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0.0.0.0",
                      "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "127.255.255.254")


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_is_refused_on_an_allowed_port(world, host):
    """CONNECT to the proxy host's loopback service, in any spelling, gets no tunnel and never reaches it."""
    service = world["service"]
    before = service.accepted
    answer = connect(world, f"{host}:{service.port}")
    assert not answer.startswith(b"HTTP/1.1 200"), answer
    time.sleep(0.1)
    assert service.accepted == before


@pytest.mark.parametrize("host", ("127.1", "2130706433", "0x7f000001", "0.0.0.0", "[::ffff:127.0.0.1]"))
def test_the_proxy_cannot_be_made_to_connect_to_itself(world, host):
    """CONNECT to the proxy's own port in another spelling of loopback is refused (no tunnel into itself)."""
    answer = connect(world, f"{host}:{world['proxy'].port}")
    assert not answer.startswith(b"HTTP/1.1 200"), answer


def test_the_proxy_hosts_own_network_address_is_refused(world):
    """CONNECT to a service on this machine's own LAN address (not loopback) is refused as well."""
    from tests.proxy.test_destinations import own_non_loopback_address

    address = own_non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address outside loopback")
    # On the port connect_ports allows, so only the destination check stands in the way.
    service = Listener(address, world["service"].port)
    try:
        answer = connect(world, f"{address}:{service.port}")
        assert not answer.startswith(b"HTTP/1.1 200"), answer
        assert service.accepted == 0
        found = wait_for(lambda: [e for e in records(world, "connection.refused") if e["reason"] == "own-address"])
        assert found
    finally:
        service.close()


def test_a_plain_http_request_to_loopback_is_refused_too(world):
    """An absolute-form http:// request naming loopback in another spelling never reaches the service."""
    service = world["service"]
    before = service.accepted
    with socket.create_connection(("127.0.0.1", world["proxy"].port), timeout=10) as raw:
        raw.sendall(f"GET http://2130706433:{service.port}/ HTTP/1.1\r\nHost: 2130706433:{service.port}\r\n"
                    "Connection: close\r\n\r\n".encode())
        answer = raw.recv(4096)
    assert not answer.startswith(b"HTTP/1.1 200") and b"220 smtp" not in answer
    assert service.accepted == before


def test_connect_to_a_port_not_configured_is_refused(world):
    """CONNECT to a port outside proxy.connect_ports is answered 403, whatever the host."""
    answer = connect(world, "www.example.org:2525")
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert any(e["reason"] == "port" for e in records(world, "connection.refused"))


def test_a_plain_http_request_cannot_name_another_port_either(world):
    """An absolute-form http:// request to a port outside connect_ports is refused without a connection."""
    service = world["service"]
    outside = Listener("127.0.0.1")  # loopback too, but the port is what is refused first
    try:
        with socket.create_connection(("127.0.0.1", world["proxy"].port), timeout=10) as raw:
            raw.sendall(f"GET http://www.example.org:{outside.port}/ HTTP/1.1\r\nHost: www.example.org:{outside.port}"
                        "\r\nConnection: close\r\n\r\n".encode())
            answer = raw.recv(4096)
        assert not answer.startswith(b"HTTP/1.1 200") and b"220 smtp" not in answer
        assert outside.accepted == 0 and service.accepted == 0
    finally:
        outside.close()


def test_refusals_are_recorded(world):
    """A refused loopback destination is in the audit log as connection.refused, with its reason."""
    connect(world, f"127.1:{world['service'].port}", source="127.0.0.9")
    found = wait_for(lambda: [e for e in records(world, "connection.refused")
                              if e["device"] == "127.0.0.9" and e["reason"] == "loopback"])
    assert found


def test_chained_connects_to_itself_make_no_tunnels(world, client):
    """Pipelined CONNECT lines naming the proxy itself open no tunnel; descriptors stay flat; text writes stay fast."""
    proxy = world["proxy"]
    fds_before = open_fds(proxy)
    line = f"CONNECT 127.1:{proxy.port} HTTP/1.1\r\nHost: 127.1:{proxy.port}\r\n\r\n".encode()
    sockets = []
    for _ in range(8):
        raw = socket.socket()
        raw.bind((FLOOD_DEVICE, 0))
        raw.settimeout(5)
        raw.connect(("127.0.0.1", proxy.port))
        raw.sendall(line * 50)
        sockets.append(raw)
    started = time.perf_counter()
    response = client.post(MESSAGE, json={"body": "See you tomorrow"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and elapsed < 2.0
    assert open_fds(proxy) <= fds_before + 2 * len(sockets) + 4
    for raw in sockets:
        raw.close()


# -- connections per device -----------------------------------------------------

def test_a_device_cannot_hold_more_connections_than_its_limit(world, client):
    """Past max_connections_per_client the device's next connections are closed at once; others are served."""
    proxy = world["proxy"]
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=5, source_address=(LIMIT_DEVICE, 0))
            held.append(raw)
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", proxy.port), timeout=5, source_address=(LIMIT_DEVICE, 0))
        extra.sendall(b"CONNECT teach.classdojo.com:443 HTTP/1.1\r\nHost: teach.classdojo.com:443\r\n\r\n")
        try:
            answer = extra.recv(4096)
        except ConnectionResetError:
            answer = b""
        extra.close()
        assert answer == b""
        # Another device is served meanwhile.
        assert client.post(MESSAGE, json={"body": "Lovely work today"}).status_code == 200
    finally:
        for raw in held:
            raw.close()
    # Once closed, the device may connect again.
    assert wait_for(lambda: connect(world, "teach.classdojo.com:443", source=LIMIT_DEVICE).startswith(b"HTTP/1.1 200"))
    assert any(e["reason"] == "too-many-connections" and e["device"] == LIMIT_DEVICE
               for e in records(world, "connection.refused"))


# -- time to send a body ----------------------------------------------------------

def _slow_write(world, *, trickle: bool) -> tuple[bytes, float]:
    """A message write that never finishes its body: all at once then silence, or a byte at a time."""
    tls = tunnel(world, source=SLOW_DEVICE)
    body = json.dumps({"body": "a slow message"}).encode()
    path = MESSAGE.removeprefix("https://teach.classdojo.com")
    tls.sendall(f"POST {path} HTTP/1.1\r\nHost: teach.classdojo.com\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body) + 100}\r\n\r\n".encode() + body[:5])
    started = time.perf_counter()
    answer = b""
    tls.settimeout(0.3)
    try:
        for index in range(60):
            if trickle:
                tls.sendall(body[5 + index:6 + index] or b" ")
            try:
                chunk = tls.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                break
            answer += chunk
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
        pass
    finally:
        tls.close()
    return answer, time.perf_counter() - started


@pytest.mark.parametrize("trickle", (False, True), ids=("silent", "trickling"))
def test_a_slow_body_is_closed_and_its_decision_recorded(world, trickle):
    """A write whose body is not complete within body_timeout_s is closed, never forwarded, and recorded."""
    sent_before = len(world["standin"].writes())
    answer, took = _slow_write(world, trickle=trickle)
    assert b"HTTP/1.1 200" not in answer
    assert BODY_TIMEOUT_S - 0.2 <= took < BODY_TIMEOUT_S + 6
    found = wait_for(lambda: [d for d in records(world) if "proxy.body-timeout" in d.get("rules", [])
                              and d.get("device") == SLOW_DEVICE])
    assert found
    assert len(world["standin"].writes()) == sent_before


def test_a_body_sent_in_time_is_not_cut(world, client):
    """A write that arrives in time goes through: the timer stops when the body is complete."""
    def paced():
        yield b'{"body": "'
        time.sleep(BODY_TIMEOUT_S / 3)
        yield b'Well done"}'

    response = client.post(MESSAGE, content=paced(), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


# -- bodies over the size limit ---------------------------------------------------

def _refusal(response: httpx.Response) -> str:
    assert response.status_code in (403, 413), response.text[:300]
    doc = response.json()
    decision = doc["error"]["decisionId"]
    assert decision in doc["error"]["fallbackMessage"] and response.headers[DECISION_HEADER] == decision
    return decision


def test_a_chunked_body_over_the_limit_gets_a_recorded_refusal(world, client):
    """A chunked write past body_size_limit gets the ClassDojo-shaped refusal with a reference, and a record."""
    def chunks():
        piece = b"x" * 65536
        for _ in range(48):  # 3 MB, past 1 MB + the 1 MB margin
            yield piece

    sent_before = len(world["standin"].writes())
    response = client.post(MESSAGE, content=chunks(), headers={"content-type": "application/json"})
    decision = _refusal(response)
    assert any(d["decision_id"] == decision and "proxy.body-too-large" in d["rules"] for d in records(world))
    assert len(world["standin"].writes()) == sent_before


def test_a_declared_length_over_the_limit_gets_the_same_refusal(world, client):
    """A Content-Length past body_size_limit gets the same refusal (not mitmproxy's bare 413) and a record."""
    response = client.post(MESSAGE, content=b"x" * (3 * 1024 * 1024), headers={"content-type": "application/json"})
    decision = _refusal(response)
    assert any(d["decision_id"] == decision and "proxy.body-too-large" in d["rules"] for d in records(world))
    assert b"mitmproxy" not in response.content


def test_a_body_just_over_the_write_cap_is_refused_with_a_record(world, client):
    """A chunked write between max_write_body_mb and body_size_limit is refused and recorded as well."""
    def chunks():
        for _ in range(24):  # 1.5 MB: over the 1 MB cap, under mitmproxy's 2 MB limit
            yield b"y" * 65536

    decision = _refusal(client.post(MESSAGE, content=chunks(), headers={"content-type": "application/json"}))
    assert any(d["decision_id"] == decision and "proxy.body-too-large" in d["rules"] for d in records(world))


# -- learned sessions --------------------------------------------------------------

def test_logins_flooding_in_keep_the_sessions_table_under_its_cap(world):
    """Many new sessions (each a real login through the proxy) leave at most max_sessions rows."""
    context = ssl.create_default_context(cafile=str(world["proxy"].ca_cert))
    transport = httpx.HTTPTransport(local_address=SESSION_DEVICE, proxy=world["proxy"].url, verify=context)
    with httpx.Client(transport=transport, timeout=30) as c:
        for _ in range(MAX_SESSIONS * 3):
            login = c.post("https://teach.classdojo.com/api/session",
                           json={"login": "teacher@example.org", "password": data.PASSWORD})
            assert login.status_code == 200
            c.cookies.clear()
    db = sqlite3.connect(world["folder"] / "data" / "proxy.sqlite")
    try:
        rows = wait_for(lambda: db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] >= MAX_SESSIONS and
                        db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])
        assert rows == MAX_SESSIONS
    finally:
        db.close()


# -- unclassified-write summaries ---------------------------------------------------

def test_unknown_writes_to_made_up_paths_keep_the_summary_under_its_cap(world, client):
    """Writes to many made-up paths are each judged and recorded, but the discovery summary stays capped."""
    for i in range(MAX_SHAPES * 3):
        response = client.post(f"https://teach.classdojo.com/api/madeUpFeature{i}x", json={"flag": True})
        assert response.status_code == 200
    db = sqlite3.connect(world["folder"] / "data" / "proxy.sqlite")
    try:
        kept = db.execute("SELECT COUNT(*) FROM unclassified WHERE path != '(other paths)'").fetchone()[0]
        overflow = db.execute("SELECT SUM(count) FROM unclassified WHERE path = '(other paths)'").fetchone()[0]
    finally:
        db.close()
    assert kept == MAX_SHAPES and overflow == MAX_SHAPES * 2
    assert len([e for e in records(world, "write.unclassified") if "madeUpFeature" in e["path"]]) == MAX_SHAPES * 3
