"""The addon's routing hooks: requests whose names disagree, and WebSocket upgrades, with mitmproxy's test flows."""

from __future__ import annotations

import dataclasses

from mitmproxy import http
from mitmproxy.test import taddons, tflow

from dojoguard.proxy.addon import Guard
from tests.proxy.conftest import THREAD_ID, audit_rows, read_flow, write_flow

MESSAGE = f"/api/message-thread/{THREAD_ID}/message"


def decisions(services) -> list[dict]:
    return audit_rows(services.settings.audit_path)


def websocket_flow():
    """A WebSocket flow to ClassDojo, as a device's CONNECT and upgrade leave it."""
    flow = tflow.twebsocketflow()
    flow.request.headers["host"] = "teach.classdojo.com"
    flow.server_conn.address = ("teach.classdojo.com", 443)
    flow.client_conn.sni = "teach.classdojo.com"
    return flow


async def test_a_write_with_a_forged_host_is_refused_with_a_recorded_decision(services):
    """The Host says example.org, the tunnel goes to ClassDojo: refused at the headers, before the body is read."""
    guard = Guard(services)
    flow = write_flow(MESSAGE, {"body": "hello"})
    flow.request.headers["host"] = "www.example.org"
    with taddons.context(guard):
        await guard.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 403
    (row,) = decisions(services)
    assert row["rules"] == ["proxy.misdirected"] and row["verdict"] == "block"
    assert row["endpoint"] == "misdirected"


async def test_a_read_with_a_forged_host_is_refused_without_a_decision(services):
    """A read whose names disagree gets 421 (Misdirected Request) and teaches the proxy nothing."""
    guard = Guard(services)
    flow = read_flow("/api/session", {"_id": "someone else"})
    flow.response = None
    flow.request.headers["host"] = "127.0.0.1"
    with taddons.context(guard):
        await guard.requestheaders(flow)
    assert flow.response.status_code == 421
    assert decisions(services) == []


async def test_a_write_to_another_site_through_a_classdojo_named_tunnel_is_refused(services):
    """The reverse: the Host says ClassDojo but the connection goes elsewhere; also refused and recorded."""
    guard = Guard(services)
    flow = write_flow(MESSAGE, {"body": "hello"})
    flow.server_conn.address = ("www.example.org", 443)
    flow.client_conn.sni = "www.example.org"
    with taddons.context(guard):
        await guard.requestheaders(flow)
    assert flow.response.status_code == 403
    assert decisions(services)[0]["rules"] == ["proxy.misdirected"]


async def test_an_unrelated_site_is_left_alone(services):
    """A plain request that names no ClassDojo host anywhere is neither judged nor refused."""
    guard = Guard(services)
    flow = write_flow("/anything", {"body": "hello"}, host="www.example.org")
    with taddons.context(guard):
        await guard.requestheaders(flow)
        await guard.request(flow)
    assert flow.response is None and decisions(services) == []


def upgrade_flow() -> http.HTTPFlow:
    flow = read_flow("/realtime", {})
    flow.response = None
    flow.request.headers["upgrade"] = "websocket"
    flow.request.headers["connection"] = "Upgrade"
    return flow


async def test_websocket_upgrades_are_refused_when_the_setting_says_so(services):
    """With ``proxy.websockets: refuse`` the upgrade to a WebSocket on a ClassDojo host gets 403."""
    services.settings = dataclasses.replace(services.settings, websockets="refuse")
    guard = Guard(services)
    flow = upgrade_flow()
    with taddons.context(guard):
        await guard.requestheaders(flow)
    assert flow.response.status_code == 403


async def test_websocket_upgrades_pass_when_messages_are_judged(services):
    """By default (``judge``) the upgrade goes through; its messages are judged one by one."""
    guard = Guard(services)
    flow = upgrade_flow()
    with taddons.context(guard):
        await guard.requestheaders(flow)
    assert flow.response is None


async def test_a_websocket_message_that_breaks_the_policy_is_dropped_and_recorded(services):
    """Each message a device sends is judged and recorded; one that cannot be read is dropped; the server's pass."""
    from mitmproxy.websocket import WebSocketMessage
    from wsproto.frame_protocol import Opcode

    guard = Guard(services)
    flow = websocket_flow()
    sent = []
    for content in (b'{"text": "Well done today"}', b'{"text": "cut off'):
        flow.websocket.messages.append(WebSocketMessage(Opcode.TEXT, True, content))
        with taddons.context(guard):
            await guard.websocket_message(flow)
        sent.append(flow.websocket.messages[-1])
    rows = decisions(services)
    assert [r["verdict"] for r in rows] == ["allow", "block"]
    assert all(r["endpoint"].startswith("unclassified WEBSOCKET") for r in rows)
    assert [m.dropped for m in sent] == [False, True]
    flow.websocket.messages.append(WebSocketMessage(Opcode.TEXT, False, b"from the server"))
    with taddons.context(guard):
        await guard.websocket_message(flow)
    assert len(decisions(services)) == 2
    assert len(flow.websocket.messages) == 1  # earlier messages are not kept for the socket's lifetime


async def test_a_binary_websocket_message_is_read_as_a_picture_or_words_or_refused(services):
    """Binary messages: UTF-8 words are judged and go on; UTF-16 or compressed bytes cannot be read and are dropped."""
    import gzip

    from mitmproxy.websocket import WebSocketMessage
    from wsproto.frame_protocol import Opcode

    guard = Guard(services)
    flow = websocket_flow()
    sent = []
    for content in (b"Well done today", "Well done today".encode("utf-16"), gzip.compress(b"Well done today")):
        flow.websocket.messages.append(WebSocketMessage(Opcode.BINARY, True, content))
        with taddons.context(guard):
            await guard.websocket_message(flow)
        sent.append(flow.websocket.messages[-1])
    assert [m.dropped for m in sent] == [False, True, True]
    assert [r["verdict"] for r in decisions(services)] == ["allow", "block", "block"]


async def test_a_request_whose_names_cannot_be_read_is_refused_not_waved_through(services, monkeypatch):
    """If routing itself fails (a hook that raises lets mitmproxy forward the flow), the write is refused and recorded."""
    def broken(*args, **kwargs):
        raise RuntimeError("routing broke")

    guard = Guard(services)
    monkeypatch.setattr(type(services.catalogue), "role_of", broken)
    flow = write_flow(MESSAGE, {"body": "hello"})
    with taddons.context(guard):
        await guard.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 403
    assert decisions(services)[0]["rules"] == ["proxy.misdirected"]
