"""Writes dressed up as something else, through the real proxy, the stand-in and the built-in policy.

Each test sends what a device can send on the wire (raw bytes over a real
TLS tunnel through the proxy: a forged ``Host``, an absolute-form target,
a trailing dot, a path spelled another way, a WebSocket message) and
proves that the write is refused with a recorded decision or judged as
what it is, and that nothing the policy forbids reaches ClassDojo.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import time

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from dojoguard.standin import data
from tests.proxy.conftest import running_proxy, signed_in, through_connect

pytestmark = pytest.mark.slow

MESSAGE_PATH = f"/api/message-thread/{data.THREAD_ID}/message"
AWARD_PATH = f"/api/dojoClass/{data.CLASS_ID}/awardBatch"
SWEARING = json.dumps({"body": "what a load of sh1t"}).encode()
NEGATIVE = json.dumps({"studentIds": [data.PUPILS[0]["_id"]], "points": -5}).encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The real proxy on the built-in St Wilfrid's policy, at 10:00 on a Monday, in front of the stand-in."""
    with running_proxy(tmp_path_factory.mktemp("bypasses"), policy="builtin") as found:
        with signed_in(found["proxy"]) as client:
            found["cookie"] = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        yield found


def tunnel(world, target: str = "teach.classdojo.com:443", sni: str | None = "teach.classdojo.com"):
    """A TLS connection through the proxy's CONNECT tunnel to ``target`` (names under test are not all certificate names)."""
    raw = socket.create_connection(("127.0.0.1", world["proxy"].port), timeout=30)
    return through_connect(world["proxy"], raw, target, sni, check_hostname=False)


def send(world, head: str, body: bytes = b"", **connect) -> tuple[int, dict, bytes]:
    """Send ``head`` (request line and headers, no Content-Length) and ``body``; the status, headers and body."""
    with tunnel(world, **connect) as tls:
        lines = head.strip("\r\n").replace("\r\n", "\n").split("\n")
        lines += [f"Cookie: {world['cookie']}", f"Content-Length: {len(body)}", "Connection: close"]
        tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        answer = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLError, OSError):
                break
            if not chunk:
                break
            answer += chunk
    head_bytes, _, rest = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, rest


def decisions(world) -> list[dict]:
    db = sqlite3.connect(world["folder"] / "data" / "audit.sqlite")
    try:
        rows = db.execute("SELECT id, body FROM records WHERE type = 'decision' ORDER BY seq")
        return [dict(json.loads(body), decision_id=record_id) for record_id, body in rows]
    finally:
        db.close()


def decision(world, decision_id: str) -> dict:
    found = [d for d in decisions(world) if d.get("decision_id") == decision_id]
    assert found, f"no audit record for {decision_id}"
    return found[0]


def arrived(world, marker: bytes) -> list:
    return [r for r in world["standin"].received if marker in r.body]


def refused_and_recorded(world, status: int, headers: dict, body: bytes) -> dict:
    assert status == 403, (status, body)
    decision_id = json.loads(body)["error"]["decisionId"]
    assert headers.get("x-dojoguard-decision") == decision_id
    record = decision(world, decision_id)
    assert record["verdict"] == "block"
    return record


def test_the_control_a_plain_swear_word_is_refused(world):
    """The baseline the other tests walk around: the message itself, addressed plainly, is refused."""
    status, headers, body = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: teach.classdojo.com\n"
                                        "Content-Type: application/json", SWEARING)
    record = refused_and_recorded(world, status, headers, body)
    assert "appropriate-language" in record["rules"]
    assert not arrived(world, b"sh1t")


@pytest.mark.parametrize("host", ["www.example.org", "127.0.0.1", "localhost", "[::1]", "evil.example.com:443"])
def test_a_forged_host_header_is_refused_and_recorded(world, host):
    """A ClassDojo tunnel carrying another site's Host is refused with a decision, not waved through unjudged."""
    status, headers, body = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: {host}\n"
                                        "Content-Type: application/json", SWEARING)
    record = refused_and_recorded(world, status, headers, body)
    assert "proxy.misdirected" in record["rules"]
    assert not arrived(world, b"sh1t")


