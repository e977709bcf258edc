"""Bounds on what one device can make the proxy hold: connections, time to send a body, destinations.

Two mitmproxy addons, added around ``Guard`` (see ``addons``):

- ``Bounds`` (before ``Guard``): at most ``proxy.max_connections_per_client``
  open connections per device; a request body must arrive within
  ``proxy.body_timeout_s`` of its headers, or the connection is closed and, for
  a write to ClassDojo, a decision is recorded; CONNECT only to
  ``proxy.connect_ports``; a body over the size limit, chunked or not, gets
  the ClassDojo-shaped refusal with a reference and a record (``oversize``).
  Beside it, ``headlimits.HeadLimits`` (a request head over
  ``proxy.max_header_kb``, or slower than ``proxy.header_timeout_s``) and
  ``wslimits.WebsocketLimits`` (a WebSocket message over
  ``proxy.max_write_body_mb``) report through its ``Reporter``.
- ``DestinationGuard`` (after ``Guard``, so that ``Guard`` has seen the
  name the device dialled before the address is pinned): every upstream
  connection is resolved and refused if any address is loopback, unspecified,
  link-local or this machine's own (``destinations``), then made to the
  address that was judged.

Refusals are logged, and recorded in the audit log at most once per device,
reason and ten minutes (a flood must not become a flood of records).
"""

from __future__ import annotations

import asyncio
import time
import zoneinfo
from collections import Counter
from typing import Any

import structlog
from mitmproxy import http

from dojoguard import tasks
from dojoguard.consent_registry.fairslots import REQUESTER
from dojoguard.proxy import destinations, enforcement, flows, headlimits, routing, wslimits
from dojoguard.proxy.refusal_notices import NOTICE_SLOW_BODY
from dojoguard.proxy.services import Services
from dojoguard.cookies import session_id

log = structlog.get_logger("dojoguard.proxy")

# How often one device's refusals of one kind are recorded in the audit log.
REPORT_EVERY_S = 600.0
# Devices and reasons whose last report time is remembered (oldest forgotten first).
MAX_REPORTED = 10_000


def addons(services: Services, guard) -> list:
    """``Bounds`` (with the head and WebSocket message limits), ``guard`` and ``DestinationGuard``, in order."""
    bounds = Bounds(services, guard)
    heads = headlimits.HeadLimits(services, bounds.reporter)
    messages = wslimits.WebsocketLimits(services, guard.judge, bounds.reporter)
    return [bounds, heads, messages, guard, DestinationGuard(services, bounds)]


def device_of(client) -> str:
    address = str(client.peername[0]) if client and client.peername else ""
    ip = destinations.literal(address)
    mapped = destinations.embedded_ipv4(ip) if ip is not None else None
    return str(mapped) if mapped is not None and ip.ipv4_mapped is not None else address


class Reporter:
    """Refusals, logged and recorded at most once per device and reason every ``REPORT_EVERY_S``.

    A flood of a thousand refused connections is one warning and one audit
    record, which say how many like it came since the last (``repeats``).
    """

    def __init__(self, services: Services):
        self.services = services
        self._last: dict[tuple[str, str], float] = {}
        self._repeats: Counter[tuple[str, str]] = Counter()

    def due(self, device: str, reason: str) -> bool:
        key, now = (device, reason), time.monotonic()
        last = self._last.pop(key, None)
        due = last is None or now - last >= REPORT_EVERY_S
        self._last[key] = now if due else last
        if len(self._last) > MAX_REPORTED:
            oldest = next(iter(self._last))
            del self._last[oldest]
            self._repeats.pop(oldest, None)
        if not due:
            self._repeats[key] += 1
        return due

    async def refused(self, device: str, reason: str, **fields: Any) -> None:
        if not self.due(device, reason):
            return
        repeats = self._repeats.pop((device, reason), 0)
        log.warning("connection.refused", device=device, reason=reason, repeats=repeats, **fields)
        try:
            await asyncio.to_thread(self.services.audit.append_event, "connection.refused",
                                    {"device": device, "reason": reason, "repeats": repeats, **fields})
        except Exception as exc:  # noqa: BLE001 - reported; the refusal itself stands
            log.error("audit.event_failed", audit_event="connection.refused", error=type(exc).__name__)


