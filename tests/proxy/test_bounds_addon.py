"""The Bounds addons' hooks, driven through mitmproxy's own addon manager against real services."""

from __future__ import annotations

import asyncio
import json

from mitmproxy import options
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import taddons, tflow, tutils

from dojoguard.consent_registry.fairslots import REQUESTER
from dojoguard.proxy import bounds, destinations, master, oversize
from dojoguard.proxy.addon import Guard
from dojoguard.proxy.enforcement import DECISION_HEADER
from tests.proxy.conftest import THREAD_ID, write_flow
from tests.proxy.conftest import audit_rows as records

MESSAGE = f"/api/message-thread/{THREAD_ID}/message"


def audit_rows(services, kind: str = "decision") -> list[dict]:
    return records(services.settings.audit_path, kind)


class Probe:
    """Stands where Guard stands: notes who the image checks would take turns for."""

    def __init__(self):
        self.seen: list[str] = []

    def request(self, flow) -> None:
        self.seen.append(REQUESTER.get())


async def test_the_image_queue_knows_who_asked_when_the_guard_judges(services):
    """mitmproxy calls Bounds then the Guard in one task, so the requester Bounds sets is what the checks see."""
    m = master.build(options.Options(), with_termlog=False)
    added = bounds.addons(services, Guard(services))
    probe = Probe()
    m.addons.add(added[0], probe)
    flow = write_flow(MESSAGE, {"body": "hello"})
    # As mitmproxy's connection handler does: each hook in a task of its own.
    await asyncio.create_task(m.addons.handle_lifecycle(HttpRequestHook(flow)))
    assert probe.seen == [f"device:{flow.client_conn.peername[0]}"]
    assert REQUESTER.get() == ""  # not leaked into other tasks (another request's hooks)


async def test_connect_to_a_port_outside_the_list_is_refused_and_recorded(services):
    """http_connect answers 403 for a port not in connect_ports, and records connection.refused."""
    addon = bounds.Bounds(services, Guard(services))
    with taddons.context(addon):
        flow = tflow.tflow(req=tutils.treq(method=b"CONNECT", host="mail.example.org", port=25, path=b"",
                                           authority=b"mail.example.org:25"))
        await addon.http_connect(flow)
        assert flow.response.status_code == 403
        allowed = tflow.tflow(req=tutils.treq(method=b"CONNECT", host="teach.classdojo.com", port=443, path=b"",
                                              authority=b"teach.classdojo.com:443"))
        await addon.http_connect(allowed)
        assert allowed.response is None
    (row,) = audit_rows(services, "connection.refused")
    assert row["reason"] == "port" and row["port"] == 25


async def test_clients_outside_the_served_networks_are_refused_and_recorded_once(services):
    """Outside proxy.client_networks: disconnected, and one audit record (with a count) however many times it tries."""
    addon = bounds.Bounds(services, Guard(services))
    with taddons.context(addon):
        outsiders = [tflow.tclient_conn() for _ in range(5)]
        for outsider in outsiders:
            outsider.peername = ("203.0.113.9", 5000)
            addon.client_connected(outsider)
        mapped = tflow.tclient_conn()
        mapped.peername = ("::ffff:203.0.113.9", 5001, 0, 0)  # the same device over IPv6: not a way round
        addon.client_connected(mapped)
        insider = tflow.tclient_conn()
        addon.client_connected(insider)
        for _ in range(50):
            await asyncio.sleep(0.02)
            if audit_rows(services, "connection.refused"):
                break
    assert all(o.error and "not served" in o.error for o in [*outsiders, mapped])
    assert insider.error is None and addon.open_connections("203.0.113.9") == 0
    (row,) = audit_rows(services, "connection.refused")
    assert (row["device"], row["reason"], row["repeats"]) == ("203.0.113.9", "outside-client-networks", 0)
    assert addon.reporter._repeats[("203.0.113.9", "outside-client-networks")] == 5


async def test_connections_are_counted_per_device_and_released(services):
    """Each device's open connections are counted; closing them gives the device its allowance back."""
    addon = bounds.Bounds(services, Guard(services))
    limit = services.settings.max_connections_per_client
    clients = [tflow.tclient_conn() for _ in range(limit + 1)]
    with taddons.context(addon):
        for client in clients:
            client.peername = ("127.0.0.7", 50000)
            addon.client_connected(client)
        assert clients[-1].error and not clients[0].error
        for client in clients:
            addon.client_disconnected(client)
        assert addon.open_connections("127.0.0.7") == 0