def test_a_duplicated_host_header_is_refused(world):
    """Two Host headers (ClassDojo's and another) are refused: the server might read either."""
    status, headers, body = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: teach.classdojo.com\n"
                                        "Host: www.example.org\nContent-Type: application/json", SWEARING)
    assert "proxy.misdirected" in refused_and_recorded(world, status, headers, body)["rules"]
    assert not arrived(world, b"sh1t")


def test_an_absolute_form_target_naming_another_host_is_refused(world):
    """``POST https://www.example.org/...`` inside a ClassDojo tunnel is refused, whatever the Host says."""
    status, headers, body = send(world, f"POST https://www.example.org{MESSAGE_PATH} HTTP/1.1\n"
                                        "Host: teach.classdojo.com\nContent-Type: application/json", SWEARING)
    assert "proxy.misdirected" in refused_and_recorded(world, status, headers, body)["rules"]
    assert not arrived(world, b"sh1t")


def test_a_plain_http_request_with_a_forged_host_is_refused(world):
    """An explicit-proxy plain request to ClassDojo with another Host header is refused before it is sent."""
    with socket.create_connection(("127.0.0.1", world["proxy"].port), timeout=30) as raw:
        raw.sendall((f"POST http://teach.classdojo.com{MESSAGE_PATH} HTTP/1.1\r\nHost: www.example.org\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(SWEARING)}\r\n"
                     "Connection: close\r\n\r\n").encode() + SWEARING)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    body = answer.partition(b"\r\n\r\n")[2]
    assert "proxy.misdirected" in decision(world, json.loads(body)["error"]["decisionId"])["rules"]


def test_the_apex_domain_is_classdojo(world):
    """``Host: classdojo.com`` on a ClassDojo tunnel is judged as ClassDojo: a negative award and a swear word are refused."""
    status, headers, body = send(world, f"POST {AWARD_PATH} HTTP/1.1\nHost: classdojo.com\n"
                                        "Content-Type: application/json", NEGATIVE)
    assert "positive-points-only" in refused_and_recorded(world, status, headers, body)["rules"]
    status, headers, body = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: ClassDojo.COM.\n"
                                        "Content-Type: application/json", SWEARING)
    assert "appropriate-language" in refused_and_recorded(world, status, headers, body)["rules"]
    assert not arrived(world, b"sh1t") and not arrived(world, b"-5")


def test_a_trailing_dot_in_connect_and_sni_is_still_intercepted(world):
    """``CONNECT teach.classdojo.com.:443`` with that SNI is decrypted and judged, not tunnelled untouched."""
    status, headers, body = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: teach.classdojo.com.\n"
                                        "Content-Type: application/json", SWEARING,
                                 target="teach.classdojo.com.:443", sni="teach.classdojo.com.")
    assert "appropriate-language" in refused_and_recorded(world, status, headers, body)["rules"]
    assert not arrived(world, b"sh1t")


def test_the_tunnel_name_wins_when_there_is_no_sni(world):
    """Without a TLS server name, a ClassDojo CONNECT target with another Host is still refused."""
    status, headers, body = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: www.example.org\n"
                                        "Content-Type: application/json", SWEARING, sni=None)
    assert "proxy.misdirected" in refused_and_recorded(world, status, headers, body)["rules"]


@pytest.mark.parametrize("path", [
    AWARD_PATH + "/",
    AWARD_PATH.replace("awardBatch", "AwardBatch"),
    AWARD_PATH.upper().replace("/API/", "/api/").replace(data.CLASS_ID.upper(), data.CLASS_ID),
    "/" + AWARD_PATH,
    AWARD_PATH.replace("/api/", "//api//"),
    "/x/.." + AWARD_PATH,
    AWARD_PATH.replace("/dojoClass/", "/dojoClass/./"),
    AWARD_PATH.replace("awardBatch", "%61wardBatch"),
    "/api/AWARDBATCH/",
])
def test_a_negative_award_spelled_another_way_is_judged_as_an_award(world, path):
    """Paths Express (or a normalising front server) routes to the award handler are judged as awards: -5 is refused."""
    body = json.dumps({"classId": data.CLASS_ID, "studentIds": [data.PUPILS[0]["_id"]], "points": -5}).encode()
    status, headers, answer = send(world, f"POST {path} HTTP/1.1\nHost: teach.classdojo.com\n"
                                          "Content-Type: application/json", body)
    record = refused_and_recorded(world, status, headers, answer)
    assert "positive-points-only" in record["rules"], record
    assert record["kind"] == "points.award"