class Bounds:
    def __init__(self, services: Services, guard):
        self.services = services
        # The Guard decides what is a judged ClassDojo write (by its route, as everywhere else).
        self.guard = guard
        self.judge = guard.judge
        self.reporter = Reporter(services)
        self._open: Counter[str] = Counter()
        self._counted: dict[str, str] = {}  # client connection id -> device
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tz = zoneinfo.ZoneInfo(services.settings.timezone)

    @property
    def settings(self):
        return self.services.settings

    # -- connections ----------------------------------------------------------

    def client_connected(self, client) -> None:
        device = device_of(client)
        if not self.settings.serves(device):
            # Not an open relay. Under a redirect-everything rule (transparent
            # mode) a device of another network lands here without meaning to:
            # recorded in the audit log as well, once per device every ten minutes.
            client.error = "dojoguard: this network is not served by the proxy"
            tasks.start(self.reporter.refused(device, "outside-client-networks"))
            return
        self._counted[client.id] = device
        self._open[device] += 1
        limit = self.settings.max_connections_per_client
        if limit and self._open[device] > limit and not client.error:
            client.error = "dojoguard: too many connections from this device"
            tasks.start(self.reporter.refused(device, "too-many-connections", limit=limit))

    def client_disconnected(self, client) -> None:
        device = self._counted.pop(client.id, None)
        if device is None:
            return
        self._open[device] -= 1
        if self._open[device] <= 0:
            del self._open[device]

    def open_connections(self, device: str) -> int:
        return self._open.get(device, 0)

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        host, port = flow.request.host, flow.request.port
        if self.allowed_port(host, port):
            return
        device = flows.client_address(flow)
        flows.refuse(flow, 403, f"dojoguard: connections to port {port} are not allowed through this proxy\n"
                     .encode(), {"Content-Type": "text/plain; charset=utf-8"})
        await self.reporter.refused(device, "port", host=host[:100], port=port)

    def allowed_port(self, host: str, port: int) -> bool:
        return port in self.settings.connect_ports or (routing.normalise(host), port) in self.settings.resolve

    # -- request bodies ---------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        timeout = self.settings.body_timeout_s
        if timeout and flow.response is None and flow.error is None and flows.carries_body(flow.request):
            loop = asyncio.get_running_loop()
            self._timers[flow.id] = loop.call_later(timeout, self._body_timed_out, flow)

    def request(self, flow: http.HTTPFlow) -> None:
        self._stop_timer(flow)
        if self._is_classdojo_write(flow):
            # For this request's task only (mitmproxy calls every addon's hook in one task, Guard's
            # after this): the image checks take turns by who asked. Only judged writes have images checked.
            REQUESTER.set(self._requester(flow))

    def error(self, flow: http.HTTPFlow) -> None:
        self._stop_timer(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._stop_timer(flow)

    def _stop_timer(self, flow: http.HTTPFlow) -> None:
        timer = self._timers.pop(flow.id, None)
        if timer is not None:
            timer.cancel()

    def _body_timed_out(self, flow: http.HTTPFlow) -> None:
        if self._timers.pop(flow.id, None) is None:
            return
        tasks.start(self._close_slow(flow))

    async def _close_slow(self, flow: http.HTTPFlow) -> None:
        device = flows.client_address(flow)
        host = flows.host_of(flow)
        decision_id = None
        if self._is_classdojo_write(flow):
            try:
                outcome = await self._record(flow, "slow-body", "proxy.body-timeout",
                                             f"the body did not arrive within body_timeout_s "
                                             f"({self.settings.body_timeout_s:g} s)", NOTICE_SLOW_BODY)
                decision_id = outcome.decision.decision_id
            except Exception as exc:  # noqa: BLE001 - the connection is closed all the same
                log.error("bounds.record_failed", error=type(exc).__name__)
        closed = close_client(flow)
        log.warning("request.body_timeout", device=device, host=host, decision_id=decision_id, closed=closed)
        if decision_id is None:
            await self.reporter.refused(device, "body-timeout", host=host[:100])

    def _is_classdojo_write(self, flow: http.HTTPFlow) -> bool:
        return self.guard._is_guarded_write(flow)

    async def dojoguard_request_too_large(self, flow: http.HTTPFlow) -> None:
        """A body over the size limit (chunked, or a length nobody answered yet): a recorded refusal."""
        if flow.response is not None:
            return
        if not self._is_classdojo_write(flow):
            # Not a write the policy judges: refused all the same, and counted per device (the
            # audit log holds decisions about ClassDojo writes, and must not be flooded by others).
            await self.reporter.refused(flows.client_address(flow), "body-too-large", host=flows.host_of(flow)[:100])
            flows.refuse(flow, 413, b"dojoguard: the request body is larger than the proxy accepts\n",
                         {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"})
            return
        try:
            outcome = await self.judge.too_large(flows.request_of(flow, with_body=False))
            decision = outcome.decision
        except Exception as exc:  # fail closed: still a refusal with a reference
            log.exception("judge.failed", error=type(exc).__name__)
            from dojoguard.proxy.judge import unrecorded_block

            decision = unrecorded_block(self.services).decision
        flows.refuse(flow, *enforcement.refusal(decision, status=413, tz=self._tz))
        log.warning("request.too_large", decision_id=decision.decision_id, device=flows.client_address(flow),
                    host=flows.host_of(flow))

    async def _record(self, flow: http.HTTPFlow, endpoint: str, rule: str, reason: str, notice: str):
        return await self.judge.refuse_unread(flows.request_of(flow, with_body=False), endpoint, rule, reason, notice)

    def _requester(self, flow: http.HTTPFlow) -> str:
        teacher_id, _ = self.services.sessions.teacher(session_id(flow.request.headers.get("cookie")))
        return f"teacher:{teacher_id}" if teacher_id else f"device:{flows.client_address(flow)}"

    def done(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class DestinationGuard:
    """Refuse upstream connections to this machine, in any spelling; connect to the judged address."""

    def __init__(self, services: Services, bounds: Bounds):
        self.services = services
        self.bounds = bounds

    async def server_connect(self, data) -> None:
        server = data.server
        if server.error or not server.address:
            return
        host, port = str(server.address[0]), int(server.address[1])
        settings = self.services.settings
        if (host, port) in set(settings.resolve.values()):
            return  # a --resolve target, configured by whoever started the proxy (tests, staging)
        device = device_of(data.client)
        if _regular(data.client) and not self.bounds.allowed_port(host, port):
            server.error = f"dojoguard: connections to port {port} are not allowed through this proxy"
            await self.bounds.reporter.refused(device, "port", host=host[:100], port=port)
            return
        try:
            judged = await destinations.judge(host, port)
        except destinations.Refused as exc:
            server.error = f"dojoguard: {exc}"
            await self.bounds.reporter.refused(device, exc.reason, host=host[:100], port=port)
            return
        if destinations.literal(host) is None:
            # Connect to the address that was judged, so the name cannot resolve elsewhere a moment
            # later; once open, the connection is known by its name again (flows.name_again).
            if server.sni is None:
                server.sni = host
            flows.connect_elsewhere(server, (judged.address, port))


def _regular(client) -> bool:
    mode = getattr(client, "proxy_mode", None)
    return getattr(mode, "type_name", "regular") == "regular"


def close_client(flow: http.HTTPFlow) -> bool:
    """Close the device's connection that ``flow`` arrived on; False when it is already gone."""
    return headlimits.close_connection(flow.client_conn.id, "the request body took too long")