async def test_an_ipv4_mapped_peer_counts_as_the_same_device(services):
    """A device cannot double its allowance by also connecting over IPv6 as ::ffff:a.b.c.d."""
    assert bounds.device_of(type("C", (), {"peername": ("::ffff:10.0.0.7", 1, 0, 0)})()) == "10.0.0.7"


async def test_an_oversized_body_is_answered_with_a_recorded_refusal(services):
    """The over-limit hook records proxy.body-too-large and answers 413 with the reference, ClassDojo-shaped."""
    addon = bounds.Bounds(services, Guard(services))
    with taddons.context(addon):
        flow = write_flow(MESSAGE, b"")
        await addon.dojoguard_request_too_large(flow)
    assert flow.response.status_code == 413
    error = json.loads(flow.response.content)["error"]
    assert error["decisionId"] in error["fallbackMessage"]
    assert flow.response.headers[DECISION_HEADER] == error["decisionId"]
    assert audit_rows(services)[0]["rules"] == ["proxy.body-too-large"]


async def test_an_oversized_body_to_another_site_is_refused_without_a_decision(services):
    """Only ClassDojo writes get decisions: an over-limit upload elsewhere gets a plain 413 and a per-device count."""
    addon = bounds.Bounds(services, Guard(services))
    with taddons.context(addon):
        flow = write_flow("/upload", b"", host="www.example.org")
        await addon.dojoguard_request_too_large(flow)
    assert flow.response.status_code == 413 and DECISION_HEADER not in flow.response.headers
    assert audit_rows(services) == []
    assert [r["reason"] for r in audit_rows(services, "connection.refused")] == ["body-too-large"]


async def test_the_oversize_wrapper_is_installed_by_the_master():
    """Building the master wraps mitmproxy's body-size check (the version it was written for is pinned)."""
    master.build(options.Options(), with_termlog=False)
    assert oversize.install()
    assert oversize.source_digest() == oversize._EXPECTED


async def test_a_name_is_connected_at_its_judged_address_and_known_by_its_name_again(services, monkeypatch):
    """The destination check connects to the address it judged (no second lookup to rebind), and once the
    connection is open it is named by the host the device asked for again, as routing expects."""
    from mitmproxy import connection
    from mitmproxy.proxy import server_hooks

    async def judged(host, port):
        return destinations.Destination(host, port, "93.184.215.14")

    monkeypatch.setattr(destinations, "judge", judged)
    guard = Guard(services)
    check = bounds.DestinationGuard(services, bounds.Bounds(services, guard))
    server = connection.Server(address=("teach.classdojo.com", 443))
    data = server_hooks.ServerConnectionHookData(server=server, client=tflow.tclient_conn())
    with taddons.context(guard, check):
        guard.server_connect(data)
        await check.server_connect(data)
        assert server.address == ("93.184.215.14", 443) and server.sni == "teach.classdojo.com"
        guard.server_connected(data)
    assert server.address == ("teach.classdojo.com", 443)


async def test_a_name_that_resolves_to_loopback_is_refused_before_connecting(services, monkeypatch):
    """A host name whose address is loopback (DNS rebinding to the proxy host) gets no connection at all."""
    from mitmproxy import connection
    from mitmproxy.proxy import server_hooks

    async def resolve(host, port):
        import ipaddress
        return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(destinations, "resolve", resolve)
    check = bounds.DestinationGuard(services, bounds.Bounds(services, Guard(services)))
    server = connection.Server(address=("rebind.example.org", 443))
    data = server_hooks.ServerConnectionHookData(server=server, client=tflow.tclient_conn())
    with taddons.context(check):
        await check.server_connect(data)
    assert server.error and "loopback" in server.error
    assert server.address == ("rebind.example.org", 443)


async def test_a_flood_of_refusals_is_one_record_that_counts_the_rest(services):
    """Refusals of one device and reason are recorded once per window; the next record counts those between."""
    reporter = bounds.Reporter(services)
    for _ in range(5):
        await reporter.refused("10.0.0.9", "port", host="mail.example.org", port=25)
    assert [r["repeats"] for r in audit_rows(services, "connection.refused")] == [0]
    key = ("10.0.0.9", "port")
    reporter._last[key] -= bounds.REPORT_EVERY_S  # the window has passed
    await reporter.refused("10.0.0.9", "port", host="mail.example.org", port=25)
    await reporter.refused("10.0.0.10", "port", host="mail.example.org", port=25)  # another device: its own record
    rows = audit_rows(services, "connection.refused")
    assert [(r["device"], r["repeats"]) for r in rows] == [("10.0.0.9", 0), ("10.0.0.9", 4), ("10.0.0.10", 0)]