def test_a_positive_award_spelled_another_way_still_goes_through(world):
    """Routing by the server's rules is not a blanket refusal: a +1 award to ``/api/AwardBatch/`` is forwarded."""
    before = len(world["standin"].writes())
    body = json.dumps({"classId": data.CLASS_ID, "studentIds": [data.PUPILS[0]["_id"]], "points": 1}).encode()
    status, _, answer = send(world, "POST /api/AwardBatch/ HTTP/1.1\nHost: teach.classdojo.com\n"
                                    "Content-Type: application/json", body)
    assert status == 200, answer
    assert len(world["standin"].writes()) == before + 1


def websocket_exchange(world, messages: list[str]) -> list[str]:
    """Open a WebSocket to ClassDojo through the proxy, send ``messages``, return the echoes that came back."""
    echoes: list[str] = []
    with tunnel(world) as tls:
        ws = WSConnection(ConnectionType.CLIENT)
        tls.sendall(ws.send(Request(host="teach.classdojo.com", target="/realtime",
                                    extra_headers=[(b"cookie", world["cookie"].encode())])))
        accepted = False
        while not accepted:
            ws.receive_data(tls.recv(65536))
            for event in ws.events():
                assert isinstance(event, AcceptConnection), event
                accepted = True
        for text in messages:
            tls.sendall(ws.send(TextMessage(text)))
        tls.settimeout(3)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = tls.recv(65536)
            except (TimeoutError, ssl.SSLError, OSError):
                break
            if not chunk:
                break
            ws.receive_data(chunk)
            for event in ws.events():
                if isinstance(event, TextMessage):
                    echoes.append(event.data)
            if len(echoes) == len(messages):
                break
        try:
            tls.sendall(ws.send(CloseConnection(code=1000)))
        except OSError:
            pass
    return echoes


def test_websocket_messages_to_classdojo_are_judged(world):
    """A swear word sent over a WebSocket is dropped and recorded; a clean message on the same socket arrives."""
    before = len(decisions(world))
    clean = json.dumps({"body": "Well done everyone"})
    echoes = websocket_exchange(world, [json.dumps({"text": "what a load of sh1t"}), clean])
    assert echoes == [clean]
    reached = [r for r in world["standin"].received if r.method == "WEBSOCKET"]
    assert [r.body for r in reached] == [clean.encode()]
    new = decisions(world)[before:]
    blocked = [d for d in new if d["verdict"] == "block"]
    assert len(blocked) == 1 and "appropriate-language" in blocked[0]["rules"]
    assert blocked[0]["endpoint"].startswith("unclassified WEBSOCKET")
    assert any(d["verdict"] != "block" for d in new)


def test_a_gzip_body_of_two_members_is_read_whole(world):
    """``gzip(hello) + gzip(sh1t)`` is read as a server reads it ("hello sh1t"), not by its first member alone."""
    import gzip

    body = gzip.compress(b'{"body": "hello ') + gzip.compress(b'what a load of sh1t"}')
    status, headers, answer = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: teach.classdojo.com\n"
                                          "Content-Type: application/json\nContent-Encoding: gzip", body)
    assert "appropriate-language" in refused_and_recorded(world, status, headers, answer)["rules"]
    assert not arrived(world, body)


def test_words_in_the_query_string_are_read(world):
    """A server reads query parameters too: a swear word in ``?note=`` on a clean message is refused."""
    status, headers, answer = send(world, f"POST {MESSAGE_PATH}?note=what%20a%20load%20of%20sh1t HTTP/1.1\n"
                                          "Host: teach.classdojo.com\nContent-Type: application/json",
                                   json.dumps({"body": "See you tomorrow"}).encode())
    assert "appropriate-language" in refused_and_recorded(world, status, headers, answer)["rules"]
    assert not arrived(world, b"See you tomorrow")


def test_every_string_is_scanned_but_only_the_message_counts_for_its_length(world):
    """Reading every string does not make a short message long: 450 typed characters with metadata beside them."""
    typed = "Please bring a coat for the trip tomorrow. " * 10 + "Thanks!"
    assert 400 < len(typed) < 500
    body = json.dumps({"body": typed, "clientId": "web-app " * 20, "locale": "en-GB " * 20}).encode()
    status, headers, _ = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: teach.classdojo.com\n"
                                     "Content-Type: application/json", body)
    assert status == 200
    assert "doorstep-length" not in decision(world, headers["x-dojoguard-decision"])["rules"]
    long = json.dumps({"body": typed * 2}).encode()
    status, headers, _ = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: teach.classdojo.com\n"
                                     "Content-Type: application/json", long)
    assert status == 200
    assert "doorstep-length" in decision(world, headers["x-dojoguard-decision"])["rules"]


# -- found by an adversarial review of the fixes above ------------------------------------------


def test_a_get_with_a_body_is_judged_like_a_post(world):
    """A server reads a body whatever the method: a GET (or OPTIONS) carrying a swear word is judged and refused."""
    for method in ("GET", "OPTIONS", "SEARCH"):
        status, headers, answer = send(world, f"{method} {MESSAGE_PATH} HTTP/1.1\nHost: teach.classdojo.com\n"
                                              "Content-Type: application/json", SWEARING)
        assert "appropriate-language" in refused_and_recorded(world, status, headers, answer)["rules"], method
    assert not arrived(world, b"sh1t")


def test_a_pubnub_publish_by_get_is_judged_on_the_message_in_its_path(world):
    """PubNub's publish is a GET with the message in the path: judged on it, refused, and recorded."""
    path = "/publish/pub-c-1/sub-c-1/0/class-chat/0/%22what%20a%20load%20of%20sh1t%22"
    status, headers, answer = send(world, f"GET {path} HTTP/1.1\nHost: classdojo.pubnub.com", b"",
                                   target="classdojo.pubnub.com:443", sni="classdojo.pubnub.com")
    assert "appropriate-language" in refused_and_recorded(world, status, headers, answer)["rules"]
    assert not [r for r in world["standin"].received if "/publish/" in r.path]


def test_long_text_that_looks_like_base64_is_still_read(world):
    """353 characters of words joined by hyphens are words, not inline data: the swear word among them is found."""
    long = "Dear-parents-this-week-has-been-a-total-load-of-sh1t-" * 7
    body = json.dumps({"body": "hello", "subject": long}).encode()
    status, headers, answer = send(world, f"POST {MESSAGE_PATH}?note={long} HTTP/1.1\nHost: teach.classdojo.com\n"
                                          "Content-Type: application/json", body)
    assert "appropriate-language" in refused_and_recorded(world, status, headers, answer)["rules"]


def test_an_unrecognised_write_in_bytes_without_words_is_refused(world):
    """UTF-16 (or compressed) bytes to an unknown path cannot be judged by the content rules, so they are not sent."""
    status, headers, answer = send(world, "POST /api/somethingNew HTTP/1.1\nHost: teach.classdojo.com\n"
                                          "Content-Type: application/octet-stream",
                                   "what a load of sh1t".encode("utf-16"))
    assert "proxy.incomplete-action" in refused_and_recorded(world, status, headers, answer)["rules"]


def test_a_huge_header_run_in_a_multipart_part_does_not_hold_the_proxy(world):
    """80 kB of spaces in a part's header line is refused at once, and another teacher's message is not kept waiting."""
    part = (b"--XyZ\r\nContent-Disposition: form-data; name=\"body\"\r\nX-A: x" + b" " * 80_000 + b"y\r\n\r\n"
            b"hello\r\n--XyZ--\r\n")
    started = time.monotonic()
    status, headers, answer = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: teach.classdojo.com\n"
                                          "Content-Type: multipart/form-data; boundary=XyZ", part)
    assert time.monotonic() - started < 5
    assert "proxy.incomplete-action" in refused_and_recorded(world, status, headers, answer)["rules"]


def test_a_form_of_a_hundred_thousand_fields_is_refused_quickly(world):
    """``a=1&`` 100,000 times is refused in well under a second (Express reads 1,000 fields at most)."""
    started = time.monotonic()
    status, headers, answer = send(world, f"POST {MESSAGE_PATH} HTTP/1.1\nHost: teach.classdojo.com\n"
                                          "Content-Type: application/x-www-form-urlencoded", b"a=1&" * 100_000)
    assert time.monotonic() - started < 5
    assert "proxy.incomplete-action" in refused_and_recorded(world, status, headers, answer)["rules"]
